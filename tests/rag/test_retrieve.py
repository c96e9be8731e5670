from __future__ import annotations

import numpy as np
import pytest

from llmforge.rag.chunking import make_chunk, split_recursive
from llmforge.rag.embed import HashEmbedder
from llmforge.rag.retrieve import Hit, Retriever, bm25, dense, hybrid_rrf, int_id, matches, mmr


def test_rrf_on_hand_made_rankings():
    fused = hybrid_rrf([["a", "b", "c"], ["b", "d", "a"]], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["c"] == pytest.approx(1 / 63) and scores["d"] == pytest.approx(1 / 62)
    assert [i for i, _ in fused] == ["b", "a", "d", "c"]
    assert hybrid_rrf([]) == []
    assert [i for i, _ in hybrid_rrf([["x", "y"], ["y"]], k=1)] == ["y", "x"]  # 1/3+1/2 > 1/2


def test_mmr_picks_a_diverse_second_result():
    q = np.array([1.0, 0.0, 0.0], np.float32)
    near = np.array([0.9, 0.436, 0.0], np.float32)
    cands = np.stack([near, near * 0.999 + np.array([0, 0, 0.0447], np.float32),  # near-duplicate
                      np.array([0.8, 0.0, 0.6], np.float32)])  # a bit less relevant, different
    cands /= np.linalg.norm(cands, axis=1, keepdims=True)
    assert mmr(q, cands, lambda_=1.0)[:2] == [0, 1]  # pure relevance keeps the duplicate
    assert mmr(q, cands, lambda_=0.5)[:2] == [0, 2]  # diversity skips it
    assert mmr(q, cands, 0.5, k=1) == [0] and mmr(q, np.zeros((0, 3))) == []


def test_matches_filters():
    c = make_chunk("x", "a.md", "T", 0, 1, {"lang": "en"})
    assert matches(c, None) and matches(c, {"source": "a.md", "lang": "en"})
    assert matches(c, {"source": ["b.md", "a.md"]}) and not matches(c, {"source": "b.md"})
    assert not matches(c, {"lang": "fr"}) and not matches(c, {"missing": 1})


@pytest.fixture()
def corpus(xquad):
    chunks = []
    for i, p in enumerate(xquad[:40]):
        chunks += split_recursive(p["context"], 300, 30, source=f"doc{i}", title=p["title"])
    return chunks, xquad[:40]


def test_retriever_modes_filters_offsets(corpus):
    chunks, paras = corpus
    r = Retriever(HashEmbedder(256))
    assert r.add(chunks) == len(chunks) and r.add(chunks) == 0  # re-adding unchanged chunks is free
    question = paras[3]["questions"][0]
    for mode in ("dense", "bm25", "hybrid"):
        hits = r.query(question, k=5, mode=mode)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert all(isinstance(h, Hit) for h in hits)
        for h in hits:  # offsets point into the source text
            src = paras[int(h.source[3:])]["context"]
            assert src[h.start:h.end] == h.chunk.text
    # bm25 (exact words) finds the paragraph for its own question
    assert "doc3" in [h.source for h in r.query(question, k=5, mode="bm25")]
    assert "doc3" in [h.source for h in r.query(question, k=5, mode="hybrid")]
    only = r.query(question, k=3, where={"source": "doc7"})
    assert only and all(h.source == "doc7" for h in only)
    assert r.query(question, k=3, where={"source": "nope"}) == []


def test_dense_and_bm25_functions_filter(corpus):
    chunks, paras = corpus
    r = Retriever(HashEmbedder(64))
    r.add(chunks)
    q = r.embedder.embed([paras[5]["questions"][0]])[0]
    hits = dense(q, r.index, r.chunks, 4, where={"source": "doc5"})
    assert hits and all(h.source == "doc5" for h in hits)
    scores = [h.score for h in dense(q, r.index, r.chunks, 10)]
    assert scores == sorted(scores, reverse=True)
    assert all(h.source == "doc9" for h in bm25("the", r.keyword, r.chunks, 10, where={"source": "doc9"}))


def test_remove_source_and_rerank_hook(corpus):
    chunks, paras = corpus
    r = Retriever(HashEmbedder(128))
    r.add(chunks)
    question = paras[3]["questions"][0]
    r.remove_source("doc3")
    assert all(h.source != "doc3" for h in r.query(question, k=10, mode="hybrid"))
    assert len(r) == len([c for c in chunks if c.source != "doc3"])

    seen = {}

    def reverse(query, hits):
        seen["args"] = (query, len(hits))
        return list(reversed(hits))

    plain = r.query(question, k=20, candidates=20, mode="dense")
    reranked = r.query(question, k=20, candidates=20, mode="dense", rerank=reverse)
    assert seen["args"] == (question, 20)
    assert [h.chunk.id for h in reranked] == [h.chunk.id for h in reversed(plain)]
    assert [h.rank for h in reranked] == list(range(1, 21))


def test_mmr_in_query_diversifies():
    base = "solar panels convert sunlight into electricity efficiently"
    chunks = [make_chunk(base + suffix, f"s{i}", "", 0, len(base + suffix))
              for i, suffix in enumerate(["", " today", " now", " ok"])]
    chunks.append(make_chunk("wind turbines also produce electricity from sunlight driven weather", "w", "", 0, 66))
    r = Retriever(HashEmbedder(512))
    r.add(chunks)
    plain = [h.source for h in r.query("solar electricity sunlight", k=2, mode="dense")]
    diverse = [h.source for h in r.query("solar electricity sunlight", k=2, mode="dense", mmr_lambda=0.3)]
    assert plain[1] != "w" and diverse[1] == "w"
    assert int_id(chunks[0].id) in r.chunks


def test_retriever_save_load_round_trip(corpus, tmp_path):
    from llmforge.rag.index import IndexFileError

    chunks, paras = corpus
    r = Retriever(HashEmbedder(128))
    r.add(chunks)
    question = paras[3]["questions"][0]
    before = r.query(question, k=5)
    r.save(tmp_path / "kb")
    back = Retriever.load(tmp_path / "kb", HashEmbedder(128))
    after = back.query(question, k=5)
    assert [(h.chunk, h.score) for h in after] == [(h.chunk, h.score) for h in before]
    with pytest.raises(IndexFileError, match="built with"):
        Retriever.load(tmp_path / "kb", HashEmbedder(64))
