"""Hand-made texts with a known word-shingle Jaccard, and the three-phase driver for global steps.

With ``n`` distinct words (``n - k + 1`` shingles of ``k`` words) and ``r``
words replaced at positions at least ``k`` apart and ``k`` from either end,
each replacement removes ``k`` shingles and adds ``k`` new ones, so
``J = (S - k*r) / (S + k*r)`` with ``S = n - k + 1``: 200 words, r=3 -> 181/211 = 0.858;
r=13 -> 131/261 = 0.502.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterable

from llmforge.data_pipeline.base import GlobalStep
from llmforge.data_pipeline.document import Document

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pa", "den", "gor", "lun", "bra", "tel", "quo", "zim"]


def distinct_words(n: int, seed: int) -> list[str]:
    """``n`` different made-up words, reproducible from ``seed``."""
    rng, out, seen = random.Random(seed), [], set()
    while len(out) < n:
        w = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def replace_spaced(words: list[str], r: int, k: int = 5, seed: int = 0) -> list[str]:
    """``words`` with ``r`` words replaced by fresh ones, ``2k`` apart: each replacement costs exactly ``k`` shingles."""
    assert k + 2 * k * r <= len(words) - k, "text too short for that many separated edits"
    fresh = [f"x{w}q" for w in distinct_words(r, seed + 1000)]
    out = list(words)
    for i in range(r):
        out[k + 2 * k * i] = fresh[i]
    return out


def expected_jaccard(n: int, r: int, k: int = 5) -> float:
    s = n - k + 1
    return (s - k * r) / (s + k * r)


def text(words: Iterable[str], per_line: int = 12) -> str:
    """Words as sentences over lines, with capitals and punctuation that normalisation removes."""
    words = list(words)
    lines = [" ".join(words[i:i + per_line]).capitalize() + "." for i in range(0, len(words), per_line)]
    return "\n".join(lines)


def docs(texts: list[str], prefix: str = "d") -> list[Document]:
    return [Document(t, f"{prefix}{i}") for i, t in enumerate(texts)]


def run_sharded(step: GlobalStep, shards: list[list[Document]], workdir: str | None = None) -> list[Document]:
    """index_shard for every shard, plan, then filter_shard for every shard: the runner's order."""
    with tempfile.TemporaryDirectory() as tmp:
        wd = workdir or tmp
        for s, shard in enumerate(shards):
            step.index_shard(s, iter(shard), wd)
        step.plan(wd, len(shards))
        return [d for s, shard in enumerate(shards) for d in step.filter_shard(s, iter(shard), wd)]
