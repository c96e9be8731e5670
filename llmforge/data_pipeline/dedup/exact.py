"""Exact deduplication (``exact_dedup``), plus the shard-file conventions every dedup step here shares.

Two documents are duplicates when their *normalised* texts are equal (NFKC,
lower-cased, punctuation turned into spaces, whitespace collapsed: see
:func:`normalize`); the first occurrence by ``(shard, position)`` is kept.

Files under the step's ``workdir`` (one set per shard, then one plan)::

    00003.keys.npy   sorted uint64 keys of shard 3      (index_shard)
    00003.pos.npy    their positions in the shard         (index_shard)
    00003.ids.json   document ids, by position           (index_shard)
    00003.done.json  marker, written last: doc count + params fingerprint
    00003.drop.npy   sorted positions to drop            (plan)
    clusters.jsonl   {"kept": id, "dropped": [ids], ...} (plan; the runner keeps *.jsonl as artifacts)
    plan.json        marker, written last: counts + fingerprint

Markers are written last and checked first, so a phase that finished is
skipped when run again with the same parameters, and a missing phase is an
error that says which one to run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from llmforge.data_pipeline.base import GlobalStep
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step
from llmforge.errors import InvalidInput

GROUP_ROWS = 1 << 24
"""Keys merged at once in ``plan`` (~16M rows, ~200 MB): larger inputs are processed one key range at a time."""

# --- text normalisation -----------------------------------------------------------------

_PUNCT: dict[int, int] | None = None


def _punct_table() -> dict[int, int]:
    """Every punctuation, symbol and control character of planes 0-1 -> space (built once, ~50 ms)."""
    global _PUNCT
    if _PUNCT is None:
        space = ord(" ")
        _PUNCT = {cp: space for cp in range(0x20000)
                  if unicodedata.category(chr(cp)) in {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po",
                                                       "Sm", "Sc", "Sk", "So", "Cc", "Cf"}}
    return _PUNCT


def normalize(text: str, *, lowercase: bool = True, nfkc: bool = True) -> str:
    """NFKC, lower-case, punctuation/symbols -> space, whitespace collapsed: ``"Hello,  World!" -> "hello world"``.

    The result is words separated by single spaces, which is what shingling and
    the vectorised hashing in ``minhash.py`` rely on.
    """
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.lower()
    return " ".join(text.translate(_punct_table()).split())


# --- shard files --------------------------------------------------------------------------


def save_npy(path: Path, arr: np.ndarray) -> None:
    """Write then rename, so a file that exists is complete."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, arr)
    os.replace(tmp, path)


def save_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def shard_path(workdir: str | Path, shard: int, what: str) -> Path:
    return Path(workdir) / f"{shard:05d}.{what}"


def load_rows(workdir: str | Path, shard: int, what: str) -> np.ndarray:
    """Memory-mapped: plan reads only the rows (bands, signatures) it needs."""
    return np.load(shard_path(workdir, shard, what), mmap_mode="r")


def sorted_by_key(keys: list[np.ndarray], positions: list[np.ndarray], offsets: np.ndarray,
                  max_rows: int = GROUP_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Merge per-shard runs sorted by key into ``(keys, gids)`` sorted by key, ties in (shard, position) order.

    Keys are uniform 64-bit hashes, so splitting the key space into equal ranges
    bounds memory by ``max_rows`` rows; a group of equal keys never straddles two ranges.
    """
    total = sum(len(k) for k in keys)
    parts = max(1, -(-total // max_rows))
    bounds = [(i << 64) // parts for i in range(parts + 1)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        ks, gs = [], []
        for s, (k, p) in enumerate(zip(keys, positions)):
            i = int(np.searchsorted(k, np.uint64(lo))) if lo else 0
            j = int(np.searchsorted(k, np.uint64(hi))) if hi < 2**64 else len(k)
            ks.append(np.asarray(k[i:j]))
            gs.append(np.asarray(p[i:j], dtype=np.int64) + offsets[s])
        k_all, g_all = np.concatenate(ks), np.concatenate(gs)
        order = np.argsort(k_all, kind="stable")  # stable: ties stay in (shard, position) order
        yield k_all[order], g_all[order]


def key_groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and size of each run of equal keys in a sorted array."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(keys)])
    return starts, sizes


class ShardedDedup(GlobalStep):
    """What exact and MinHash dedup share: markers, ids, the drop lists and ``filter_shard``."""

    reason: ClassVar[str] = "duplicate"

    def _fingerprint(self) -> str:
        return f"{self.name}:{self.params.model_dump_json()}"

    def _indexed(self, workdir: str, shard: int) -> bool:
        marker = shard_path(workdir, shard, "done.json")
        return marker.exists() and json.loads(marker.read_text())["fingerprint"] == self._fingerprint()

    def _finish_index(self, workdir: str, shard: int, ids: list[str]) -> None:
        save_json(shard_path(workdir, shard, "ids.json"), ids)
        save_json(shard_path(workdir, shard, "done.json"), {"docs": len(ids), "fingerprint": self._fingerprint()})

    def _offsets(self, workdir: str, num_shards: int) -> np.ndarray:
        """Global id of each shard's first document (``gid = offsets[shard] + position``), plus the total."""
        counts = []
        for s in range(num_shards):
            if not self._indexed(workdir, s):
                raise InvalidInput(f"{self.name}: shard {s} of {num_shards} has no index under {workdir} made with "
                                   f"these parameters; run index_shard for every shard before plan")
            counts.append(json.loads(shard_path(workdir, s, "done.json").read_text())["docs"])
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def _planned(self, workdir: str, num_shards: int) -> bool:
        marker = Path(workdir) / "plan.json"
        if not marker.exists():
            return False
        done = json.loads(marker.read_text())
        return done["fingerprint"] == self._fingerprint() and done["shards"] == num_shards

    @staticmethod
    def _ids(workdir: str, offsets: np.ndarray, gids: np.ndarray) -> list[str]:
        """Document ids of ``gids``, reading one shard's id list at a time."""
        out: list[str] = [""] * len(gids)
        shard_of = np.searchsorted(offsets, gids, side="right") - 1
        for s in np.unique(shard_of):
            ids = json.loads(shard_path(workdir, int(s), "ids.json").read_text())
            for i in np.flatnonzero(shard_of == s):
                out[i] = ids[gids[i] - offsets[s]]
        return out

    def _write_plan(self, workdir: str, offsets: np.ndarray, clusters: list[tuple[int, np.ndarray, list[float] | None]],
                    counts: dict[str, int]) -> None:
        """clusters: (kept gid, dropped gids, estimated Jaccard of each dropped doc to the kept one or None)."""
        num_shards = len(offsets) - 1
        dropped = np.sort(np.concatenate([d for _, d, _ in clusters])) if clusters else np.zeros(0, np.int64)
        for s in range(num_shards):
            lo, hi = np.searchsorted(dropped, [offsets[s], offsets[s + 1]])
            save_npy(shard_path(workdir, s, "drop.npy"), (dropped[lo:hi] - offsets[s]).astype(np.int64))
        members = np.concatenate([np.r_[k, d] for k, d, _ in clusters]) if clusters else np.zeros(0, np.int64)
        names = iter(self._ids(workdir, offsets, members))
        tmp = Path(workdir) / "clusters.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            for _, d, jac in clusters:
                row: dict[str, Any] = {"kept": next(names), "dropped": [next(names) for _ in d]}
                if jac is not None:
                    row["jaccard"] = [round(float(j), 3) for j in jac]
                fh.write(json.dumps(row) + "\n")
        os.replace(tmp, Path(workdir) / "clusters.jsonl")
        counts = {"clusters": len(clusters), "duplicates": int(len(dropped)), **counts}  # reported by filter_shard(0)
        save_json(Path(workdir) / "plan.json",
                  {"fingerprint": self._fingerprint(), "shards": num_shards, "counts": counts})

    def filter_shard(self, shard: int, docs: Iterable[Document], workdir: str) -> Iterator[Document]:
        plan = Path(workdir) / "plan.json"
        if not plan.exists():
            raise InvalidInput(f"{self.name}: no plan under {workdir}; run plan after index_shard, before filter_shard")
        if shard == 0:  # the runner merges shard stats: count the plan's figures once
            self.stats.counts.update(json.loads(plan.read_text())["counts"])
        drop = set(np.load(shard_path(workdir, shard, "drop.npy")).tolist())
        expected = json.loads(shard_path(workdir, shard, "done.json").read_text())["docs"]
        stats, pos = self.stats, -1
        for pos, doc in enumerate(docs):
            stats.docs_in += 1
            if pos in drop:
                stats.dropped[self.reason] += 1
                stats.example(self.reason, doc)
            else:
                stats.docs_out += 1
                yield doc
        if pos + 1 != expected:
            raise InvalidInput(f"{self.name}: shard {shard} had {expected} documents at index_shard but "
                               f"{pos + 1} at filter_shard; both phases must see the same stream")


# --- the step -----------------------------------------------------------------------------


class ExactDedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    normalize: bool = True
    """Compare normalised text (NFKC, case, punctuation, whitespace); False compares the raw text byte for byte."""


@register_step
class ExactDedup(ShardedDedup):
    """Drop documents whose (normalised) text already occurred earlier in the dataset."""

    name = "exact_dedup"
    Params = ExactDedupParams
    reason = "exact_duplicate"

    def _key(self, text: str) -> int:
        text = normalize(text) if self.params.normalize else text
        return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")

    def index_shard(self, shard: int, docs: Iterable[Document], workdir: str) -> None:
        if self._indexed(workdir, shard):
            return
        t0 = time.perf_counter()
        ids, keys = [], []
        for doc in docs:
            ids.append(doc.id)
            keys.append(self._key(doc.text))
        keys_arr = np.array(keys, dtype=np.uint64)
        order = np.argsort(keys_arr, kind="stable")
        save_npy(shard_path(workdir, shard, "keys.npy"), keys_arr[order])
        save_npy(shard_path(workdir, shard, "pos.npy"), order.astype(np.int64))
        self._finish_index(workdir, shard, ids)
        self.stats.seconds += time.perf_counter() - t0

    def plan(self, workdir: str, num_shards: int) -> None:
        if self._planned(workdir, num_shards):
            return
        t0 = time.perf_counter()
        offsets = self._offsets(workdir, num_shards)
        keys = [load_rows(workdir, s, "keys.npy") for s in range(num_shards)]
        positions = [load_rows(workdir, s, "pos.npy") for s in range(num_shards)]
        clusters = []
        for k, g in sorted_by_key(keys, positions, offsets):
            starts, sizes = key_groups(k)
            for st, m in zip(starts[sizes > 1], sizes[sizes > 1]):
                clusters.append((int(g[st]), g[st + 1:st + m], None))  # first occurrence is kept
        clusters.sort(key=lambda c: c[0])
        self._write_plan(workdir, offsets, clusters, {})
        self.stats.seconds += time.perf_counter() - t0
