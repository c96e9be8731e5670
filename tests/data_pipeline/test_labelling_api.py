"""Labelling over REST, from project creation to an exported dataset version: each task type with two
annotators at overlap 2, annotated through /next until 204, agreement, export in the training shape
(loadable by Hugging Face `datasets`) with lineage; roles and projects isolate; bad input changes nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from conftest import SHARED_DATA, Stack
from llmforge.artifacts import ArtifactStore
from llmforge.data_pipeline.datasets import DatasetStore
from llmforge.data_pipeline.labelling import cohen_kappa
from llmforge.platform.db import session_scope
from llmforge.platform.models import LabelItem, LabelProject, LineageEdge

API = "/api/v1"


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def dataset_with(stack: Stack, name: str, data: bytes, filename: str = "x.jsonl", **form) -> tuple[str, str]:
    r = stack.client.post(f"{API}/datasets", json={"name": name}, headers=stack.headers())
    assert r.status_code == 201, r.text
    ds = r.json()["id"]
    r = stack.client.post(f"{API}/datasets/{ds}/versions/upload", files={"file": (filename, data, "application/json")},
                          data=form, headers=stack.headers())
    assert r.status_code == 201, r.text
    return ds, r.json()["id"]


@dataclass
class Team:
    keys: dict[str, str]  # name -> secret
    ids: dict[str, str]   # name -> key id

    def h(self, stack: Stack, who: str) -> dict[str, str]:
        return stack.headers(self.keys[who])


def team(stack: Stack, roles: dict[str, str]) -> Team:
    keys, ids = {}, {}
    for name, role in roles.items():
        keys[name] = stack.create_key(name, {"default": role})
        ids[name] = stack.client.get(f"{API}/me", headers=stack.headers(keys[name])).json()["key_id"]
    return Team(keys, ids)


@pytest.fixture
def people(stack: Stack) -> Team:
    return team(stack, {"ann": "editor", "bob": "editor", "cy": "editor", "vic": "viewer"})


def create_project(stack: Stack, people: Team, ds: str, version: str, task: dict, **extra) -> dict:
    body = {"name": extra.pop("name", f"lp-{task['type']}"), "dataset_id": ds, "version": version, "task": task,
            "overlap": 2, "annotators": [people.ids["ann"], people.ids["bob"]], **extra}
    r = stack.client.post(f"{API}/labelling", json=body, headers=stack.headers())
    assert r.status_code == 201, r.text
    return r.json()


def annotate_all(stack: Stack, people: Team, lp: dict, answer: Callable[[str, dict], dict]) -> None:
    """Each annotator follows /next until 204, answering with answer(who, item) (a request body)."""
    for who in ("ann", "bob"):
        seen = 0
        while (r := stack.client.get(f"{API}/labelling/{lp['id']}/next", headers=people.h(stack, who))).status_code == 200:
            nxt = r.json()
            assert nxt["progress"] == {"done": seen, "total": lp["items"]}  # overlap 2 of 2: everyone gets every item
            item = nxt["item"]
            r = stack.client.post(f"{API}/labelling/{lp['id']}/items/{item['id']}/annotations",
                                  json=answer(who, item), headers=people.h(stack, who))
            assert r.status_code == 201, r.text
            assert r.json()["annotator"] == people.ids[who] and r.json()["annotator_name"] == who
            seen += 1
        assert r.status_code == 204 and seen == lp["items"]


def export(stack: Stack, lp: dict, **body) -> dict:
    r = stack.client.post(f"{API}/labelling/{lp['id']}/export", json=body, headers=stack.headers())
    assert r.status_code == 201, r.text
    return r.json()


def exported_rows(stack: Stack, version: dict) -> list[dict]:
    r = stack.client.get(f"{API}/datasets/{version['dataset_id']}/versions/{version['id']}/preview?n=500",
                         headers=stack.headers())
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    store = DatasetStore(ArtifactStore(stack.settings.artifact_url))
    from datasets import load_dataset

    hf = load_dataset("json", data_files=store.data_files(version["id"]), split="train")
    assert hf.to_list() == rows
    return rows


# --- each task type end to end --------------------------------------------------------------

REVIEWS = [{"text": t, "gold": g, "guess": p} for t, g, p in [
    ("Loved it, would buy again", "pos", "pos"), ("Broke after a day", "neg", "neg"), ("It is a chair", "neutral", "pos"),
    ("Fantastic value", "pos", "pos"), ("Terrible support", "neg", None), ("Arrived on Tuesday", "neutral", "neutral"),
]]


def test_classification_from_project_to_exported_dataset(stack: Stack, people: Team) -> None:
    ds, version = dataset_with(stack, "reviews", jsonl(REVIEWS))
    task = {"type": "classification", "labels": ["pos", "neg", "neutral"]}
    lp = create_project(stack, people, ds, version, task, prelabels="guess")
    assert lp["items"] == 6 and lp["task"]["labels"] == ["pos", "neg", "neutral"] and lp["task"]["text_field"] == "text"
    assert {a["name"]: (a["assigned"], a["done"]) for a in lp["annotators"]} == {"ann": (6, 0), "bob": (6, 0)}
    gold = {r["text"]: r["gold"] for r in REVIEWS}
    first = stack.client.get(f"{API}/labelling/{lp['id']}/next", headers=people.h(stack, "ann")).json()["item"]
    assert first["data"] == {"text": REVIEWS[0]["text"]} and first["row_index"] == 0
    assert first["prelabel"] == {"label": "pos"} and first["prelabel_source"] == "field:guess"

    def answer(who: str, item: dict) -> dict:
        if who == "ann":  # accepts the pre-label where there is one
            return {"value": item["prelabel"] or gold[item["data"]["text"]]}
        if item["row_index"] == 5:
            return {"skip": True}
        return {"value": {"label": gold[item["data"]["text"]]}}

    annotate_all(stack, people, lp, answer)
    # ann's answers: pos neg pos pos neg neutral; bob's: pos neg neutral pos neg (skip)
    agree = stack.client.get(f"{API}/labelling/{lp['id']}/agreement", headers=people.h(stack, "vic")).json()
    expected = cohen_kappa(["pos", "neg", "pos", "pos", "neg"], ["pos", "neg", "neutral", "pos", "neg"])
    assert agree["method"] == "cohen" and agree["items"] == 5 and agree["kappa"] == pytest.approx(expected, abs=1e-4)
    anns = stack.client.get(f"{API}/labelling/{lp['id']}/annotations", headers=stack.headers()).json()
    assert len(anns) == 12 and sum(a["skipped"] for a in anns) == 1 and {a["annotator_name"] for a in anns} == {"ann", "bob"}
    got = stack.client.get(f"{API}/labelling/{lp['id']}", headers=stack.headers()).json()
    assert got["annotations"] == 12 and all(a["done"] == 6 for a in got["annotators"])

    v = export(stack, lp)
    assert exported_rows(stack, v) == [{"text": r["text"], "label": r["gold"]} for i, r in enumerate(REVIEWS) if i != 2]
    assert v["parent"] == version and v["source"]["label_project"] == lp["id"]
    assert v["source"]["skipped"] == {"tie": 1} and v["source"]["exported"] == 5
    target = stack.client.get(f"{API}/datasets/{v['dataset_id']}", headers=stack.headers()).json()
    assert target["name"] == "lp-classification-labels" and target["latest_version"] == v["id"]
    with session_scope(stack.settings.database_url) as s:
        edges = {(e.src, e.dst, e.relation) for e in s.scalars(select(LineageEdge))}
    assert {(f"dataset_version:{version}", f"label_project:{lp['id']}", "input"),
            (f"label_project:{lp['id']}", f"dataset_version:{v['id']}", "output")} <= edges
    # exporting again into the same dataset by id gives the same version (same rows, same source)
    assert export(stack, lp, dataset_id=v["dataset_id"])["id"] == v["id"]


def test_multi_label_classification(stack: Stack, people: Team) -> None:
    rows = [{"body": "goal in the final minute"}, {"body": "shares rise after the match"}, {"body": "new phone chip"}]
    ds, version = dataset_with(stack, "news", jsonl(rows))
    lp = create_project(stack, people, ds, version,
                        {"type": "classification", "labels": ["sport", "business", "tech"], "multi_label": True,
                         "text_field": "body"})
    picks = {"ann": [["sport"], ["business", "sport"], ["tech"]], "bob": [["sport"], ["business"], ["tech", "business"]]}
    annotate_all(stack, people, lp, lambda who, item: {"value": picks[who][item["row_index"]]})
    agree = stack.client.get(f"{API}/labelling/{lp['id']}/agreement", headers=stack.headers()).json()
    assert set(agree["per_label"]) == {"sport", "business", "tech"} and agree["method"] == "cohen"
    v = export(stack, lp)
    assert exported_rows(stack, v) == [{"text": "goal in the final minute", "labels": ["sport"]}]
    assert v["source"]["skipped"] == {"tie": 2}


PAIRS = [{"q": f"question {i}", "first": f"answer A{i}", "second": f"answer B{i}"} for i in range(5)]


def test_preference_from_project_to_exported_dataset(stack: Stack, people: Team) -> None:
    ds, version = dataset_with(stack, "pairs", jsonl(PAIRS))
    task = {"type": "preference", "prompt_field": "q", "response_a_field": "first", "response_b_field": "second",
            "allow_tie": True}
    lp = create_project(stack, people, ds, version, task)
    choices = {"ann": ["a", "b", "a", "tie", "b"], "bob": ["a", "b", "b", "tie", "b"]}

    def answer(who: str, item: dict) -> dict:
        i = item["row_index"]
        return {"value": {"choice": choices[who][i], **({"reason": "more specific"} if i == 1 and who == "bob" else {})}}

    annotate_all(stack, people, lp, answer)
    agree = stack.client.get(f"{API}/labelling/{lp['id']}/agreement", headers=stack.headers()).json()
    assert agree["kappa"] == pytest.approx(cohen_kappa(choices["ann"], choices["bob"]), abs=1e-4)
    v = export(stack, lp)
    assert exported_rows(stack, v) == [
        {"prompt": "question 0", "chosen": "answer A0", "rejected": "answer B0", "reason": None},
        {"prompt": "question 1", "chosen": "answer B1", "rejected": "answer A1", "reason": "more specific"},
        {"prompt": "question 4", "chosen": "answer B4", "rejected": "answer A4", "reason": None},
    ]
    assert v["source"]["skipped"] == {"no_preference": 1, "tie": 1} and v["text_field"] == "prompt"


def test_demonstration_from_project_to_exported_dataset(stack: Stack, people: Team) -> None:
    rows = [{"instruction": "Say hello", "draft": "hello"}, {"instruction": "Name a colour", "draft": "blu"},
            {"instruction": "Count to three"}]
    ds, version = dataset_with(stack, "instructions", jsonl(rows))
    lp = create_project(stack, people, ds, version,
                        {"type": "demonstration", "prompt_field": "instruction", "response_field": "draft"})

    def answer(who: str, item: dict) -> dict:
        draft = item["data"]["draft"]
        if who == "ann":
            return {"value": (draft or "one, two") + " (ann)"}
        return {"skip": True} if item["row_index"] == 2 else {"value": {"response": (draft or "") + " (bob)"}}

    annotate_all(stack, people, lp, answer)
    agree = stack.client.get(f"{API}/labelling/{lp['id']}/agreement", headers=stack.headers()).json()
    assert agree["kappa"] is None and "free-text" in agree["reason"]
    # ann corrects row 0 again after bob: re-annotating updates (200) and the latest answer wins
    item0 = stack.client.get(f"{API}/labelling/{lp['id']}/annotations", headers=stack.headers()).json()[0]["item_id"]
    r = stack.client.post(f"{API}/labelling/{lp['id']}/items/{item0}/annotations", json={"value": "Hello!"},
                          headers=people.h(stack, "ann"))
    assert r.status_code == 200 and r.json()["value"] == {"response": "Hello!"}
    assert len(stack.client.get(f"{API}/labelling/{lp['id']}/annotations", headers=stack.headers()).json()) == 6
    v = export(stack, lp)
    assert exported_rows(stack, v) == [{"prompt": "Say hello", "response": "Hello!"},
                                       {"prompt": "Name a colour", "response": "blu (bob)"},
                                       {"prompt": "Count to three", "response": "one, two (ann)"}]


# --- roles, projects and bad input ----------------------------------------------------------

def test_who_may_annotate_read_and_export(stack: Stack, people: Team) -> None:
    ds, version = dataset_with(stack, "reviews", jsonl(REVIEWS))
    lp = create_project(stack, people, ds, version, {"type": "classification", "labels": ["pos", "neg", "neutral"]})
    item = stack.client.get(f"{API}/labelling/{lp['id']}/next", headers=people.h(stack, "ann")).json()["item"]
    url = f"{API}/labelling/{lp['id']}/items/{item['id']}/annotations"

    r = stack.client.post(url, json={"value": "pos"}, headers=people.h(stack, "vic"))
    assert r.status_code == 403 and "editor" in r.json()["error"]["message"]
    r = stack.client.post(url, json={"value": "pos"}, headers=people.h(stack, "cy"))  # an editor, not assigned
    assert r.status_code == 403 and "not assigned" in r.json()["error"]["message"]
    assert stack.client.get(f"{API}/labelling/{lp['id']}/next", headers=people.h(stack, "cy")).status_code == 403
    r = stack.client.post(url, json={"value": "great"}, headers=people.h(stack, "ann"))
    assert r.status_code == 422 and r.json()["error"]["param"] == "value.label" and "great" in r.json()["error"]["message"]
    r = stack.client.post(url, json={"value": "pos", "skip": True}, headers=people.h(stack, "ann"))
    assert r.status_code == 422
    assert stack.client.get(f"{API}/labelling/{lp['id']}/annotations", headers=stack.headers()).json() == []

    # viewers read, but neither annotate nor export; they see no one's annotations
    assert stack.client.get(f"{API}/labelling/{lp['id']}", headers=people.h(stack, "vic")).status_code == 200
    assert stack.client.post(url, json={"value": "pos"}, headers=people.h(stack, "ann")).status_code == 201
    assert stack.client.get(f"{API}/labelling/{lp['id']}/annotations", headers=people.h(stack, "vic")).json() == []
    assert len(stack.client.get(f"{API}/labelling/{lp['id']}/annotations", headers=people.h(stack, "cy")).json()) == 1
    r = stack.client.post(f"{API}/labelling/{lp['id']}/export", json={}, headers=people.h(stack, "vic"))
    assert r.status_code == 403

    # an item of another labelling project is not found here
    other = create_project(stack, people, ds, version, {"type": "classification", "labels": ["x", "y"]}, name="other")
    other_item = stack.client.get(f"{API}/labelling/{other['id']}/next", headers=people.h(stack, "ann")).json()["item"]
    r = stack.client.post(f"{API}/labelling/{lp['id']}/items/{other_item['id']}/annotations", json={"value": "pos"},
                          headers=people.h(stack, "ann"))
    assert r.status_code == 404


def test_projects_isolate(stack: Stack, people: Team) -> None:
    ds, version = dataset_with(stack, "reviews", jsonl(REVIEWS))
    lp = create_project(stack, people, ds, version, {"type": "classification", "labels": ["pos", "neg", "neutral"]})
    item = stack.client.get(f"{API}/labelling/{lp['id']}/next", headers=people.h(stack, "ann")).json()["item"]
    assert stack.client.post(f"{API}/projects", json={"name": "other"}, headers=stack.headers()).status_code == 201
    outsider = stack.create_key("out", {"other": "admin"})
    h = stack.headers(outsider)
    for r in [stack.client.get(f"{API}/labelling/{lp['id']}", headers=h),
              stack.client.get(f"{API}/labelling/{lp['id']}/next", headers=h),
              stack.client.get(f"{API}/labelling/{lp['id']}/agreement", headers=h),
              stack.client.post(f"{API}/labelling/{lp['id']}/items/{item['id']}/annotations", json={"value": "pos"},
                                headers=h),
              stack.client.post(f"{API}/labelling/{lp['id']}/export", json={}, headers=h)]:
        assert r.status_code == 404, r.text
    assert stack.client.get(f"{API}/labelling", headers=h).json() == []
    # an outsider cannot label this project's dataset, nor export into it
    body = {"name": "x", "dataset_id": ds, "version": version, "task": {"type": "demonstration"},
            "annotators": [people.ids["ann"]]}
    assert stack.client.post(f"{API}/labelling", json=body, headers=h).status_code == 404
    ods = stack.client.post(f"{API}/datasets", json={"name": "theirs", "project": "other"}, headers=stack.headers())
    r = stack.client.post(f"{API}/labelling/{lp['id']}/export", json={"dataset_id": ods.json()["id"]}, headers=stack.headers())
    assert r.status_code == 404


@pytest.mark.parametrize(("change", "param", "message"), [
    ({"annotators": ["nobody"]}, "annotators", "not (unrevoked) keys"),
    ({"annotators": ["vic"]}, "annotators", "viewers"),
    ({"overlap": 3}, "overlap", "needs at least 3"),
    ({"task": {"type": "classification", "labels": ["pos"]}}, None, "at least two labels"),
    ({"task": {"type": "preference"}}, "task.prompt_field", "no value for 'prompt'"),
    ({"prelabels": {"0": "great"}}, "prelabels.0.label", "great"),
    ({"prelabels": {"99": "pos"}}, "prelabels", "rows [99]"),
])
def test_bad_creation_is_refused_and_creates_nothing(stack: Stack, people: Team, change: dict, param: str | None,
                                                     message: str) -> None:
    ds, version = dataset_with(stack, "reviews", jsonl(REVIEWS))
    body = {"name": "lp", "dataset_id": ds, "version": version, "overlap": 2,
            "task": {"type": "classification", "labels": ["pos", "neg", "neutral"]},
            "annotators": [people.ids["ann"], people.ids["bob"]], **change}
    body["annotators"] = [people.ids.get(a, a) for a in body["annotators"]]
    r = stack.client.post(f"{API}/labelling", json=body, headers=stack.headers())
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"]
    if param:
        assert r.json()["error"]["param"] == param
    with session_scope(stack.settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(LabelProject)) == 0
        assert s.scalar(select(func.count()).select_from(LabelItem)) == 0


def test_nothing_to_export_and_limits(stack: Stack, people: Team) -> None:
    ds, version = dataset_with(stack, "reviews", jsonl(REVIEWS))
    lp = create_project(stack, people, ds, version, {"type": "classification", "labels": ["pos", "neg", "neutral"]},
                        limit=4, prelabels={"1": "neg"}, prelabel_source="model:tiny-sentiment")
    assert lp["items"] == 4
    item = stack.client.get(f"{API}/labelling/{lp['id']}/next", headers=people.h(stack, "bob")).json()["item"]
    assert item["prelabel"] is None
    r = stack.client.post(f"{API}/labelling/{lp['id']}/export", json={}, headers=stack.headers())
    assert r.status_code == 422 and "nothing to export" in r.json()["error"]["message"]
    listed = stack.client.get(f"{API}/datasets", headers=stack.headers()).json()
    assert [d["name"] for d in listed] == ["reviews"]  # no empty '-labels' dataset left behind
    r = stack.client.get(f"{API}/labelling/{lp['id']}/items/{item['id']}", headers=stack.headers())
    assert r.status_code == 200 and r.json()["row_index"] == 0
    with session_scope(stack.settings.database_url) as s:
        pre = s.scalar(select(LabelItem).where(LabelItem.label_project_id == lp["id"], LabelItem.row_index == 1))
        assert pre.prelabel == {"label": "neg"} and pre.prelabel_source == "model:tiny-sentiment"


# --- real data ------------------------------------------------------------------------------

AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci-Tech"}


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent")
def test_real_news_classification(stack: Stack, people: Team) -> None:
    # the file is sorted by class, so take every 15th row (42 rows, all four classes), headerless as in the file
    with open(SHARED_DATA / "ag_news_sample.csv", newline="", encoding="utf-8") as fh:
        sample = list(csv.reader(fh))[::15]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL).writerows(sample)
    gold = [AG_LABELS[row[0]] for row in sample]
    assert len(set(gold)) == 4
    ds, version = dataset_with(stack, "ag-news", buf.getvalue().encode(), filename="ag_news_sample.csv",
                               columns="class,title,description", text_field="description")
    lp = create_project(stack, people, ds, version,
                        {"type": "classification", "labels": list(AG_LABELS.values()), "text_field": "description"},
                        name="news-topics", prelabels={str(i): g for i, g in enumerate(gold)},
                        prelabel_source="model:gold-oracle")
    assert lp["items"] == len(sample)
    labels = list(AG_LABELS.values())

    def bob_says(i: int) -> str:  # bob disagrees on rows 3, 10, 17, ...
        return labels[(labels.index(gold[i]) + 1) % 4] if i % 7 == 3 else gold[i]

    def answer(who: str, item: dict) -> dict:
        assert item["data"] == {"description": sample[item["row_index"]][2]}
        return {"value": item["prelabel"]} if who == "ann" else {"value": bob_says(item["row_index"])}

    annotate_all(stack, people, lp, answer)
    agree = stack.client.get(f"{API}/labelling/{lp['id']}/agreement", headers=stack.headers()).json()
    expected = cohen_kappa(gold, [bob_says(i) for i in range(len(gold))])
    assert agree["items"] == len(gold) and agree["kappa"] == pytest.approx(expected, abs=1e-4)
    assert 0.7 < agree["kappa"] < 0.95
    v = export(stack, lp)
    assert exported_rows(stack, v) == [{"text": row[2], "label": gold[i]} for i, row in enumerate(sample) if i % 7 != 3]
    assert v["source"]["skipped"] == {"tie": 6}
