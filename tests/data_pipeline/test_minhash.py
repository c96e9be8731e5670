"""minhash_dedup: near-duplicates found, near-misses kept, clusters, sharded == single stream,
and the vectorised kernel against brute force (exact Jaccard, a per-shingle Python MinHash)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dedup_cases import distinct_words, docs, expected_jaccard, replace_spaced, run_sharded, text
from pydantic import ValidationError

from llmforge.data_pipeline.dedup import MinhashDedup, estimated_jaccard, jaccard, shingles, signature
from llmforge.data_pipeline.dedup.minhash import MERSENNE, _permutations, connected_components, ngram_hashes
from llmforge.data_pipeline.registry import get_step
from llmforge.data_pipeline.spec import PipelineSpec, build_steps
from llmforge.errors import InvalidInput

BASE = distinct_words(200, seed=1)
NEAR = replace_spaced(BASE, 3)  # J = 181/211 = 0.858
HALF = replace_spaced(BASE, 13)  # J = 131/261 = 0.502
OTHER = distinct_words(200, seed=2)


def test_the_hand_made_pairs_have_the_jaccard_they_claim():
    assert jaccard(shingles(text(BASE)), shingles(text(NEAR))) == pytest.approx(181 / 211) == expected_jaccard(200, 3)
    assert jaccard(shingles(text(BASE)), shingles(text(HALF))) == pytest.approx(131 / 261)
    assert 0.84 < 181 / 211 < 0.87 and 0.49 < 131 / 261 < 0.51


def test_registered_and_bands_times_rows_must_equal_num_perm():
    assert get_step("minhash_dedup") is MinhashDedup
    with pytest.raises(ValidationError, match="bands \\* rows must equal num_perm"):
        MinhashDedup(bands=10, rows=8)
    with pytest.raises(InvalidInput, match="steps\\[0\\]"):
        build_steps(PipelineSpec.parse({"steps": [{"step": "minhash_dedup", "params": {"num_perm": 100}}]}))
    assert MinhashDedup(num_perm=128, bands=16, rows=8).params.num_perm == 128


@pytest.mark.parametrize(("verify_with", "threshold"), [("signature", 0.75), ("shingles", 0.8)])
def test_near_duplicate_at_085_is_dropped_and_pair_at_05_is_kept(verify_with, threshold):
    step = MinhashDedup(verify_threshold=threshold, verify_with=verify_with)
    out = list(step.run(docs([text(BASE), text(OTHER), text(NEAR), text(HALF)])))
    assert [d.id for d in out] == ["d0", "d1", "d3"]  # d2 (J 0.86 with d0) dropped, d3 (J 0.50) kept
    assert step.stats.dropped == {"near_duplicate": 1}
    assert (step.stats.docs_in, step.stats.docs_out) == (4, 3)
    assert step.stats.examples[0]["reason"] == "near_duplicate" and step.stats.examples[0]["id"] == "d2"


def test_without_verification_every_lsh_collision_is_an_edge():
    assert [d.id for d in MinhashDedup().run(docs([text(BASE), text(OTHER), text(NEAR)]))] == ["d0", "d1"]
    assert [d.id for d in MinhashDedup().run(docs([text(BASE), text(OTHER), text(HALF)]))] == ["d0", "d1", "d2"]


def test_first_occurrence_is_kept_and_clusters_are_written(tmp_path):
    near_b = replace_spaced(BASE, 2, seed=7)  # a second variant of BASE
    texts = [text(OTHER), text(NEAR), text(BASE), text(near_b), text(BASE).upper(), text(HALF), ""]
    step = MinhashDedup(verify_threshold=0.75)
    out = run_sharded(step, [docs(texts)], str(tmp_path))
    assert [d.id for d in out] == ["d0", "d1", "d5", "d6"]  # d1 is the first of {d1..d4}; empty text never matches
    clusters = [json.loads(line) for line in (tmp_path / "clusters.jsonl").read_text().splitlines()]
    assert len(clusters) == 1
    assert clusters[0]["kept"] == "d1" and sorted(clusters[0]["dropped"]) == ["d2", "d3", "d4"]
    jac = dict(zip(clusters[0]["dropped"], clusters[0]["jaccard"]))
    assert jac["d2"] == jac["d4"]  # BASE and its upper-case copy have equal signatures
    assert abs(jac["d2"] - 181 / 211) <= 0.1
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["counts"]["clusters"] == 1 and plan["counts"]["duplicates"] == 3


def test_exact_verification_separates_082_from_077(tmp_path):
    above, below = replace_spaced(BASE, 4), replace_spaced(BASE, 5, seed=9)  # J = 176/216 = 0.815, 171/221 = 0.774
    assert jaccard(shingles(text(BASE)), shingles(text(above))) == pytest.approx(expected_jaccard(200, 4))
    assert jaccard(shingles(text(BASE)), shingles(text(below))) == pytest.approx(expected_jaccard(200, 5))
    step = MinhashDedup(verify_threshold=0.8, verify_with="shingles")
    out = run_sharded(step, [docs([text(BASE), text(OTHER)]), docs([text(above)], "a") + docs([text(below)], "b")],
                      str(tmp_path))
    assert [d.id for d in out] == ["d0", "d1", "b0"]
    cluster = json.loads((tmp_path / "clusters.jsonl").read_text())
    assert cluster == {"kept": "d0", "dropped": ["a0"], "jaccard": [round(expected_jaccard(200, 4), 3)]}
    plan = json.loads((tmp_path / "plan.json").read_text())["counts"]
    assert plan["candidate_pairs"] >= 1 and plan["verified_pairs"] == 1


def _thirty_docs() -> tuple[list[str], set[int]]:
    """30 texts: 20 unrelated, 10 copies or near copies of earlier ones, most of them in a later shard."""
    texts = [text(distinct_words(120, seed=100 + i)) for i in range(20)]
    plant = {20: (2, 2), 21: (15, 0), 22: (4, 2), 23: (9, 1), 24: (11, 2), 25: (2, 1), 26: (18, 0), 27: (6, 2),
             28: (0, 2), 29: (13, 1)}  # index -> (source, words replaced: 0 -> J 1.0, 1 -> 0.92, 2 -> 0.84)
    for i, (src, r) in sorted(plant.items()):
        words = texts[src].replace(".", "").lower().split()
        texts.append(text(replace_spaced(words, r, seed=i)) if r else texts[src].lower())
    dropped = set(plant)
    # 10..19 land in shard 1, 20..29 in shard 2: every planted copy crosses a shard boundary
    return texts, dropped


@pytest.mark.parametrize("verify_with", ["signature", "shingles"])
def test_sharded_path_matches_single_stream_across_shards(verify_with):
    texts, planted = _thirty_docs()
    all_docs = docs(texts)
    single = [d.id for d in MinhashDedup(verify_threshold=0.7, verify_with=verify_with).run(all_docs)]
    step = MinhashDedup(verify_threshold=0.7, verify_with=verify_with)
    sharded = [d.id for d in run_sharded(step, [all_docs[i:i + 10] for i in (0, 10, 20)])]
    assert sharded == single
    assert set(single) == {f"d{i}" for i in range(30) if i not in planted}
    assert step.stats.dropped == {"near_duplicate": len(planted)}


def test_signature_estimate_is_within_01_of_brute_force_jaccard():
    pairs = [(BASE, replace_spaced(BASE, r)) for r in (1, 3, 6, 10, 16)]
    pairs.append((BASE, BASE[:120] + OTHER[:80]))
    for a, b in pairs:
        true = jaccard(shingles(text(a)), shingles(text(b)))
        sig = signature([text(a), text(b)])
        assert abs(float(estimated_jaccard(sig[0], sig[1])) - true) <= 0.1, (true, estimated_jaccard(sig[0], sig[1]))


def test_kernel_matches_a_per_shingle_python_minhash():
    """The vectorised path equals min over shingles of ((a*x + b) mod 2^64) mod (2^61 - 1), shingle by shingle."""
    sample = text(BASE[:40])
    a, b = _permutations(16, 3)
    expected = []
    for i in range(16):
        mins = []
        for sh in sorted(shingles(sample)):
            x = int(ngram_hashes([sh], 5)[0][0])  # a shingle's hash doesn't depend on where it sits
            mins.append(((int(a[i]) * x + int(b[i])) % 2**64) % MERSENNE)
        expected.append(min(mins) & 0xFFFFFFFF)
    assert signature([sample], num_perm=16, seed=3)[0].tolist() == expected


def test_ngram_hashes_agree_with_python_shingles():
    norm = ["alpha beta gamma delta epsilon zeta eta", "", "one two", "théta ïota kappa lambda mu"]
    hashes, counts = ngram_hashes(norm, 5)
    assert counts.tolist() == [3, 0, 1, 1]
    alone = ngram_hashes(["alpha beta gamma delta epsilon", "beta gamma delta epsilon zeta",
                          "gamma delta epsilon zeta eta", "one two", "théta ïota kappa lambda mu"], 5)[0]
    assert hashes.tolist() == alone.tolist()
    assert len(set(hashes.tolist())) == 5


def test_connected_components_roots_are_the_smallest_member():
    nodes, roots = connected_components(np.array([5, 1, 9, 7]), np.array([9, 3, 7, 12]))
    assert dict(zip(nodes.tolist(), roots.tolist())) == {1: 1, 3: 1, 5: 5, 7: 5, 9: 5, 12: 5}


def test_plan_without_every_shard_indexed_says_what_to_run(tmp_path):
    step = MinhashDedup()
    step.index_shard(0, iter(docs(["a b c d e f"])), str(tmp_path))
    with pytest.raises(InvalidInput, match="shard 1 of 2"):
        step.plan(str(tmp_path), 2)


@pytest.mark.parametrize("verify_with", ["signature", "shingles"])
def test_empty_shards_and_empty_texts(verify_with):
    """A previous step may leave a shard empty; texts without words have no shingles and match nothing."""
    base = text(BASE)
    shards = [[], docs(["", "  ...  "], "e"), docs([base, base.upper()], "a"), []]
    out = run_sharded(MinhashDedup(verify_threshold=0.8, verify_with=verify_with), shards)
    assert [d.id for d in out] == ["e0", "e1", "a0"]
