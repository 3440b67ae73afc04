print("reranker ready")
