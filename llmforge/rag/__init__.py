"""RAG: knowledge bases (chunking, embeddings, FAISS indexes) and grounded answers with citations."""
