"""Near-duplicate removal with MinHash + LSH (``minhash_dedup``), vectorised in NumPy.

A document's shingles are its word ``shingle_size``-grams after
:func:`~llmforge.data_pipeline.dedup.exact.normalize`. Its signature is, for each
of ``num_perm`` hash functions ``h(x) = (a*x + b) mod (2^61 - 1)`` (datasketch's
and datatrove's family), the minimum over its shingle hashes. Two documents
whose signatures agree on a whole band (``rows`` consecutive slots) are
candidates; with ``verify_threshold`` set, a candidate pair becomes an edge only
if its Jaccard reaches it: estimated as the share of equal signature slots
(``verify_with="signature"``, no extra storage, standard deviation ~0.035 at
J=0.8 with 112 slots) or exact from each document's stored 32-bit shingle
hashes (``verify_with="shingles"``, ~4 bytes a word in the work directory).
That check is what keeps near-misses (Jaccard 0.6-0.8, which 14 x 8 bands still
pair 21-92% of the time) out of the clusters. Clusters are the connected
components of the edges; each keeps its smallest ``(shard, position)``.

Speed comes from never touching a shingle in Python: a batch of normalised
documents is joined into one byte array, a prefix polynomial hash over it gives
every word n-gram's hash from two array lookups (:func:`ngram_hashes`), and the
``num_perm`` permutations are applied to blocks of shingles at once with
in-place uint64 arithmetic (:func:`_min_hashes`).

Files (see ``exact.py`` for the common ones): ``00003.sig.npy`` (docs x num_perm
uint32, for verification without re-reading text), ``00003.bands.npy`` and
``00003.bpos.npy`` (bands x docs: each band's hashes sorted, and the matching
positions), and with ``verify_with="shingles"`` ``00003.shingles.npy`` (each
document's sorted distinct 32-bit shingle hashes, concatenated) and
``00003.shoff.npy`` (where each document's run starts). ``plan`` merges one
band at a time across shards, then reads only the candidates' rows.

Pure functions for tests and benchmarks: :func:`shingles`, :func:`jaccard`,
:func:`signature`, :func:`estimated_jaccard`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmforge.data_pipeline.dedup.exact import (ShardedDedup, key_groups, load_rows, normalize, save_npy,
                                                shard_path, sorted_by_key)
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step

U64 = np.uint64
MERSENNE = (1 << 61) - 1
_M61 = U64(MERSENNE)
_S61 = U64(61)
_BASE = 1099511628211  # odd, so it has an inverse mod 2^64
_BASE_INV = pow(_BASE, -1, 1 << 64)
_BLOCK = 512  # shingles per permutation block: 512 x 112 x 8 B ~ 0.5 MB stays in L2
BATCH_CHARS = 1 << 20  # text hashed per batch in index_shard
ALL_PAIRS_MAX = 32  # LSH buckets up to this size are verified pair by pair; larger ones as a star + chain


# --- hashing kernels -------------------------------------------------------------------------


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser: full avalanche, so polynomial or linear structure doesn't leak into minima."""
    h = h ^ (h >> U64(33))
    h *= U64(0xFF51AFD7ED558CCD)
    h ^= h >> U64(33)
    h *= U64(0xC4CEB9FE1A85EC53)
    h ^= h >> U64(33)
    return h


_POW: list[np.ndarray] = [np.ones(1, U64), np.ones(1, U64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``base^j`` and ``base^-j`` mod 2^64 for j <= n (uint64 arithmetic wraps, which is the modulus)."""
    if len(_POW[0]) <= n:
        m = max(n + 1, 2 * len(_POW[0]))
        for i, base in enumerate((_BASE, _BASE_INV)):
            p = np.empty(m, U64)
            p[0] = 1
            np.cumprod(np.full(m - 1, base, U64), out=p[1:])
            _POW[i] = p
    return _POW[0], _POW[1]


def ngram_hashes(norm_texts: list[str], n: int, whole_if_short: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram of each normalised text, documents one after the other.

    Returns ``(hashes, counts)``: ``counts[i]`` n-grams belong to text ``i``. A
    text with fewer than ``n`` words yields itself as one n-gram when
    ``whole_if_short`` (MinHash), else nothing (decontamination). Each hash is
    a polynomial hash of the n-gram's UTF-8 bytes (including the single spaces
    between words), taken from prefix sums over the batch, then mixed.
    """
    nw = np.fromiter((t.count(" ") + 1 if t else 0 for t in norm_texts), np.int64, len(norm_texts))
    counts = np.where(nw >= n, nw - n + 1, (nw > 0) if whole_if_short else 0).astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, U64), counts
    buf = np.frombuffer(" ".join(t for t in norm_texts if t).encode("utf-8"), np.uint8)
    spaces = np.flatnonzero(buf == 32)
    w_start = np.r_[0, spaces + 1]  # (words,) byte span of every word in the batch
    w_end = np.r_[spaces, len(buf)]
    doc = np.repeat(np.arange(len(norm_texts)), counts)  # (total,) text of each n-gram
    first = (np.cumsum(nw) - nw)[doc] + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    last = first + np.minimum(n, nw[doc]) - 1
    s, e = w_start[first], w_end[last]
    pw, pw_inv = _powers(len(buf))
    prefix = np.zeros(len(buf) + 1, U64)
    np.cumsum(buf.astype(U64) * pw_inv[:len(buf)], out=prefix[1:])
    poly = (prefix[e] - prefix[s]) * pw[s]  # = sum_t byte[s+t] * base^-t, whatever s is
    return _fmix64(poly + (e - s).astype(U64) * U64(0x9E3779B97F4A7C15)), counts


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.RandomState(seed)
    a = gen.randint(1, MERSENNE, size=num_perm, dtype=U64)
    b = gen.randint(0, MERSENNE, size=num_perm, dtype=U64)
    return a, b


def _min_hashes(hashes: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(docs, num_perm) minimum of ``(a*x + b) mod (2^61-1)`` over each document's shingle hashes x."""
    sig = np.full((len(counts), len(a)), np.iinfo(U64).max, U64)
    doc = np.repeat(np.arange(len(counts)), counts)
    y = np.empty((_BLOCK, len(a)), U64)
    t = np.empty_like(y)
    for r0 in range(0, len(hashes), _BLOCK):
        x, d = hashes[r0:r0 + _BLOCK], doc[r0:r0 + _BLOCK]
        yy, tt = y[:len(x)], t[:len(x)]
        np.multiply(x[:, None], a, out=yy)  # wraps mod 2^64, as in datasketch
        np.add(yy, b, out=yy)
        np.right_shift(yy, _S61, out=tt)  # x mod (2^61-1) == (x & (2^61-1)) + (x >> 61), up to one subtraction
        np.bitwise_and(yy, _M61, out=yy)
        np.add(yy, tt, out=yy)
        starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        owners = d[starts]
        sig[owners] = np.minimum(sig[owners], np.minimum.reduceat(yy, starts, axis=0))
    return sig


def _signatures(texts: list[str], num_perm: int, shingle_size: int, seed: int,
                lowercase: bool, nfkc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signatures (docs, num_perm) uint32, shingles per doc, the shingle hashes doc after doc)."""
    norm = [normalize(t, lowercase=lowercase, nfkc=nfkc) for t in texts]
    hashes, counts = ngram_hashes(norm, shingle_size)
    sig = _min_hashes(hashes, counts, *_permutations(num_perm, seed))
    return (sig & U64(0xFFFFFFFF)).astype(np.uint32), counts, hashes  # 32 bits per slot are plenty to compare



def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique by sorting (NumPy 2's hash-based unique is ~10x slower on large uint64 arrays)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _shingle_sets(hashes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each document's distinct shingles as sorted 32-bit hashes, concatenated, and how many each has."""
    doc = np.repeat(np.arange(len(counts), dtype=U64), counts)
    keys = _sorted_unique((doc << U64(32)) | (hashes >> U64(32)))
    sizes = np.bincount((keys >> U64(32)).astype(np.int64), minlength=len(counts))
    return (keys & U64(0xFFFFFFFF)).astype(np.uint32), sizes


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(docs, bands) 64-bit hash of each band's ``rows`` slots."""
    mult = np.random.RandomState(0).randint(1, 2**63, size=rows, dtype=U64) | U64(1)
    return _fmix64((sig.reshape(len(sig), bands, rows).astype(U64) * mult).sum(axis=2, dtype=U64))


# --- pure functions for tests and benchmarks -----------------------------------------------


def shingles(text: str, k: int = 5, *, lowercase: bool = True, nfkc: bool = True) -> set[str]:
    """The word k-grams MinHash sees (a text shorter than k words is one shingle)."""
    words = normalize(text, lowercase=lowercase, nfkc=nfkc).split()
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b| (1.0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def signature(texts: list[str], *, num_perm: int = 112, shingle_size: int = 5, seed: int = 1,
              lowercase: bool = True, nfkc: bool = True) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures; an empty text gets all 0xFFFFFFFF."""
    return _signatures(list(texts), num_perm, shingle_size, seed, lowercase, nfkc)[0]


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Share of equal slots, row by row (or for two single signatures)."""
    return (np.asarray(sig_a) == np.asarray(sig_b)).mean(axis=-1)


# --- the step ----------------------------------------------------------------------------


class MinhashParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    shingle_size: int = Field(5, ge=1, le=64)
    """Words per shingle (3-10; 5 as datatrove). Smaller finds more, and more false candidates."""
    num_perm: int = Field(112, ge=2, le=1024)
    """Signature length; must equal bands * rows."""
    bands: int = Field(14, ge=1)
    """LSH bands. Candidate threshold ~ (1/bands)^(1/rows): 14 x 8 -> 0.72; P(candidate | J=0.8) = 0.92."""
    rows: int = Field(8, ge=1)
    """Slots per band."""
    seed: int = 1
    """Seed of the permutations; signatures are only comparable under the same seed."""
    lowercase: bool = True
    nfkc: bool = True
    """Unicode NFKC normalisation before shingling."""
    verify_threshold: float | None = Field(0.8, gt=0, le=1)
    """Keep a candidate pair only if its Jaccard reaches this; None keeps every LSH collision (measured in
    bench/dedup.py: precision 0.58 without verification, 0.97 with the defaults, at the same recall)."""
    verify_with: Literal["signature", "shingles"] = "shingles"
    """How candidates are verified. 'signature': the share of equal slots (no extra storage; with 112 slots its
    standard deviation is ~0.035 at J=0.8, so pairs within ~0.05 of the threshold go either way). 'shingles':
    the exact Jaccard of the stored 32-bit shingle hashes (~4 bytes a word of text in the work directory)."""

    @model_validator(mode="after")
    def _bands_times_rows(self) -> "MinhashParams":
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"bands * rows must equal num_perm: {self.bands} * {self.rows} = "
                             f"{self.bands * self.rows}, not {self.num_perm}")
        return self


def _gather(sigs: list[np.ndarray], offsets: np.ndarray, gids: np.ndarray) -> np.ndarray:
    """Signature rows of global ids, reading only those rows of each shard's memory-mapped file."""
    out = np.empty((len(gids), sigs[0].shape[1]), np.uint32)
    shard_of = np.searchsorted(offsets, gids, side="right") - 1
    for s in np.unique(shard_of):
        m = shard_of == s
        out[m] = sigs[s][gids[m] - offsets[s]]
    return out


def _candidate_pairs(keys: np.ndarray, gids: np.ndarray, all_pairs: bool) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) with u < v for documents sharing a band hash; gids ascend within a group."""
    if not all_pairs:  # unverified edges: a chain connects the same components as all pairs
        same = keys[1:] == keys[:-1]
        return gids[:-1][same], gids[1:][same]
    starts, sizes = key_groups(keys)
    us, vs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for m in np.unique(sizes[sizes > 1]):
        st = starts[sizes == m][:, None]
        if m <= ALL_PAIRS_MAX:
            i, j = np.triu_indices(m, 1)
        else:
            i = np.r_[np.zeros(m - 1, np.int64), np.arange(1, m - 1)]
            j = np.r_[np.arange(1, m), np.arange(2, m)]
        us.append(gids[st + i].ravel())
        vs.append(gids[st + j].ravel())
    return np.concatenate(us), np.concatenate(vs)


def connected_components(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, root of each node): union-find by hooking roots and pointer jumping; the root is the smallest node."""
    nodes, inv = np.unique(np.r_[u, v], return_inverse=True)
    uu, vv = inv[:len(u)], inv[len(u):]
    labels = np.arange(len(nodes))
    while True:
        lu, lv = labels[uu], labels[vv]  # every label is a root here
        diff = lu != lv
        if not diff.any():
            return nodes, nodes[labels]
        np.minimum.at(labels, np.maximum(lu[diff], lv[diff]), np.minimum(lu[diff], lv[diff]))
        while True:
            nxt = labels[labels]
            if np.array_equal(nxt, labels):
                break
            labels = nxt


@register_step
class MinhashDedup(ShardedDedup):
    """Drop near-duplicate documents (MinHash LSH over word shingles), keeping one per cluster."""

    name = "minhash_dedup"
    Params = MinhashParams
    reason = "near_duplicate"

    def _store_shingles(self) -> bool:
        return self.params.verify_threshold is not None and self.params.verify_with == "shingles"

    def index_shard(self, shard: int, docs: Iterable[Document], workdir: str) -> None:
        if self._indexed(workdir, shard):
            return
        t0 = time.perf_counter()
        p, ids, batch, chars = self.params, [], [], 0
        sigs, counts, sets, set_sizes = [], [], [], []

        def flush() -> None:
            sig, cnt, hashes = _signatures(batch, p.num_perm, p.shingle_size, p.seed, p.lowercase, p.nfkc)
            sigs.append(sig), counts.append(cnt)
            if self._store_shingles():
                values, sizes = _shingle_sets(hashes, cnt)
                sets.append(values), set_sizes.append(sizes)
            batch.clear()

        for doc in docs:
            ids.append(doc.id)
            batch.append(doc.text)
            chars += len(doc.text)
            if chars >= BATCH_CHARS:
                flush()
                chars = 0
        flush()
        sig, cnt = np.concatenate(sigs), np.concatenate(counts)
        valid = np.flatnonzero(cnt > 0)  # an empty text has no shingles and matches nothing
        bh = band_hashes(sig[valid], p.bands, p.rows)
        order = np.argsort(bh, axis=0, kind="stable")  # per band; ties keep position order
        save_npy(shard_path(workdir, shard, "sig.npy"), sig)
        save_npy(shard_path(workdir, shard, "bands.npy"), np.take_along_axis(bh, order, axis=0).T.copy())
        save_npy(shard_path(workdir, shard, "bpos.npy"), valid[order].T.astype(np.uint32))
        if self._store_shingles():
            save_npy(shard_path(workdir, shard, "shingles.npy"), np.concatenate(sets))
            save_npy(shard_path(workdir, shard, "shoff.npy"), np.r_[0, np.cumsum(np.concatenate(set_sizes))])
        self._finish_index(workdir, shard, ids)
        self.stats.seconds += time.perf_counter() - t0

    def plan(self, workdir: str, num_shards: int) -> None:
        if self._planned(workdir, num_shards):
            return
        t0 = time.perf_counter()
        offsets = self._offsets(workdir, num_shards)
        total = max(int(offsets[-1]), 1)
        verify = self.params.verify_threshold
        bands = [load_rows(workdir, s, "bands.npy") for s in range(num_shards)]
        bpos = [load_rows(workdir, s, "bpos.npy") for s in range(num_shards)]
        codes = [np.zeros(0, np.int64)]
        for band in range(self.params.bands):  # one band of every shard in memory at a time
            for keys, gids in sorted_by_key([b[band] for b in bands], [p[band] for p in bpos], offsets):
                u, v = _candidate_pairs(keys, gids, all_pairs=verify is not None)
                codes.append(_sorted_unique(u * total + v))
        pairs = _sorted_unique(np.concatenate(codes))
        u, v = pairs // total, pairs % total
        counts = {"candidate_pairs": int(len(pairs))}
        similarity = self._similarity(workdir, offsets)
        if verify is not None:
            keep = np.concatenate([similarity(u[i:i + 8192], v[i:i + 8192]) >= verify for i in range(0, len(u), 8192)]
                                  or [np.zeros(0, bool)])
            u, v = u[keep], v[keep]
            counts["verified_pairs"] = int(len(u))
        nodes, roots = connected_components(u, v)
        dup = nodes != roots
        order = np.lexsort((nodes[dup], roots[dup]))
        d_nodes, d_roots = nodes[dup][order], roots[dup][order]
        jac = similarity(d_roots, d_nodes)
        starts, sizes = key_groups(d_roots)
        clusters = [(int(d_roots[s]), d_nodes[s:s + m], jac[s:s + m].tolist()) for s, m in zip(starts, sizes)]
        self._write_plan(workdir, offsets, clusters, counts)
        self.stats.seconds += time.perf_counter() - t0

    def _similarity(self, workdir: str, offsets: np.ndarray):  # noqa: ANN202
        """f(u, v) -> Jaccard of each pair of global ids: exact from stored shingles, or estimated from signatures."""
        num_shards = len(offsets) - 1
        if self._store_shingles():
            sets = [(load_rows(workdir, s, "shingles.npy"), np.load(shard_path(workdir, s, "shoff.npy")))
                    for s in range(num_shards)]
            return lambda u, v: _exact_jaccard(sets, offsets, u, v)
        sigs = [load_rows(workdir, s, "sig.npy") for s in range(num_shards)]
        return lambda u, v: estimated_jaccard(_gather(sigs, offsets, u), _gather(sigs, offsets, v))


def _segments(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices start..start+length of every segment, concatenated."""
    return np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))


def _gather_sets(sets: list[tuple[np.ndarray, np.ndarray]], offsets: np.ndarray,
                 gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shingle hashes of each gid, concatenated; how many each has)."""
    shard_of = np.searchsorted(offsets, gids, side="right") - 1
    starts, lengths = np.zeros(len(gids), np.int64), np.zeros(len(gids), np.int64)
    for s in np.unique(shard_of):
        m, off = shard_of == s, sets[s][1]
        loc = gids[m] - offsets[s]
        starts[m], lengths[m] = off[loc], off[loc + 1] - off[loc]
    out = np.empty(int(lengths.sum()), np.uint32)
    out_starts = np.cumsum(lengths) - lengths
    for s in np.unique(shard_of):
        m = shard_of == s
        out[_segments(out_starts[m], lengths[m])] = sets[s][0][_segments(starts[m], lengths[m])]
    return out, lengths


def _exact_jaccard(sets: list[tuple[np.ndarray, np.ndarray]], offsets: np.ndarray, u: np.ndarray,
                   v: np.ndarray) -> np.ndarray:
    """Jaccard of each (u, v) from stored shingle hashes: tag every hash with its pair, sort, count equal neighbours."""
    hu, lu = _gather_sets(sets, offsets, u)
    hv, lv = _gather_sets(sets, offsets, v)
    pair = np.arange(len(u), dtype=U64)
    keys = np.concatenate([(np.repeat(pair, lu) << U64(32)) | hu, (np.repeat(pair, lv) << U64(32)) | hv])
    keys.sort()
    same = keys[1:] == keys[:-1]  # hashes are distinct within a document, so a repeat is a shared shingle
    inter = np.bincount((keys[1:][same] >> U64(32)).astype(np.int64), minlength=len(u))
    union = lu + lv - inter
    return np.divide(inter, union, out=np.ones(len(u)), where=union > 0)
