"""The step contract (after datatrove): a step turns a stream of Documents into a stream of Documents.

- :class:`PipelineStep` — ``run(docs, rank, world_size)`` is a generator; it
  owns nothing but its own :class:`StepStats`.
- :class:`Filter` — implement ``filter(doc) -> bool | (False, "reason")``; the
  base counts what was dropped and why and keeps a few examples for the report.
- :class:`Mapper` — implement ``apply(text) -> str`` (or ``map(doc)``); the base
  counts documents it modified. Mappers may also count named events
  (``self.stats.count("email")``), e.g. PII replacements.

Each step declares its parameters as a pydantic model ``Params`` so a
declarative spec is validated before anything runs. Steps register themselves
by ``name`` (see ``registry.py``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from llmforge.data_pipeline.document import Document

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 300


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class StepStats:
    step: str
    docs_in: int = 0
    docs_out: int = 0
    modified: int = 0
    seconds: float = 0.0
    dropped: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def example(self, reason: str, doc: Document, after: str | None = None) -> None:
        if sum(1 for e in self.examples if e["reason"] == reason) < EXAMPLES_PER_REASON:
            ex = {"reason": reason, "id": doc.id, "text": doc.text[:EXAMPLE_CHARS]}
            if after is not None:
                ex["after"] = after[:EXAMPLE_CHARS]
            self.examples.append(ex)

    def merge(self, other: "StepStats") -> "StepStats":
        """Combine the stats of the same step run over several shards."""
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.modified += other.modified
        self.seconds += other.seconds
        self.dropped.update(other.dropped)
        self.counts.update(other.counts)
        for ex in other.examples:
            if sum(1 for e in self.examples if e["reason"] == ex["reason"]) < EXAMPLES_PER_REASON:
                self.examples.append(ex)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "docs_in": self.docs_in, "docs_out": self.docs_out,
                "docs_dropped": self.docs_in - self.docs_out, "modified": self.modified,
                "seconds": round(self.seconds, 4), "dropped": dict(self.dropped), "counts": dict(self.counts),
                "examples": self.examples}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepStats":
        return cls(step=d["step"], docs_in=d["docs_in"], docs_out=d["docs_out"], modified=d["modified"],
                   seconds=d["seconds"], dropped=Counter(d["dropped"]), counts=Counter(d["counts"]),
                   examples=list(d["examples"]))


class PipelineStep:
    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    scope: ClassVar[str] = "shard"
    """'shard': runs on each shard independently; 'global': needs to see the whole dataset (dedup)."""

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)
        self.stats = StepStats(self.name or type(self).__name__)

    def run(self, docs: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        raise NotImplementedError

    def __call__(self, docs: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        return self.run(docs, rank, world_size)


class Filter(PipelineStep):
    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def run(self, docs: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        stats = self.stats
        for doc in docs:
            stats.docs_in += 1
            t0 = time.perf_counter()
            verdict = self.filter(doc)
            stats.seconds += time.perf_counter() - t0
            keep, reason = (verdict, self.name) if isinstance(verdict, bool) else verdict
            if keep:
                stats.docs_out += 1
                yield doc
            else:
                stats.dropped[reason] += 1
                stats.example(reason, doc)


class Mapper(PipelineStep):
    def apply(self, text: str) -> str:
        raise NotImplementedError

    def map(self, doc: Document) -> Document:
        doc.text = self.apply(doc.text)
        return doc

    def run(self, docs: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        stats = self.stats
        for doc in docs:
            stats.docs_in += 1
            before = doc.text
            t0 = time.perf_counter()
            doc = self.map(doc)
            stats.seconds += time.perf_counter() - t0
            if doc.text != before:
                stats.modified += 1
                stats.example(self.name, Document(before, doc.id), after=doc.text)
            stats.docs_out += 1
            yield doc


class GlobalStep(PipelineStep):
    """A step that must see the whole dataset (deduplication), split into three phases so that
    the parallel parts fan out over shards and memory stays bounded by a shard, not the dataset:

    1. ``index_shard(shard, docs, workdir)`` — per shard, in parallel: write compact keys
       (hashes, signatures) for each document to files under ``workdir``;
    2. ``plan(workdir, num_shards)`` — once: read those files, decide what to drop, write the
       decision (and anything inspectable, e.g. clusters) under ``workdir``;
    3. ``filter_shard(shard, docs, workdir)`` — per shard, in parallel: yield the survivors.

    A document is identified by ``(shard, position)`` within the step's input, which the
    runner keeps stable between phases 1 and 3. ``run`` chains the phases over one stream,
    for notebooks and tests.
    """

    scope: ClassVar[str] = "global"

    def index_shard(self, shard: int, docs: Iterable[Document], workdir: str) -> None:
        raise NotImplementedError

    def plan(self, workdir: str, num_shards: int) -> None:
        raise NotImplementedError

    def filter_shard(self, shard: int, docs: Iterable[Document], workdir: str) -> Iterator[Document]:
        raise NotImplementedError

    def run(self, docs: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        import tempfile

        materialized = list(docs)
        with tempfile.TemporaryDirectory(prefix=f"llmforge-{self.name}-") as workdir:
            self.index_shard(0, materialized, workdir)
            self.plan(workdir, 1)
            yield from self.filter_shard(0, materialized, workdir)
