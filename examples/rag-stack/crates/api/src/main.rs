fn main() {
    println!("rag-api: {} documents indexed", rag_indexer::count(&["a", "b"]));
}
