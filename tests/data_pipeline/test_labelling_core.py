"""Labelling core: assignment, value checks, Cohen's/Fleiss' kappa against worked examples, export shapes."""

from __future__ import annotations

from collections import Counter

import pytest

from llmforge.data_pipeline.labelling import (Annotation, ClassificationTask, DemonstrationTask, ExportPolicy, Item,
                                              PreferenceTask, agreement, assign, cohen_kappa, export_rows, fleiss_kappa,
                                              make_items, parse_task, validate_value)
from llmforge.errors import InvalidInput

SENTIMENT = ClassificationTask(labels=["pos", "neg", "neutral"])
TOPICS = ClassificationTask(labels=["a", "b", "c"], multi_label=True)
PREF = PreferenceTask(prompt_field="q", response_a_field="x", response_b_field="y")
DEMO = DemonstrationTask(prompt_field="instruction", response_field="draft")


def ann(item: str, who: str, value: dict | None, t: float = 0.0) -> Annotation:
    return Annotation(item_id=item, annotator=who, value=value, skipped=value is None, updated_at=t)


# --- assignment -----------------------------------------------------------------------------

@pytest.mark.parametrize(("n_items", "annotators", "overlap"), [(10, 2, 2), (10, 3, 2), (7, 4, 3), (25, 5, 1), (3, 6, 2)])
def test_assign_gives_each_item_overlap_distinct_annotators_with_balanced_load(n_items: int, annotators: int,
                                                                               overlap: int) -> None:
    items = [f"i{k}" for k in range(n_items)]
    people = [f"p{k}" for k in range(annotators)]
    plan = assign(items, people, overlap, seed=3)
    assert set(plan) == set(people)
    per_item = Counter(i for got in plan.values() for i in got)
    assert per_item == {i: overlap for i in items}
    assert all(len(set(got)) == len(got) for got in plan.values())  # distinct annotators per item
    loads = [len(got) for got in plan.values()]
    assert max(loads) - min(loads) <= 1 and sum(loads) == n_items * overlap
    for got in plan.values():  # each list keeps the items' order
        assert got == sorted(got, key=items.index)


def test_assign_is_deterministic_and_mixes_pairs() -> None:
    items = [str(k) for k in range(30)]
    plan = assign(items, ["ann", "bob", "cy"], 2, seed=7)
    assert plan == assign(items, ["cy", "ann", "bob"], 2, seed=7)  # same inputs (in any order), same plan
    assert plan != assign(items, ["ann", "bob", "cy"], 2, seed=8)
    pairs = {tuple(sorted(a for a, got in plan.items() if i in got)) for i in items}
    assert pairs == {("ann", "bob"), ("ann", "cy"), ("bob", "cy")}


def test_assign_refuses_impossible_plans() -> None:
    with pytest.raises(InvalidInput, match="overlap 3 needs at least 3") as e:
        assign(["x"], ["a", "b"], 3)
    assert e.value.param == "overlap"
    with pytest.raises(InvalidInput, match="at least one annotator"):
        assign(["x"], [], 1)
    with pytest.raises(InvalidInput, match="twice"):
        assign(["x"], ["a", "a"], 1)
    with pytest.raises(InvalidInput, match="overlap"):
        assign(["x"], ["a"], 0)


# --- values ---------------------------------------------------------------------------------

def test_values_are_checked_and_canonical() -> None:
    assert validate_value(SENTIMENT, "pos") == validate_value(SENTIMENT, {"label": "pos"}) == {"label": "pos"}
    assert validate_value(TOPICS, ["c", "a", "c"]) == {"labels": ["a", "c"]}  # task order, no repeats
    assert validate_value(PREF, "b") == {"choice": "b"}
    assert validate_value(PREF, {"choice": "a", "reason": " clearer "}) == {"choice": "a", "reason": "clearer"}
    assert validate_value(PREF, {"choice": "a", "reason": ""}) == {"choice": "a"}
    assert validate_value(PreferenceTask(allow_tie=True), "tie") == {"choice": "tie"}
    assert validate_value(DEMO, {"response": "Sure."}) == {"response": "Sure."}


@pytest.mark.parametrize(("task", "value", "param", "message"), [
    (SENTIMENT, "happy", "value.label", "not one of the task's labels"),
    (SENTIMENT, {"label": "pos", "score": 1}, "value", "unknown key"),
    (SENTIMENT, {}, "value.label", "required"),
    (TOPICS, [], "value.labels", "choose at least one label"),
    (TOPICS, ["a", "z"], "value.labels", r"\['z'\] not among"),
    (TOPICS, "a", "value.labels", "must be a list"),
    (PREF, "tie", "value.choice", "does not allow ties"),
    (PREF, "c", "value.choice", "must be one of"),
    (PREF, {"choice": "a", "reason": 3}, "value.reason", "must be text"),
    (DEMO, "   ", "value.response", "non-empty"),
    (DEMO, {"response": None}, "value.response", "non-empty"),
])
def test_bad_values_name_the_field(task, value, param: str, message: str) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInput, match=message) as e:
        validate_value(task, value)
    assert e.value.param == param and e.value.status_code == 422


def test_task_configs_are_validated() -> None:
    assert parse_task({"type": "classification", "labels": ["x", "y"]}) == ClassificationTask(labels=["x", "y"])
    with pytest.raises(InvalidInput, match="at least two labels"):
        parse_task({"type": "classification", "labels": ["x"]})
    with pytest.raises(InvalidInput, match="repeat"):
        parse_task({"type": "classification", "labels": ["x", "x"], "multi_label": True})
    with pytest.raises(InvalidInput) as e:
        parse_task({"type": "preference", "prompt_field": ""})
    assert e.value.param == "task.prompt_field"
    with pytest.raises(InvalidInput):
        parse_task({"type": "ranking"})


def test_items_snapshot_task_fields_and_prelabels() -> None:
    rows = [{"text": "good", "guess": "pos", "noise": 1}, {"text": "bad", "guess": None}, {"text": "meh"}]
    items = make_items(SENTIMENT, rows, prelabels="guess")
    assert [i.data for i in items] == [{"text": "good"}, {"text": "bad"}, {"text": "meh"}]
    assert [i.prelabel for i in items] == [{"label": "pos"}, None, None]
    assert [i.prelabel for i in make_items(SENTIMENT, rows, limit=2, prelabels={1: "neg"})] == [None, {"label": "neg"}]
    with pytest.raises(InvalidInput) as e:
        make_items(SENTIMENT, rows, prelabels={0: "great"})
    assert e.value.param == "prelabels.0.label"
    with pytest.raises(InvalidInput, match="rows \\[5\\]"):
        make_items(SENTIMENT, rows, prelabels={5: "pos"})
    with pytest.raises(InvalidInput, match="no value for 'q'") as e:
        make_items(PREF, [{"x": "1", "y": "2"}])
    assert e.value.param == "task.prompt_field"
    demo = make_items(DEMO, [{"instruction": "Say hi", "draft": "hi"}, {"instruction": "Count"}])
    assert [i.data for i in demo] == [{"instruction": "Say hi", "draft": "hi"}, {"instruction": "Count", "draft": None}]


# --- agreement against worked examples ------------------------------------------------------

def test_cohen_kappa_worked_example() -> None:
    # Wikipedia "Cohen's kappa": 50 proposals, A and B both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    po = (20 + 15) / 50                           # 0.7
    pe = (25 / 50) * (30 / 50) + (25 / 50) * (20 / 50)  # yes: A 25, B 30; no: A 25, B 20 -> 0.5
    assert cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe)) == pytest.approx(0.4)
    assert cohen_kappa(["x", "y"], ["x", "y"]) == pytest.approx(1.0)
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None  # chance agreement 1: undefined


# Fleiss (1971) via Wikipedia "Fleiss' kappa": 10 subjects, 14 raters, 5 categories (n_ij counts).
FLEISS_TABLE = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example() -> None:
    n, raters = len(FLEISS_TABLE), 14
    p_j = [sum(row[j] for row in FLEISS_TABLE) / (n * raters) for j in range(5)]  # 0.143 0.200 0.279 0.150 0.229
    p_i = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in FLEISS_TABLE]
    p_bar, p_e = sum(p_i) / n, sum(p * p for p in p_j)                              # 0.378, 0.213
    expected = (p_bar - p_e) / (1 - p_e)
    ratings = [[j for j, c in enumerate(row) for _ in range(c)] for row in FLEISS_TABLE]
    assert fleiss_kappa(ratings) == pytest.approx(expected) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa([["a", "a", "a"], ["a", "a", "a"]]) is None
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([["a", "b"], ["a", "b", "c"]])


def test_agreement_picks_cohen_for_two_annotators() -> None:
    # the same 50-item table as the Cohen example, as annotations
    a = ["pos"] * 25 + ["neg"] * 25
    b = ["pos"] * 20 + ["neg"] * 5 + ["pos"] * 10 + ["neg"] * 15
    anns = [ann(str(i), "ann", {"label": x}) for i, x in enumerate(a)] + \
           [ann(str(i), "bob", {"label": x}) for i, x in enumerate(b)] + [ann("extra", "ann", {"label": "pos"})]
    r = agreement(anns, SENTIMENT)
    assert r["method"] == "cohen" and r["kappa"] == pytest.approx(0.4) and r["items"] == 50 and r["annotators"] == 2
    assert r["percent_agreement"] == pytest.approx(0.7) and r["reason"] is None


def test_agreement_picks_fleiss_for_more_annotators_over_fully_rated_items() -> None:
    # three annotators, overlap 2: each item has 2 ratings from changing pairs -> Fleiss with 2 raters per item
    labels = [("pos", "pos"), ("neg", "neg"), ("pos", "neg"), ("neutral", "neutral"), ("neg", "neg"), ("pos", "pos")]
    pairs = [("ann", "bob"), ("bob", "cy"), ("ann", "cy")] * 2
    anns = [ann(str(i), who, {"label": lab}) for i, (ls, ws) in enumerate(zip(labels, pairs)) for lab, who in zip(ls, ws)]
    anns.append(ann("lonely", "cy", {"label": "pos"}))  # one rating only: left out
    anns.append(ann("0", "cy", None))                    # a skip is not a rating
    r = agreement(anns, SENTIMENT)
    assert r["method"] == "fleiss" and r["items"] == 6 and r["annotators"] == 3
    assert r["kappa"] == pytest.approx(fleiss_kappa([list(x) for x in labels]), abs=1e-4)
    assert r["percent_agreement"] == pytest.approx(5 / 6, abs=1e-4)


def test_agreement_multi_label_averages_per_label_and_demonstration_has_none() -> None:
    a = [["a"], ["a", "b"], ["c"], ["b"]]
    b = [["a"], ["a"], ["c", "b"], ["b"]]
    anns = [ann(str(i), "ann", {"labels": x}) for i, x in enumerate(a)] + \
           [ann(str(i), "bob", {"labels": x}) for i, x in enumerate(b)]
    r = agreement(anns, TOPICS)
    per = {lab: cohen_kappa([lab in x for x in a], [lab in x for x in b]) for lab in "abc"}
    assert r["per_label"] == pytest.approx(per, abs=1e-4)
    assert r["kappa"] == pytest.approx(sum(per.values()) / 3, abs=1e-4) and r["method"] == "cohen"
    d = agreement([ann("0", "ann", {"response": "x"}), ann("0", "bob", {"response": "y"})], DEMO)
    assert d["kappa"] is None and d["method"] is None and "free-text" in d["reason"]
    assert agreement([ann("0", "ann", {"label": "pos"})], SENTIMENT)["reason"].startswith("no item has")
    same = agreement([ann("0", "ann", {"label": "pos"}), ann("0", "bob", {"label": "pos"})], SENTIMENT)
    assert same["kappa"] is None and "undefined" in same["reason"] and same["percent_agreement"] == 1.0


# --- export ---------------------------------------------------------------------------------

def items_of(rows: list[dict]) -> list[Item]:
    return [Item(id=str(i), row_index=i, data=r) for i, r in enumerate(rows)]


def test_export_classification_majority_ties_and_min_votes() -> None:
    items = items_of([{"text": t} for t in ["t0", "t1", "t2", "t3", "t4"]])
    anns = [ann("0", "a", {"label": "pos"}), ann("0", "b", {"label": "pos"}), ann("0", "c", {"label": "neg"}),
            ann("1", "a", {"label": "pos"}), ann("1", "b", {"label": "neg"}),      # tie -> skipped
            ann("2", "a", {"label": "neutral"}), ann("2", "b", None),              # one vote, one skip
            ann("3", "a", None)]                                                   # only skipped; 4: nothing
    r = export_rows(SENTIMENT, items, anns)
    assert r.rows == [{"text": "t0", "label": "pos"}, {"text": "t2", "label": "neutral"}] and r.text_field == "text"
    assert r.counts == {"items": 5, "exported": 2, "skipped": {"tie": 1, "unannotated": 2}}
    strict = export_rows(SENTIMENT, items, anns, ExportPolicy(min_votes=2))
    assert strict.rows == [{"text": "t0", "label": "pos"}]
    assert strict.counts["skipped"] == {"tie": 1, "too_few_votes": 1, "unannotated": 2}


def test_export_multi_label_keeps_labels_most_voters_chose() -> None:
    items = items_of([{"text": "x"}, {"text": "y"}, {"text": "z"}])
    anns = [ann("0", "a", {"labels": ["a", "b"]}), ann("0", "b", {"labels": ["a", "b"]}), ann("0", "c", {"labels": ["a"]}),
            ann("1", "a", {"labels": ["a"]}), ann("1", "b", {"labels": ["b"]}),                   # each label 1/2: tie
            ann("2", "a", {"labels": ["a"]}), ann("2", "b", {"labels": ["b"]}), ann("2", "c", {"labels": ["c"]})]
    r = export_rows(TOPICS, items, anns)
    assert r.rows == [{"text": "x", "labels": ["a", "b"]}]
    assert r.counts["skipped"] == {"no_majority": 1, "tie": 1}


def test_export_preference_shapes_reasons_and_ties() -> None:
    task = PreferenceTask(prompt_field="q", response_a_field="x", response_b_field="y", allow_tie=True)
    items = items_of([{"q": f"q{i}", "x": f"A{i}", "y": f"B{i}"} for i in range(4)])
    anns = [ann("0", "a", {"choice": "b", "reason": "old"}, 1), ann("0", "b", {"choice": "b", "reason": "shorter"}, 2),
            ann("1", "a", {"choice": "a"}), ann("1", "b", {"choice": "a"}),
            ann("2", "a", {"choice": "tie"}), ann("2", "b", {"choice": "tie"}),
            ann("3", "a", {"choice": "a"}), ann("3", "b", {"choice": "b"})]
    r = export_rows(task, items, anns)
    assert r.rows == [{"prompt": "q0", "chosen": "B0", "rejected": "A0", "reason": "shorter"},
                      {"prompt": "q1", "chosen": "A1", "rejected": "B1", "reason": None}]
    assert r.counts["skipped"] == {"no_preference": 1, "tie": 1}
    no_reasons = export_rows(task, items, [ann("1", "a", {"choice": "a"})])
    assert no_reasons.rows == [{"prompt": "q1", "chosen": "A1", "rejected": "B1"}]


def test_export_demonstration_latest_wins() -> None:
    items = items_of([{"instruction": "Say hi", "draft": "hi"}, {"instruction": "Count", "draft": None}])
    anns = [ann("0", "b", {"response": "Hello!"}, 5), ann("0", "a", {"response": "Hi."}, 3),
            ann("1", "a", None, 9)]
    r = export_rows(DEMO, items, anns)
    assert r.rows == [{"prompt": "Say hi", "response": "Hello!"}] and r.text_field == "response"
    assert r.counts == {"items": 2, "exported": 1, "skipped": {"unannotated": 1}}
