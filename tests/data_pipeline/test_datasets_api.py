"""Datasets over REST: upload → versions → preview/stats → a cleaning job on a real worker → report
and lineage; bad uploads change nothing; projects isolate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_DATA, Stack, make_stack

ROWS = [{"text": t} for t in ["  Hello   world, this is fine. ", "x", "Contact me at jane.doe@example.com please.",
                               "A long enough sentence for the filter.", "y"]]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def create(stack: Stack, name: str = "corpus", key: str | None = None, project: str | None = None) -> dict:
    body = {"name": name, **({"project": project} if project else {})}
    r = stack.client.post("/api/v1/datasets", json=body, headers=stack.headers(key))
    assert r.status_code == 201, r.text
    return r.json()


def upload(stack: Stack, ds_id: str, data: bytes, name: str = "c.jsonl", key: str | None = None, **form) -> object:
    return stack.client.post(f"/api/v1/datasets/{ds_id}/versions/upload", files={"file": (name, data, "application/octet-stream")},
                             data=form, headers=stack.headers(key))


def versions(stack: Stack, ds_id: str) -> list[dict]:
    r = stack.client.get(f"/api/v1/datasets/{ds_id}/versions", headers=stack.headers())
    assert r.status_code == 200, r.text
    return r.json()


def test_upload_preview_stats_and_download(stack: Stack) -> None:
    ds = create(stack)
    r = upload(stack, ds["id"], jsonl(ROWS))
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["rows"] == 5 and v["parent"] is None and v["schema"] == {"text": ["string"]}
    assert v["stats"]["characters"] == sum(len(x["text"]) for x in ROWS)
    prev = stack.client.get(f"/api/v1/datasets/{ds['id']}/versions/{v['id']}/preview?n=2", headers=stack.headers()).json()
    assert prev["rows"] == ROWS[:2]
    sample = stack.client.get(f"/api/v1/datasets/{ds['id']}/versions/{v['id']}/preview?n=3&sample=true&seed=4",
                              headers=stack.headers()).json()["rows"]
    assert len(sample) == 3 and all(s in ROWS for s in sample)
    shard = stack.client.get(f"/api/v1/datasets/{ds['id']}/versions/{v['id']}/shards/0", headers=stack.headers())
    assert shard.status_code == 200 and [json.loads(x) for x in shard.text.splitlines()] == ROWS
    assert stack.client.get(f"/api/v1/datasets/{ds['id']}/versions/{v['id']}/shards/7", headers=stack.headers()).status_code == 404
    listed = stack.client.get("/api/v1/datasets", headers=stack.headers()).json()
    assert [(d["name"], d["latest_version"], d["versions"]) for d in listed] == [("corpus", v["id"], 1)]


@pytest.mark.parametrize("name, data, message", [
    ("bad.jsonl", b'{"text": "ok"}\n{nope}\n', "line 2 is not valid JSON"),
    ("bad.csv", b"text,label\na,1\nb\n", "row 3 has 1 fields but the header has 2"),
    ("empty.jsonl", b"", "is empty"),
    ("bin.jsonl", b"\x00\x01\x02binary", "binary data"),
    ("latin.txt", "caf\xe9 au lait".encode("latin-1"), "not valid UTF-8"),
    ("data.xlsx", b"whatever", "cannot tell the format"),
])
def test_bad_uploads_are_refused_and_create_nothing(stack: Stack, name: str, data: bytes, message: str) -> None:
    ds = create(stack)
    r = upload(stack, ds["id"], data, name=name)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"]
    assert versions(stack, ds["id"]) == []
    assert not list((stack.settings.home / "uploads").iterdir())  # staging file removed


def test_upload_over_the_limit_is_413(lf_env, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LLMFORGE_MAX_UPLOAD_BYTES", "1000")
    from llmforge.settings import get_settings

    get_settings.cache_clear()
    for stack in make_stack(lf_env, tmp_path):
        ds = create(stack)
        r = upload(stack, ds["id"], jsonl([{"text": "x" * 5000}]))
        assert r.status_code == 413, r.text
        assert versions(stack, ds["id"]) == []


def test_import_from_path_is_admin_only_and_confined(lf_env, tmp_path: Path, monkeypatch) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "a.jsonl").write_bytes(jsonl(ROWS))
    (tmp_path / "secret.jsonl").write_bytes(jsonl(ROWS))
    monkeypatch.setenv("LLMFORGE_IMPORT_ROOTS", json.dumps([str(allowed)]))
    from llmforge.settings import get_settings

    get_settings.cache_clear()
    for stack in make_stack(lf_env, tmp_path):
        ds = create(stack)
        url = f"/api/v1/datasets/{ds['id']}/versions/from-path"
        ok = stack.client.post(url, json={"path": str(allowed / "a.jsonl")}, headers=stack.headers())
        assert ok.status_code == 201 and ok.json()["rows"] == 5
        for hostile in [str(tmp_path / "secret.jsonl"), str(allowed / ".." / "secret.jsonl"), "/etc/passwd"]:
            r = stack.client.post(url, json={"path": hostile}, headers=stack.headers())
            assert r.status_code == 403 and "LLMFORGE_IMPORT_ROOTS" in r.json()["error"]["message"]
        editor = stack.create_key("ed", {"default": "editor"})
        r = stack.client.post(url, json={"path": str(allowed / "a.jsonl")}, headers=stack.headers(editor))
        assert r.status_code == 403


def test_projects_isolate_and_viewers_cannot_upload(stack: Stack) -> None:
    ds = create(stack)
    assert stack.client.post("/api/v1/projects", json={"name": "other"}, headers=stack.headers()).status_code == 201
    outsider = stack.create_key("out", {"other": "admin"})
    viewer = stack.create_key("view", {"default": "viewer"})
    assert upload(stack, ds["id"], jsonl(ROWS), key=viewer).status_code == 403
    assert upload(stack, ds["id"], jsonl(ROWS), key=outsider).status_code == 404
    assert stack.client.get(f"/api/v1/datasets/{ds['id']}", headers=stack.headers(outsider)).status_code == 404
    assert stack.client.get("/api/v1/datasets", headers=stack.headers(outsider)).json() == []
    dup = stack.client.post("/api/v1/datasets", json={"name": "corpus"}, headers=stack.headers())
    assert dup.status_code == 409


@pytest.mark.slow
def test_cleaning_job_end_to_end_with_report_and_lineage(stack: Stack, start_worker) -> None:
    ds = create(stack)
    v = upload(stack, ds["id"], jsonl(ROWS)).json()
    spec = {"steps": [{"step": "normalize_whitespace"}, {"step": "length_filter", "params": {"min_chars": 5}}]}
    bad = stack.client.post(f"/api/v1/datasets/{ds['id']}/versions/{v['id']}/pipelines",
                            json={"pipeline": {"steps": [{"step": "nope"}]}}, headers=stack.headers())
    assert bad.status_code == 422 and "unknown pipeline step 'nope'" in bad.json()["error"]["message"]
    start_worker(stack.env)
    r = stack.client.post(f"/api/v1/datasets/{ds['id']}/versions/{v['id']}/pipelines", json={"pipeline": spec},
                          headers=stack.headers())
    assert r.status_code == 201, r.text
    job = stack.wait(r.json()["id"], {"succeeded", "failed"}, timeout=60)
    assert job["status"] == "succeeded", job
    report = job["result"]
    assert [s["step"] for s in report["steps"]] == ["normalize_whitespace", "length_filter"]
    assert report["steps"][1]["dropped"] == {"too_short_chars": 2}
    out = report["output_version"]
    assert job["inputs"] == [f"dataset_version:{v['id']}"] and job["outputs"] == [f"dataset_version:{out}"]
    listed = versions(stack, ds["id"])
    assert {x["id"] for x in listed} == {v["id"], out}
    new = next(x for x in listed if x["id"] == out)
    assert new["parent"] == v["id"] and new["job_id"] == job["id"] and new["rows"] == 3

    from sqlalchemy import select

    from llmforge.platform.db import session_scope
    from llmforge.platform.models import LineageEdge

    with session_scope(stack.settings.database_url) as s:
        edges = {(e.src, e.dst) for e in s.scalars(select(LineageEdge))}
    upload_edge = next(e for e in edges if e[1] == f"dataset_version:{v['id']}")
    assert upload_edge[0].startswith("upload:")
    assert (f"dataset_version:{v['id']}", f"job:{job['id']}") in edges
    assert (f"job:{job['id']}", f"dataset_version:{out}") in edges

    # the lineage API walks from the cleaned version back to the raw upload
    graph = stack.client.get("/api/v1/lineage", params={"ref": f"dataset_version:{out}"}, headers=stack.headers()).json()
    assert graph["root"] == f"dataset_version:{out}"
    assert {n["kind"] for n in graph["nodes"]} == {"upload", "dataset_version", "job"}
    assert {(e["src"], e["dst"]) for e in graph["edges"]} == {
        upload_edge, (f"dataset_version:{v['id']}", f"job:{job['id']}"), (f"job:{job['id']}", f"dataset_version:{out}")}
    down = stack.client.get("/api/v1/lineage", params={"ref": upload_edge[0], "direction": "downstream"},
                            headers=stack.headers()).json()
    assert f"dataset_version:{out}" in {n["ref"] for n in down["nodes"]}
    assert stack.client.post("/api/v1/projects", json={"name": "elsewhere"}, headers=stack.headers()).status_code == 201
    outsider = stack.create_key("outsider", {"elsewhere": "admin"})
    hidden = stack.client.get("/api/v1/lineage", params={"ref": f"dataset_version:{out}"}, headers=stack.headers(outsider))
    assert hidden.status_code == 404
    bad = stack.client.get("/api/v1/lineage", params={"ref": "no-colon"}, headers=stack.headers())
    assert bad.status_code == 422


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent")
def test_upload_real_csv_without_header(stack: Stack) -> None:
    ds = create(stack, "news")
    r = upload(stack, ds["id"], (SHARED_DATA / "ag_news_sample.csv").read_bytes(), name="ag_news_sample.csv",
               columns="class,title,description", text_field="description")
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["rows_with_text"] == r.json()["rows"] > 600
