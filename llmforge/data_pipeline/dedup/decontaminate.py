"""Drop training documents that share a word n-gram with evaluation texts (``decontaminate``; GPT-3 used 13-grams).

Both sides are normalised like dedup (:func:`~llmforge.data_pipeline.dedup.exact.normalize`),
so case, punctuation and spacing don't hide a leak. An eval text shorter than
``ngram`` words is matched whole (as a contiguous run of words) when it has at
least ``min_words`` words, and ignored otherwise (counted as
``eval_texts_too_short``): a 3-word answer would match half the corpus.

Eval texts come inline (``eval_texts``) or from a dataset version
(``eval_dataset_version``). The step knows nothing about the dataset store: the
runner hands it a loader with :meth:`Decontaminate.bind`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmforge.data_pipeline.base import PipelineStep
from llmforge.data_pipeline.dedup.exact import normalize
from llmforge.data_pipeline.dedup.minhash import _sorted_unique, ngram_hashes
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step
from llmforge.errors import InvalidInput

BATCH_DOCS = 512


class DecontaminateParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    eval_texts: list[str] = []
    """Evaluation texts given inline (questions, answers, passages)."""
    eval_dataset_version: str | None = None
    """A dataset version whose texts are the evaluation set (resolved by the runner through ``bind``)."""
    ngram: int = Field(13, ge=1, le=100)
    """Words per n-gram (8-13 is usual; smaller drops more)."""
    min_words: int = Field(8, ge=1)
    """Eval texts shorter than ``ngram`` words are matched whole if they have at least this many words."""

    @model_validator(mode="after")
    def _some_eval_set(self) -> "DecontaminateParams":
        if not self.eval_texts and not self.eval_dataset_version:
            raise ValueError("give eval_texts or eval_dataset_version: there is nothing to decontaminate against")
        return self


@register_step
class Decontaminate(PipelineStep):
    """Drop documents sharing an n-gram with the eval set; the matched n-gram goes in ``metadata``."""

    name = "decontaminate"
    Params = DecontaminateParams
    reason = "contaminated"

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._load_texts: Callable[[str], Iterable[str]] | None = None
        self._index: dict[int, np.ndarray] | None = None  # n-gram length -> sorted eval n-gram hashes

    def bind(self, load_texts: Callable[[str], Iterable[str]]) -> None:
        """Give the step a way to read a dataset version's texts (the runner calls this)."""
        self._load_texts = load_texts

    def _eval_texts(self) -> Iterator[str]:
        yield from self.params.eval_texts
        version = self.params.eval_dataset_version
        if version:
            if self._load_texts is None:
                raise InvalidInput(f"decontaminate: eval_dataset_version={version!r} needs the dataset store, but "
                                   "bind(load_texts) was never called; run the step through the pipeline runner, "
                                   "call bind yourself, or pass the texts as eval_texts",
                                   param="eval_dataset_version")
            yield from self._load_texts(version)

    def _build_index(self, rank: int) -> dict[int, np.ndarray]:
        """Eval n-gram hashes by length; counts go to rank 0 only (the runner adds up the shards' stats)."""
        n, by_len, too_short = self.params.ngram, {}, 0
        for text in self._eval_texts():
            norm = normalize(text)
            words = norm.count(" ") + 1 if norm else 0
            if words < self.params.min_words:
                too_short += 1
                continue
            by_len.setdefault(min(words, n), []).append(norm)
        index = {}
        for length, texts in by_len.items():
            hashes, _ = ngram_hashes(texts, length, whole_if_short=False)
            index[length] = _sorted_unique(hashes)
        if rank == 0:
            self.stats.count("eval_ngrams", sum(len(h) for h in index.values()))
            self.stats.count("eval_texts_too_short", too_short)
        return index

    def _first_matches(self, norm: list[str]) -> list[tuple[int, int] | None]:
        """For each text, (n-gram length, word index) of its first n-gram found in the eval set, else None."""
        found: list[tuple[int, int] | None] = [None] * len(norm)
        for length, eval_hashes in sorted(self._index.items(), reverse=True):
            hashes, counts = ngram_hashes(norm, length, whole_if_short=False)
            at = np.minimum(np.searchsorted(eval_hashes, hashes), len(eval_hashes) - 1)
            hit = eval_hashes[at] == hashes
            if not hit.any():
                continue
            doc = np.repeat(np.arange(len(norm)), counts)
            local = np.arange(len(hashes)) - np.repeat(np.cumsum(counts) - counts, counts)
            for d, w in zip(doc[hit], local[hit]):
                if found[d] is None:
                    found[d] = (length, int(w))
        return found

    def run(self, docs: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        if self._index is None:
            self._index = self._build_index(rank)
        stats, it = self.stats, iter(docs)
        while batch := list(islice(it, BATCH_DOCS)):
            t0 = time.perf_counter()
            norm = [normalize(d.text) for d in batch]
            matches = self._first_matches(norm)
            stats.seconds += time.perf_counter() - t0
            for doc, text, match in zip(batch, norm, matches):
                stats.docs_in += 1
                if match is None:
                    stats.docs_out += 1
                    yield doc
                    continue
                length, w = match
                doc.metadata["contaminated_ngram"] = " ".join(text.split()[w:w + length])
                stats.dropped[self.reason] += 1
                stats.example(self.reason, doc)
