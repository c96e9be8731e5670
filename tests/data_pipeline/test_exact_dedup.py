"""exact_dedup: copies modulo case, whitespace and punctuation go; the first occurrence stays;
clusters name the rows; the sharded path drops the same documents as one stream."""

from __future__ import annotations

import json

import pytest
from dedup_cases import distinct_words, docs, run_sharded, text

from llmforge.data_pipeline.dedup import ExactDedup, normalize
from llmforge.data_pipeline.registry import get_step
from llmforge.errors import InvalidInput

TEXTS = [
    "Hello, World!",           # d0 kept
    "Something else entirely.",  # d1 kept
    "hello   world",           # d2 = d0 after normalisation
    "HELLO\tWORLD\n",           # d3 = d0
    "Something else, entirely",  # d4 = d1
    "Hello, World! Again.",    # d5 kept: more words
    "",                        # d6 kept: first empty text
    "  ",                      # d7 = d6 (both normalise to "")
]


def test_normalize_folds_case_whitespace_punctuation_and_compatibility_forms():
    assert normalize("  Hello,\t WORLD!!  ") == "hello world"
    assert normalize("ﬁne “quotes” — dash_underscore １２") == "fine quotes dash underscore 12"
    assert normalize("Hello", lowercase=False) == "Hello"


def test_copies_modulo_case_and_whitespace_are_dropped_first_kept():
    step = ExactDedup()
    out = list(step.run(docs(TEXTS)))
    assert [d.id for d in out] == ["d0", "d1", "d5", "d6"]
    assert step.stats.dropped == {"exact_duplicate": 4}
    assert (step.stats.docs_in, step.stats.docs_out) == (8, 4)
    assert [e["id"] for e in step.stats.examples] == ["d2", "d3", "d4"]  # three examples per reason
    assert all(e["reason"] == "exact_duplicate" for e in step.stats.examples)
    assert step.stats.counts["clusters"] == 3 and step.stats.counts["duplicates"] == 4


def test_without_normalisation_only_identical_bytes_match():
    out = list(ExactDedup(normalize=False).run(docs(["a b", "a  b", "A b", "a b"])))
    assert [d.id for d in out] == ["d0", "d1", "d2"]


def test_clusters_list_the_kept_and_the_dropped_ids(tmp_path):
    step = ExactDedup()
    run_sharded(step, [docs(TEXTS)], str(tmp_path))
    clusters = [json.loads(line) for line in (tmp_path / "clusters.jsonl").read_text().splitlines()]
    assert clusters == [{"kept": "d0", "dropped": ["d2", "d3"]}, {"kept": "d1", "dropped": ["d4"]},
                        {"kept": "d6", "dropped": ["d7"]}]


def test_sharded_path_matches_single_stream_with_copies_across_shards():
    base = [text(distinct_words(30, seed=i)) for i in range(24)]
    copies = {24: 3, 25: 12, 26: 3, 27: 17, 28: 21, 29: 8}  # index -> the earlier document it copies
    texts = base + [base[src].upper().replace("\n", "  ") for _, src in sorted(copies.items())]
    texts[14] = base[2].lower()  # shard 1 copies shard 0
    all_docs = docs(texts)
    single = [d.id for d in ExactDedup().run(all_docs)]
    step = ExactDedup()
    sharded = [d.id for d in run_sharded(step, [all_docs[0:10], all_docs[10:20], all_docs[20:30]])]
    assert sharded == single
    assert set(single) == {f"d{i}" for i in range(30)} - {f"d{i}" for i in [14, *copies]}
    assert step.stats.dropped == {"exact_duplicate": 7}


def test_phases_out_of_order_say_what_to_run(tmp_path):
    step = ExactDedup()
    step.index_shard(0, iter(docs(["a"])), str(tmp_path))
    with pytest.raises(InvalidInput, match="shard 1 of 2"):
        step.plan(str(tmp_path), 2)
    with pytest.raises(InvalidInput, match="run plan"):
        list(step.filter_shard(0, iter(docs(["a"])), str(tmp_path)))
    step.plan(str(tmp_path), 1)
    with pytest.raises(InvalidInput, match="same stream"):
        list(step.filter_shard(0, iter(docs(["a", "b"])), str(tmp_path)))


def test_a_finished_index_is_not_redone_but_new_params_are(tmp_path):
    step = ExactDedup()
    step.index_shard(0, iter(docs(["a", "a"])), str(tmp_path))
    step.index_shard(0, iter(docs(["never", "read", "again"])), str(tmp_path))  # marker says done: skipped
    step.plan(str(tmp_path), 1)
    assert [d.id for d in step.filter_shard(0, iter(docs(["a", "a"])), str(tmp_path))] == ["d0"]
    with pytest.raises(InvalidInput, match="these parameters"):
        ExactDedup(normalize=False).plan(str(tmp_path), 1)


def test_registered_by_name():
    assert get_step("exact_dedup") is ExactDedup
