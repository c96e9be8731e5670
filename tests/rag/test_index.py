from __future__ import annotations

import json
import time

import numpy as np
import pytest

from llmforge.rag.index import IndexFileError, VectorIndex

import faiss  # noqa: E402  (after our import so a missing faiss fails with llmforge's message first)

faiss.omp_set_num_threads(2)  # no more threads than the 2 cores of CI machines


def synthetic(n: int, d: int, nq: int, seed: int = 1234, clusters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors (faiss contrib SyntheticDataset spirit: structured, not trivially easy).
    Queries are drawn from the same distribution."""
    rs = np.random.RandomState(seed)
    centers = rs.randn(clusters, d).astype(np.float32)
    def draw(m):
        x = centers[rs.randint(clusters, size=m)] + 0.7 * rs.randn(m, d).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    return draw(n), draw(nq)


def brute_force(xb: np.ndarray, ids: np.ndarray, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = xq @ xb.T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, axis=1), ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def data():
    xb, xq = synthetic(3000, 32, 50)
    ids = np.arange(3000, dtype=np.int64) * 7 + 1000  # ids are ours, not positions
    return xb, xq, ids


def test_flat_equals_brute_force(data):
    xb, xq, ids = data
    idx = VectorIndex(32, "flat")
    idx.add(ids, xb)
    scores, found = idx.search(xq, 10)
    ref_s, ref_i = brute_force(xb, ids, xq, 10)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)
    assert recall(found, ref_i) == 1.0  # equal sets (ties may reorder)
    assert (found[:, 0] == ref_i[:, 0]).mean() > 0.99


def test_hnsw_recall_vs_exact():
    xb, xq = synthetic(20_000, 64, 200, seed=7)
    ids = np.arange(len(xb), dtype=np.int64)
    t0 = time.time()
    idx = VectorIndex(64, "hnsw", hnsw_m=16, ef_construction=40, ef_search=64)
    idx.add(ids, xb)
    _, found = idx.search(xq, 10)
    _, truth = brute_force(xb, ids, xq, 10)
    assert recall(found, truth) >= 0.95
    assert time.time() - t0 < 20


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_add_remove_update_reflected(data, kind):
    xb, xq, ids = data
    idx = VectorIndex(32, kind, nlist=16, nprobe=16)  # nprobe = nlist: IVF is exact here
    idx.add(ids, xb)
    _, top = idx.search(xq[:1], 5)
    gone = top[0, :2]
    assert idx.remove(gone) == 2 and len(idx) == len(ids) - 2
    _, after = idx.search(xq[:1], 5)
    assert not set(gone) & set(after[0]) and after[0, 0] == top[0, 2]

    # update: move an id's vector onto the query; it becomes the top hit with score ~1
    target = int(ids[-1])
    idx.update([target], xq[:1])
    s, after = idx.search(xq[:1], 3)
    assert after[0, 0] == target and s[0, 0] == pytest.approx(1.0, abs=1e-4)
    assert len(idx) == len(ids) - 2
    # a removed id can come back, an existing one cannot be added twice
    idx.add(gone[:1], xb[:1])
    with pytest.raises(Exception, match="update"):
        idx.add([target], xq[:1])
    # exactness vs brute force over what is live
    live = np.array(sorted(idx.ids))
    if kind != "ivf":
        lids, lvecs = idx.vectors()
        assert sorted(lids.tolist()) == live.tolist()
    s, found = idx.search(xq, 10)
    assert not set(found.ravel()) - set(live.tolist())


def test_hnsw_tombstones_compact_on_rebuild(data):
    xb, xq, ids = data
    idx = VectorIndex(32, "hnsw", rebuild_ratio=0.25)
    idx.add(ids, xb)
    idx.remove(ids[:500])
    assert len(idx.dead) == 500 and idx.index.ntotal == 3000  # tombstoned, not removed
    idx.remove(ids[500:800])  # 800 > 0.25 * 3000: rebuilt from the live vectors
    assert not idx.dead and idx.index.ntotal == 2200 and len(idx) == 2200
    _, found = idx.search(xq, 10)
    _, truth = brute_force(xb[800:], ids[800:], xq, 10)
    assert recall(found, truth) >= 0.95


def test_auto_switches_to_hnsw_past_threshold(data):
    xb, xq, ids = data
    idx = VectorIndex(32, "auto", auto_threshold=1000)
    idx.add(ids[:800], xb[:800])
    assert idx.kind == "flat"
    idx.add(ids[800:], xb[800:])
    assert idx.kind == "hnsw" and len(idx) == 3000
    _, found = idx.search(xq, 10)
    assert recall(found, brute_force(xb, ids, xq, 10)[1]) >= 0.95


def test_empty_and_short_results():
    idx = VectorIndex(4, "flat")
    s, i = idx.search(np.ones(4, np.float32), 3)
    assert (i == -1).all() and np.isneginf(s).all()
    idx.add([5], np.eye(4, dtype=np.float32)[:1])
    s, i = idx.search(np.eye(4, dtype=np.float32)[0], 3)
    assert i[0].tolist() == [5, -1, -1]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path, data, kind):
    xb, xq, ids = data
    idx = VectorIndex(32, kind, nlist=16)
    idx.add(ids, xb)
    idx.remove(ids[:10])
    before = idx.search(xq, 10)
    idx.save(tmp_path / "kb")
    assert sorted(p.name for p in (tmp_path / "kb").iterdir()) == ["index.faiss", "index.json"]  # no temp files left
    back = VectorIndex.load(tmp_path / "kb")
    after = back.search(xq, 10)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0])
    assert back.kind == kind and back.ids == idx.ids
    back.update(ids[10:11], xq[:1])  # still mutable after loading
    assert back.search(xq[:1], 1)[1][0, 0] == ids[10]


def test_tampered_or_garbage_files_raise(tmp_path, data):
    xb, _, ids = data
    VectorIndex(32, "flat").save(tmp_path / "empty")  # an empty index round-trips too
    assert len(VectorIndex.load(tmp_path / "empty")) == 0
    idx = VectorIndex(32, "flat")
    idx.add(ids[:100], xb[:100])
    path = idx.save(tmp_path / "kb")

    blob = bytearray((path / "index.faiss").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "index.faiss").write_bytes(bytes(blob))
    with pytest.raises(IndexFileError, match="hash"):
        VectorIndex.load(path)

    (path / "index.faiss").write_bytes(b"\x80\x04garbage pickle-looking bytes")
    meta = json.loads((path / "index.json").read_text())
    import hashlib
    meta["sha256"] = hashlib.sha256(b"\x80\x04garbage pickle-looking bytes").hexdigest()
    (path / "index.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFileError, match="invalid vector index"):
        VectorIndex.load(path)

    (path / "index.json").write_text("not json")
    with pytest.raises(IndexFileError, match="cannot read"):
        VectorIndex.load(path)
    (path / "index.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(IndexFileError, match="not an llmforge vector index"):
        VectorIndex.load(path)
    with pytest.raises(IndexFileError):
        VectorIndex.load(tmp_path / "missing")
