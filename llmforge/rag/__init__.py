"""RAG: chunk documents with exact offsets, embed them (MiniLM offline, cached), index them in FAISS
with ids, and retrieve by dense, BM25 or hybrid search. A pure library: knowledge-base jobs,
REST routes and answering build on it."""

from llmforge.rag.chunking import Chunk, split_markdown, split_recursive, split_tokens
from llmforge.rag.embed import CachedEmbedder, Embedder, HashEmbedder, MiniLMEmbedder
from llmforge.rag.index import VectorIndex
from llmforge.rag.retrieve import Hit, Retriever

__all__ = ["CachedEmbedder", "Chunk", "Embedder", "HashEmbedder", "Hit", "MiniLMEmbedder", "Retriever",
           "VectorIndex", "split_markdown", "split_recursive", "split_tokens"]
