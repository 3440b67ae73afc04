/// Counts the documents handed to the indexer.
pub fn count(docs: &[&str]) -> usize {
    docs.len()
}
