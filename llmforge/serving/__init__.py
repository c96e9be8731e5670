"""Serving: deployments of registered models behind an OpenAI-compatible gateway (chat, completions, embeddings, streaming)."""
