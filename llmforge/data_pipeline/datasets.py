"""Immutable, content-addressed dataset versions on the artifact store — usable without a server.

A version is a JSON manifest naming its JSONL shards by digest, with its row
count, schema, statistics, parent version and the job that made it. The
manifest is written last and its own digest is the version id, so a version
either exists completely or not at all, and identical inputs give identical ids.
Shards are plain JSONL, so Hugging Face ``datasets`` reads them directly::

    store = DatasetStore(ArtifactStore("~/.llmforge/artifacts"))
    v = store.import_file("corpus.jsonl")
    ds = load_dataset("json", data_files=store.data_files(v.id), split="train")
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmforge.artifacts import ArtifactNotFound, ArtifactStore, InvalidDigest
from llmforge.data_pipeline.formats import Format, TextSplit, read_rows
from llmforge.errors import InvalidInput, NotFound

DEFAULT_SHARD_ROWS = 10_000
LANGUAGE_SAMPLE = 300
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class DatasetVersion:
    id: str
    """64 hex characters: the digest of the manifest."""
    manifest: dict[str, Any]

    @property
    def rows(self) -> int:
        return self.manifest["rows"]

    @property
    def parent(self) -> str | None:
        return self.manifest.get("parent")

    @property
    def job_id(self) -> str | None:
        return self.manifest.get("job_id")

    @property
    def shards(self) -> list[dict[str, Any]]:
        return self.manifest["shards"]

    @property
    def stats(self) -> dict[str, Any]:
        return self.manifest["stats"]

    @property
    def schema(self) -> dict[str, list[str]]:
        return self.manifest["schema"]


def _type_name(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object",
            type(None): "null"}.get(type(v), type(v).__name__)


class _StatsBuilder:
    """Statistics accumulated while rows stream by; memory is 8 bytes per row (duplicate check)."""

    def __init__(self, text_field: str) -> None:
        self.text_field = text_field
        self.rows = 0
        self.chars = 0
        self.bytes = 0
        self.with_text = 0
        self.hist: Counter[int] = Counter()
        self.seen: set[bytes] = set()
        self.dups = 0
        self.sample: list[str] = []
        self.rng = random.Random(0)
        self.schema: dict[str, set[str]] = {}

    def add(self, row: dict[str, Any]) -> None:
        self.rows += 1
        for k, v in row.items():
            self.schema.setdefault(k, set()).add(_type_name(v))
        text = row.get(self.text_field)
        if not isinstance(text, str):
            return
        self.with_text += 1
        n = len(text)
        self.chars += n
        self.bytes += len(text.encode("utf-8"))
        self.hist[0 if n == 0 else int(math.log2(n))] += 1
        norm = _WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
        h = hashlib.blake2b(norm.encode(), digest_size=8).digest()
        if h in self.seen:
            self.dups += 1
        else:
            self.seen.add(h)
        # reservoir sample for the language mix
        if len(self.sample) < LANGUAGE_SAMPLE:
            self.sample.append(text[:2000])
        else:
            j = self.rng.randrange(self.with_text)
            if j < LANGUAGE_SAMPLE:
                self.sample[j] = text[:2000]

    def result(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        languages: dict[str, float] = {}
        if self.sample:
            try:
                from llmforge.data_pipeline.steps.language import detect_language
            except ImportError:  # language id is optional for statistics
                detect_language = None
            if detect_language is not None:
                counts = Counter(detect_language(t)[0] for t in self.sample)
                languages = {k: round(v / len(self.sample), 4) for k, v in counts.most_common(10)}
        stats = {
            "rows": self.rows,
            "text_field": self.text_field,
            "rows_with_text": self.with_text,
            "characters": self.chars,
            # ~4 bytes of UTF-8 per BPE token is the usual rule of thumb for English-like text
            "estimated_tokens": round(self.bytes / 4),
            "mean_characters": round(self.chars / self.with_text, 1) if self.with_text else 0,
            "length_histogram": [
                {"min_chars": 0 if b == 0 else 2 ** b, "max_chars": 2 ** (b + 1) - 1, "rows": self.hist[b]}
                for b in sorted(self.hist)],
            "duplicate_rate": round(self.dups / self.with_text, 4) if self.with_text else 0.0,
            "languages": languages,
        }
        schema = {k: sorted(v) for k, v in self.schema.items()}
        return stats, schema


class DatasetStore:
    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts

    @classmethod
    def from_settings(cls) -> "DatasetStore":
        from llmforge.settings import get_settings

        return cls(ArtifactStore(get_settings().artifact_url))

    # --- writing ------------------------------------------------------------------
    def write_version(
        self,
        rows: Iterable[dict[str, Any]],
        *,
        text_field: str = "text",
        parent: str | None = None,
        job_id: str | None = None,
        source: dict[str, Any] | None = None,
        shard_rows: int = DEFAULT_SHARD_ROWS,
    ) -> DatasetVersion:
        """Stream rows into shards, then write the manifest last. Raises before anything is visible."""
        stats = _StatsBuilder(text_field)
        shards: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="llmforge-ds-") as tmp:
            path = Path(tmp) / "shard.jsonl"
            fh = open(path, "w", encoding="utf-8")
            n = 0
            try:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False, default=str))
                    fh.write("\n")
                    stats.add(row)
                    n += 1
                    if n == shard_rows:
                        fh.close()
                        shards.append({"digest": self.artifacts.put_file(path), "rows": n})
                        fh = open(path, "w", encoding="utf-8")
                        n = 0
            finally:
                fh.close()
            if n:
                shards.append({"digest": self.artifacts.put_file(path), "rows": n})
        if stats.rows == 0:
            raise InvalidInput("the dataset would have no rows")
        st, schema = stats.result()
        manifest = {
            "kind": "dataset_version",
            "format": "jsonl",
            "rows": stats.rows,
            "text_field": text_field,
            "shards": shards,
            "schema": schema,
            "stats": st,
            "parent": parent,
            "job_id": job_id,
            "source": source or {},
        }  # no timestamp: the same rows from the same parent and job give the same version id
        digest = self.artifacts.put_bytes(json.dumps(manifest, sort_keys=True).encode())
        return DatasetVersion(digest.split(":", 1)[1], manifest)

    def import_file(self, path: str | os.PathLike[str], *, fmt: Format | None = None, text_split: TextSplit | None = None,
                    text_field: str = "text", name: str | None = None, parent: str | None = None,
                    job_id: str | None = None, shard_rows: int = DEFAULT_SHARD_ROWS,
                    columns: list[str] | None = None) -> DatasetVersion:
        """Import a raw file as a new version (see ``formats.read_rows`` for formats and errors)."""
        label = name or Path(path).name
        rows = read_rows(path, fmt, text_split=text_split, name=label, columns=columns)
        return self.write_version(rows, text_field=text_field, parent=parent, job_id=job_id,
                                  source={"file": label, "format": fmt or None}, shard_rows=shard_rows)

    # --- reading ------------------------------------------------------------------
    def get(self, version_id: str) -> DatasetVersion:
        if not re.fullmatch(r"[0-9a-f]{64}", version_id or ""):
            raise NotFound(f"dataset version {version_id!r} not found (ids are 64 hex characters)")
        try:
            manifest = json.loads(self.artifacts.get_bytes(f"sha256:{version_id}"))
        except (ArtifactNotFound, InvalidDigest):
            raise NotFound(f"dataset version {version_id} not found") from None
        if manifest.get("kind") != "dataset_version":
            raise NotFound(f"{version_id} is not a dataset version")
        return DatasetVersion(version_id, manifest)

    def iter_shard(self, version: DatasetVersion, index: int) -> Iterator[dict[str, Any]]:
        with self.artifacts.open(version.shards[index]["digest"]) as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def iter_rows(self, version_id: str) -> Iterator[dict[str, Any]]:
        version = self.get(version_id)
        for i in range(len(version.shards)):
            yield from self.iter_shard(version, i)

    def preview(self, version_id: str, n: int = 20) -> list[dict[str, Any]]:
        out = []
        for row in self.iter_rows(version_id):
            out.append(row)
            if len(out) >= n:
                break
        return out

    def sample(self, version_id: str, n: int = 20, seed: int = 0) -> list[dict[str, Any]]:
        """A uniform random sample (reservoir), reproducible by seed."""
        rng = random.Random(seed)
        out: list[dict[str, Any]] = []
        for i, row in enumerate(self.iter_rows(version_id)):
            if i < n:
                out.append(row)
            else:
                j = rng.randrange(i + 1)
                if j < n:
                    out[j] = row
        return out

    def data_files(self, version_id: str) -> list[str]:
        """Shard paths for ``datasets.load_dataset("json", data_files=...)``."""
        version = self.get(version_id)
        return [self.artifacts.path_of(s["digest"]) for s in version.shards]

    def load_hf(self, version_id: str):  # noqa: ANN201 - datasets.Dataset, imported lazily
        from datasets import load_dataset

        return load_dataset("json", data_files=self.data_files(version_id), split="train")

    def texts(self, version_id: str) -> Iterator[str]:
        version = self.get(version_id)
        field = version.manifest.get("text_field", "text")
        for row in self.iter_rows(version_id):
            value = row.get(field)
            if isinstance(value, str):
                yield value
