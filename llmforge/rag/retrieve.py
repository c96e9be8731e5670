"""Retrieval: dense top-k, BM25, reciprocal-rank fusion, metadata filters, MMR and a rerank hook.

Plain functions over visible data (chunks, vectors, rankings), plus `Retriever`, which keeps a
collection's chunks, vector index and BM25 index in step and answers queries with `Hit`s that
carry the chunk, its score, its rank and the source offsets a citation needs.

    r = Retriever(MiniLMEmbedder())
    r.add(split_markdown(doc, source="guide.md"))
    for hit in r.query("how do I install?", k=5, where={"source": "guide.md"}, mmr_lambda=0.7):
        print(hit.rank, hit.score, hit.source, hit.start, hit.end, hit.chunk.title)

Chunk ids are hex hashes; the vector index needs int64, so `int_id(chunk.id)` takes its first
60 bits (collisions need ~2^30 chunks to become likely).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmforge.rag.bm25 import BM25
from llmforge.rag.chunking import Chunk
from llmforge.rag.embed import Embedder
from llmforge.rag.index import IndexFileError, VectorIndex, _atomic_write

__all__ = ["Hit", "Retriever", "int_id", "matches", "dense", "bm25", "hybrid_rrf", "mmr", "Rerank"]

Rerank = Callable[[str, list["Hit"]], list["Hit"]]
"""Takes the query and candidate hits, returns them re-ordered (and re-scored, if it likes)."""


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    rank: int
    """1-based position in the final result list."""

    @property
    def source(self) -> str:
        return self.chunk.source

    @property
    def start(self) -> int:
        return self.chunk.start

    @property
    def end(self) -> int:
        return self.chunk.end


def int_id(chunk_id: str) -> int:
    return int(chunk_id[:15], 16)


def matches(chunk: Chunk, where: Mapping[str, Any] | None) -> bool:
    """Exact-match filter on chunk fields (source, title) and metadata keys; a list or set value
    means "any of these"."""
    for key, want in (where or {}).items():
        have = getattr(chunk, key) if key in ("source", "title", "id") else chunk.metadata.get(key)
        if isinstance(want, (list, tuple, set, frozenset)):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def _hits(pairs: Iterable[tuple[Hashable, float]], chunks: Mapping, k: int) -> list[Hit]:
    return [Hit(chunks[i], float(s), r) for r, (i, s) in enumerate(list(pairs)[:k], start=1)]


def dense(query_vec: np.ndarray, index: VectorIndex, chunks: Mapping[int, Chunk], k: int = 10,
          where: Mapping[str, Any] | None = None) -> list[Hit]:
    """Top-k chunks by inner product with `query_vec`. With a filter, fetches more candidates
    (doubling) until k pass it or the index is exhausted."""
    fetch = k if not where else max(4 * k, 50)
    while True:
        scores, ids = index.search(query_vec, fetch)
        pairs = [(int(i), float(s)) for s, i in zip(scores[0], ids[0])
                 if i >= 0 and int(i) in chunks and matches(chunks[int(i)], where)]
        if len(pairs) >= k or fetch >= len(index):
            return _hits(pairs, chunks, k)
        fetch *= 2


def bm25(query: str, index: BM25, chunks: Mapping[int, Chunk], k: int = 10,
         where: Mapping[str, Any] | None = None) -> list[Hit]:
    allowed = {i for i, c in chunks.items() if matches(c, where)} if where else None
    return _hits(index.search(query, k, allowed=allowed), chunks, k)


def hybrid_rrf(rankings: Sequence[Sequence[Hashable]], k: int = 60) -> list[tuple[Hashable, float]]:
    """Reciprocal rank fusion: score(d) = Σ_rankings 1 / (k + rank(d)), ranks 1-based.
    Returns (id, score) best first; ties keep first-seen order."""
    fused: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, id_ in enumerate(ranking, start=1):
            fused[id_] = fused.get(id_, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def mmr(query_vec: np.ndarray, cand_vecs: np.ndarray, lambda_: float = 0.5, k: int | None = None) -> list[int]:
    """Maximal marginal relevance: greedily pick the candidate maximising
    λ·sim(q, c) − (1−λ)·max_{s picked} sim(c, s). Returns indices into `cand_vecs`."""
    cand = np.asarray(cand_vecs, np.float32)
    if len(cand) == 0:
        return []
    k = len(cand) if k is None else min(k, len(cand))
    rel = cand @ np.asarray(query_vec, np.float32).reshape(-1)
    sim = cand @ cand.T
    picked = [int(np.argmax(rel))]
    redundancy = sim[picked[0]].copy()
    while len(picked) < k:
        score = lambda_ * rel - (1 - lambda_) * redundancy
        score[picked] = -np.inf
        nxt = int(np.argmax(score))
        picked.append(nxt)
        redundancy = np.maximum(redundancy, sim[nxt])
    return picked


class Retriever:
    """One collection: chunks by int id, a `VectorIndex` and a `BM25` index kept in step."""

    def __init__(self, embedder: Embedder, index: VectorIndex | None = None, keyword: BM25 | None = None):
        self.embedder = embedder
        self.index = index or VectorIndex(embedder.dim)
        self.keyword = keyword or BM25()
        self.chunks: dict[int, Chunk] = {}

    def __len__(self) -> int:
        return len(self.chunks)

    def add(self, chunks: Sequence[Chunk]) -> int:
        """Add chunks; ones already present (same id, hence same text and place) are skipped.
        Returns how many were new."""
        new = {int_id(c.id): c for c in chunks if int_id(c.id) not in self.chunks}
        if new:
            ids = list(new)
            self.index.add(np.array(ids, np.int64), self.embedder.embed([c.text for c in new.values()]))
            self.keyword.add(ids, [c.text for c in new.values()])
            self.chunks.update(new)
        return len(new)

    def remove(self, ids: Iterable[int]) -> None:
        ids = [int(i) for i in ids if int(i) in self.chunks]
        self.index.remove(np.array(ids, np.int64))
        self.keyword.remove(ids)
        for i in ids:
            del self.chunks[i]

    def remove_source(self, source: str) -> None:
        """Drop every chunk of a document (before re-ingesting a changed version of it)."""
        self.remove([i for i, c in self.chunks.items() if c.source == source])

    def _vectors(self, ids: list[int]) -> np.ndarray:
        # the embedder is usually cached, so this costs lookups, not model calls
        return self.embedder.embed([self.chunks[i].text for i in ids])

    def query(self, text: str, k: int = 5, mode: str = "hybrid", where: Mapping[str, Any] | None = None,
              candidates: int | None = None, mmr_lambda: float | None = None, rerank: Rerank | None = None,
              rrf_k: int = 60) -> list[Hit]:
        """Top-k hits for `text`. mode: "dense", "bm25" or "hybrid" (RRF of both). `candidates`
        (default 4·k) are gathered per method before fusion, MMR (when `mmr_lambda` is given)
        and `rerank`; the final list is truncated to k and ranked 1..k."""
        assert mode in ("dense", "bm25", "hybrid"), f"unknown mode {mode!r}"
        n = candidates or max(4 * k, 20)
        qvec = self.embedder.embed([text])[0] if mode != "bm25" or mmr_lambda is not None else None
        rankings = []
        if mode in ("dense", "hybrid"):
            rankings.append(dense(qvec, self.index, self.chunks, n, where))
        if mode in ("bm25", "hybrid"):
            rankings.append(bm25(text, self.keyword, self.chunks, n, where))
        if mode == "hybrid":
            pairs = hybrid_rrf([[int_id(h.chunk.id) for h in r] for r in rankings], k=rrf_k)
        else:
            pairs = [(int_id(h.chunk.id), h.score) for h in rankings[0]]
        hits = _hits(pairs, self.chunks, n)
        if mmr_lambda is not None and hits:
            order = mmr(qvec, self._vectors([int_id(h.chunk.id) for h in hits]), mmr_lambda)
            hits = [hits[i] for i in order]
        if rerank is not None:
            hits = list(rerank(text, hits))
        return [Hit(h.chunk, h.score, r) for r, h in enumerate(hits[:k], start=1)]

    # --- files: dir/index.{faiss,json} (VectorIndex) + dir/chunks.json; BM25 is rebuilt on load ---

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        self.index.save(path)
        doc = {"embedder": self.embedder.name, "dim": self.embedder.dim,
               "chunks": [asdict(c) for c in self.chunks.values()]}
        _atomic_write(path / "chunks.json", json.dumps(doc).encode())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, embedder: Embedder) -> Retriever:
        path = Path(path)
        index = VectorIndex.load(path)
        try:
            doc = json.loads((path / "chunks.json").read_text())
            chunks = [Chunk(**c) for c in doc["chunks"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFileError(f"cannot read chunks at {path}: {exc}", param="path") from exc
        if doc.get("embedder") != embedder.name or doc.get("dim") != embedder.dim:
            raise IndexFileError(f"{path} was built with {doc.get('embedder')!r}, not {embedder.name!r}: "
                                 "load it with that embedder or re-ingest", param="embedder")
        self = cls(embedder, index)
        self.chunks = {int_id(c.id): c for c in chunks}
        if set(self.chunks) != index.ids:
            raise IndexFileError(f"{path}: chunks.json and the vector index hold different ids; re-ingest")
        self.keyword.add(list(self.chunks), [c.text for c in chunks])
        return self
