"""Okapi BM25 over a lower-case word tokenizer, with incremental add / remove.

    score(q, d) = Σ_{t ∈ q} idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))
    idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))          (never negative)

Documents are kept as term counts; the (docs × terms) matrix of the tf part is rebuilt lazily
(scipy.sparse CSC) after a change, so a query is one sparse column slice times the idf vector.
A query term repeated counts once per occurrence, as in Lucene.

    bm = BM25()
    bm.add(["a", "b"], ["the cat sat", "the dog barked"])
    bm.search("cat", k=5)          # [("a", 0.98...)]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable

import numpy as np
import scipy.sparse as sp

__all__ = ["BM25", "tokenize"]

WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return WORD.findall(text.lower())


class BM25:
    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.docs: dict[Hashable, Counter] = {}
        self.df: Counter = Counter()
        self._matrix = None  # (ids, vocab, csc matrix of the tf part, idf)

    def __len__(self) -> int:
        return len(self.docs)

    def add(self, ids: Iterable[Hashable], texts: Iterable[str]) -> None:
        """Add or replace documents."""
        for id_, text in zip(ids, texts, strict=True):
            if id_ in self.docs:
                self.remove([id_])
            counts = Counter(tokenize(text))
            self.docs[id_] = counts
            self.df.update(counts.keys())
        self._matrix = None

    def remove(self, ids: Iterable[Hashable]) -> None:
        for id_ in ids:
            counts = self.docs.pop(id_, None)
            if counts:
                self.df.subtract(counts.keys())
                for t in counts:
                    if self.df[t] <= 0:
                        del self.df[t]
        self._matrix = None

    def idf(self, term: str) -> float:
        n, df = len(self.docs), self.df.get(term, 0)
        return float(np.log1p((n - df + 0.5) / (df + 0.5)))

    def _build(self):
        ids = list(self.docs)
        vocab = {t: j for j, t in enumerate(self.df)}
        lengths = np.array([sum(c.values()) for c in self.docs.values()], np.float64)
        avgdl = lengths.mean() if len(lengths) and lengths.mean() > 0 else 1.0
        rows, cols, tfs = [], [], []
        for i, counts in enumerate(self.docs.values()):
            rows += [i] * len(counts)
            cols += [vocab[t] for t in counts]
            tfs += list(counts.values())
        rows, tfs = np.array(rows, np.int64), np.array(tfs, np.float64)
        norm = self.k1 * (1 - self.b + self.b * lengths / avgdl)
        vals = tfs * (self.k1 + 1) / (tfs + norm[rows]) if len(tfs) else tfs
        tf_part = sp.csc_matrix((vals, (rows, np.array(cols, np.int64))), shape=(len(ids), len(vocab)))
        n = len(ids)
        df = np.array([self.df[t] for t in vocab], np.float64)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        self._matrix = (ids, vocab, tf_part, idf)
        return self._matrix

    def scores(self, query: str) -> tuple[list[Hashable], np.ndarray]:
        """(ids, score of every document) for `query`."""
        ids, vocab, tf_part, idf = self._matrix or self._build()
        q = Counter(t for t in tokenize(query) if t in vocab)
        if not q or not ids:
            return ids, np.zeros(len(ids))
        cols = np.array([vocab[t] for t in q], np.int64)
        weights = idf[cols] * np.array(list(q.values()), np.float64)
        return ids, np.asarray(tf_part[:, cols] @ weights).reshape(-1)

    def search(self, query: str, k: int = 10, allowed: set | None = None) -> list[tuple[Hashable, float]]:
        """Top-k (id, score) with score > 0, best first; `allowed` restricts the candidate ids."""
        ids, s = self.scores(query)
        if allowed is not None:
            s = np.where(np.fromiter((i in allowed for i in ids), bool, len(ids)), s, 0.0)
        hits = np.flatnonzero(s > 0)
        top = hits[np.argsort(-s[hits], kind="stable")[:k]]
        return [(ids[i], float(s[i])) for i in top]
