"""Vector index: FAISS over our own int64 ids, with add / remove / update and atomic, pickle-free files.

Vectors are unit-norm float32, so the metric is inner product (= cosine similarity).

Kinds:

- ``"flat"``: ``IndexIDMap2(IndexFlatIP)``, exact; removal is real (``remove_ids``).
- ``"hnsw"``: ``IndexHNSWFlat`` (inner product), approximate and fast for large collections.
  HNSW graphs cannot remove nodes, so a removed or updated vector is *tombstoned*: its slot
  stays in the graph, is over-fetched past and filtered out of results, and the index is
  rebuilt from the live vectors once tombstones exceed `rebuild_ratio` of the slots.
- ``"ivf"``: ``IndexIVFFlat`` (inner product), trained on the first batch added (give it a
  representative one, ideally ≥ 39 × nlist vectors); removal is real.
- ``"auto"`` (default): flat while the collection is below `auto_threshold` vectors, converted
  to HNSW once it grows past it.

Files: ``save(dir)`` writes ``dir/index.faiss`` (``faiss.serialize_index``) and ``dir/index.json``
(kind, dim, ids, tombstones and the sha256 of the FAISS file), each to a temp file renamed into
place, the JSON last; ``load(dir)`` checks the hash, so a torn or tampered pair is an error.
Nothing is ever unpickled.

    idx = VectorIndex(384)
    idx.add(np.array([1, 2]), vecs)
    scores, ids = idx.search(query_vecs, k=5)    # ids are -1 where fewer than k hits
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import faiss
import numpy as np

from llmforge.errors import InvalidInput

__all__ = ["VectorIndex", "IndexFileError", "FORMAT"]

LOG = logging.getLogger(__name__)
FORMAT = "llmforge-vector-index"
VERSION = 1
KINDS = ("auto", "flat", "hnsw", "ivf")


class IndexFileError(InvalidInput):
    """An index file is missing, torn, tampered with or not an llmforge index: rebuild it from the chunks."""


def _as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _as_vecs(vecs, dim: int) -> np.ndarray:
    vecs = np.ascontiguousarray(np.asarray(vecs, dtype=np.float32))
    if vecs.ndim == 1:
        vecs = vecs.reshape(1, -1)
    assert vecs.ndim == 2 and vecs.shape[1] == dim, f"expected vectors of shape (n, {dim}), got {vecs.shape}"
    return vecs


class VectorIndex:
    def __init__(self, dim: int, kind: str = "auto", *, auto_threshold: int = 50_000, hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 64, nlist: int | None = None, nprobe: int = 16,
                 rebuild_ratio: float = 0.25):
        assert kind in KINDS, f"kind must be one of {KINDS}, got {kind!r}"
        self.dim, self.requested = dim, kind
        self.params = dict(auto_threshold=auto_threshold, hnsw_m=hnsw_m, ef_construction=ef_construction,
                           ef_search=ef_search, nlist=nlist, nprobe=nprobe, rebuild_ratio=rebuild_ratio)
        self.kind = "flat" if kind == "auto" else kind
        self.index = self._empty(self.kind)
        # hnsw only: slot -> external id, external id -> slot (live ones), dead slots
        self.labels = np.zeros(0, np.int64)
        self.slot: dict[int, int] = {}
        self.dead: set[int] = set()
        self.ids: set[int] = set()  # live external ids, every kind

    # --- construction -------------------------------------------------------------------

    def _empty(self, kind: str):
        p = self.params
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, p["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = p["ef_construction"]
            index.hnsw.efSearch = p["ef_search"]
            return index
        if kind == "ivf":
            return None  # built on the first add, when nlist can be picked from the data
        raise AssertionError(kind)

    def _new_ivf(self, n: int):
        nlist = min(n, self.params["nlist"] or max(1, min(4096, int(4 * np.sqrt(n)))))  # faiss needs n ≥ nlist
        self.params["nlist"] = nlist
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(self.params["nprobe"], nlist)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, id_: int) -> bool:
        return int(id_) in self.ids

    # --- mutation -----------------------------------------------------------------------

    def add(self, ids, vecs) -> None:
        """Add vectors under new ids; an id already present is an error (use `update`)."""
        ids, vecs = _as_ids(ids), _as_vecs(vecs, self.dim)
        assert len(ids) == len(vecs), f"{len(ids)} ids for {len(vecs)} vectors"
        if len(ids) == 0:
            return
        dup = self.ids.intersection(ids.tolist())
        if dup or len(set(ids.tolist())) != len(ids):
            raise InvalidInput(f"ids already in the index or repeated: {sorted(dup)[:5]}; use update()", param="ids")
        if self.kind == "hnsw":
            first = len(self.labels)
            self.index.add(vecs)
            self.labels = np.concatenate([self.labels, ids])
            self.slot.update({int(i): first + j for j, i in enumerate(ids)})
        else:
            if self.kind == "ivf" and self.index is None:
                self.index = self._new_ivf(len(vecs))
                self.index.train(vecs)
            self.index.add_with_ids(vecs, ids)
        self.ids.update(ids.tolist())
        if self.requested == "auto" and self.kind == "flat" and len(self.ids) > self.params["auto_threshold"]:
            LOG.info("index grew past %d vectors: converting flat -> hnsw", self.params["auto_threshold"])
            self._rebuild("hnsw")

    def remove(self, ids) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""
        ids = [i for i in _as_ids(ids).tolist() if i in self.ids]
        if not ids:
            return 0
        if self.kind == "hnsw":
            for i in ids:
                self.dead.add(self.slot.pop(i))
        else:
            removed = self.index.remove_ids(faiss.IDSelectorBatch(_as_ids(ids)))
            assert removed == len(ids), f"faiss removed {removed} of {len(ids)} ids"
        self.ids.difference_update(ids)
        if self.kind == "hnsw" and len(self.dead) > self.params["rebuild_ratio"] * max(1, len(self.labels)):
            self._rebuild("hnsw")
        return len(ids)

    def update(self, ids, vecs) -> None:
        """Replace the vectors of ids (adding those not present)."""
        self.remove(ids)
        self.add(ids, vecs)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every live entry (flat and hnsw; IVF does not keep an id→slot map)."""
        if self.kind == "flat":
            n = self.index.ntotal
            return faiss.vector_to_array(self.index.id_map).astype(np.int64), self.index.index.reconstruct_n(0, n)
        if self.kind == "hnsw":
            live = np.array(sorted(self.slot.values()), dtype=np.int64)
            if len(live) == 0:
                return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
            return self.labels[live], self.index.reconstruct_batch(live)
        raise NotImplementedError("vectors() is not available for IVF indexes")

    def _rebuild(self, kind: str) -> None:
        ids, vecs = self.vectors()
        self.kind, self.index = kind, self._empty(kind)
        self.labels, self.slot, self.dead, self.ids = np.zeros(0, np.int64), {}, set(), set()
        self.add(ids, vecs)

    # --- search -------------------------------------------------------------------------

    def search(self, q, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores, ids), each (nq, k); missing hits are id -1, score -inf."""
        q = _as_vecs(q, self.dim)
        scores = np.full((len(q), k), -np.inf, np.float32)
        out = np.full((len(q), k), -1, np.int64)
        if not self.ids or k <= 0:
            return scores, out
        if self.kind != "hnsw":
            kk = min(k, self.index.ntotal)
            s, i = self.index.search(q, kk)
            scores[:, :kk], out[:, :kk] = np.where(i >= 0, s, -np.inf), i
            return scores, out
        # over-fetch past the tombstones, then drop them
        kk = min(k + len(self.dead), self.index.ntotal)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.params["ef_search"], kk)
        s, slots = self.index.search(q, kk, params=params)
        for row in range(len(q)):
            keep = [(sc, sl) for sc, sl in zip(s[row], slots[row]) if sl >= 0 and sl not in self.dead][:k]
            for j, (sc, sl) in enumerate(keep):
                scores[row, j], out[row, j] = sc, self.labels[sl]
        return scores, out

    # --- files --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path/index.faiss`` and ``path/index.json`` atomically (temp file + rename each)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        blob = faiss.serialize_index(self.index).tobytes() if self.index is not None else b""
        meta = {"format": FORMAT, "version": VERSION, "kind": self.kind, "requested": self.requested,
                "dim": self.dim, "params": self.params, "sha256": hashlib.sha256(blob).hexdigest(),
                "ids": sorted(self.ids)}
        if self.kind == "hnsw":
            meta |= {"labels": self.labels.tolist(), "tombstones": sorted(self.dead)}
        _atomic_write(path / "index.faiss", blob)
        _atomic_write(path / "index.json", json.dumps(meta).encode())  # last: it vouches for the blob
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorIndex:
        path = Path(path)
        try:
            meta = json.loads((path / "index.json").read_text())
            blob = (path / "index.faiss").read_bytes()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexFileError(f"cannot read vector index at {path}: {exc}", param="path") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise IndexFileError(f"{path}/index.json is not an llmforge vector index (format {FORMAT} v{VERSION})")
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise IndexFileError(f"{path}/index.faiss does not match the hash in index.json: torn write or "
                                 "tampered file; rebuild the index", param="path")
        try:
            self = cls(int(meta["dim"]), meta["requested"], **meta["params"])
            self.kind = meta["kind"]
            self.index = faiss.deserialize_index(np.frombuffer(blob, np.uint8).copy()) if blob else None
            self.ids = set(int(i) for i in meta["ids"])
            if self.kind == "hnsw":
                self.labels = np.asarray(meta["labels"], np.int64)
                self.dead = set(int(i) for i in meta["tombstones"])
                self.slot = {int(lab): s for s, lab in enumerate(self.labels.tolist()) if s not in self.dead}
        except (KeyError, TypeError, ValueError, RuntimeError, AssertionError) as exc:
            raise IndexFileError(f"invalid vector index at {path}: {exc}", param="path") from exc
        expected = len(self.labels) if self.kind == "hnsw" else len(self.ids)
        if (self.index.ntotal if self.index is not None else 0) != expected or (
                self.index is not None and self.index.d != self.dim):
            raise IndexFileError(f"{path}: index.faiss and index.json disagree on size or dimension")
        return self


def _atomic_write(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
