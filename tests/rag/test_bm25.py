from __future__ import annotations

import math

import pytest

from llmforge.rag.bm25 import BM25, tokenize

DOCS = {"d1": "The cat sat on the mat.", "d2": "the dog sat", "d3": "Cats and dogs!"}


def test_scores_match_hand_computation():
    bm = BM25()  # k1=1.5, b=0.75
    bm.add(DOCS.keys(), DOCS.values())
    # N=3, lengths 6, 3, 3 -> avgdl 4
    idf_cat = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))  # 0.980829
    idf_sat = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # 0.470004
    tf1 = 1 * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 6 / 4))  # d1: tf 1, |d| 6 -> 0.816327
    tf2 = 1 * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 3 / 4))  # d2: tf 1, |d| 3 -> 1.126761
    d1 = tf1 * (idf_cat + idf_sat)
    d2 = tf2 * idf_sat
    assert d1 == pytest.approx(1.184354, abs=1e-6) and d2 == pytest.approx(0.529582, abs=1e-6)
    hits = bm.search("cat sat", k=10)
    assert [h[0] for h in hits] == ["d1", "d2"]  # d3 says "cats", which is another word
    assert hits[0][1] == pytest.approx(d1, rel=1e-9) and hits[1][1] == pytest.approx(d2, rel=1e-9)
    assert bm.idf("cat") == pytest.approx(idf_cat)


def test_incremental_add_remove_equals_fresh_build():
    bm = BM25()
    bm.add(DOCS.keys(), DOCS.values())
    bm.add(["d4"], ["a cat and a cat"])
    bm.remove(["d2"])
    bm.add(["d1"], ["the cat sat on the mat"])  # replacing a document
    fresh = BM25()
    fresh.add(["d1", "d3", "d4"], ["the cat sat on the mat", DOCS["d3"], "a cat and a cat"])
    for q in ["cat", "sat mat", "dogs and cats", "nothing matches"]:
        got, want = bm.search(q), fresh.search(q)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want])
    assert "dog" not in bm.df and len(bm) == 3


def test_allowed_and_k():
    bm = BM25()
    bm.add(range(20), [f"apple {'pie ' * i}" for i in range(20)])
    assert len(bm.search("apple", k=5)) == 5
    assert {i for i, _ in bm.search("apple", k=50, allowed={3, 4})} == {3, 4}
    assert BM25().search("anything") == []
    assert tokenize("Hello, WORLD! it's") == ["hello", "world", "it", "s"]
