"""A cleaning job that fans its shards out as child jobs: over two workers on PostgreSQL + Redis,
and on one embedded worker, where the parent runs its own children (no deadlock)."""

from __future__ import annotations

import json

import pytest

from conftest import Backend, Stack

pytestmark = pytest.mark.slow
TEXTS = [f"Document number {i} talks about topic {i % 7} in a full sentence." for i in range(40)]
ROWS = [{"text": t} for t in TEXTS] + [{"text": TEXTS[3].upper()}, {"text": "  " + TEXTS[17] + "  "}, {"text": "tiny"}]
SPEC = {"steps": [{"step": "normalize_whitespace"}, {"step": "exact_dedup"},
                  {"step": "length_filter", "params": {"min_chars": 10}}]}


def test_pipeline_fans_out_over_workers(backend: Backend, bstack: Stack, start_worker) -> None:
    ds = bstack.client.post("/api/v1/datasets", json={"name": "c"}, headers=bstack.headers()).json()
    body = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    v = bstack.client.post(f"/api/v1/datasets/{ds['id']}/versions/upload", headers=bstack.headers(),
                           files={"file": ("c.jsonl", body, "application/json")}, data={"shard_rows": "10"}).json()
    assert len(v["shards"]) == 5
    workers = 2 if backend.name == "distributed" else 1
    for i in range(workers):
        start_worker(bstack.env, name=f"w{i}")
    r = bstack.client.post(f"/api/v1/datasets/{ds['id']}/versions/{v['id']}/pipelines",
                           json={"pipeline": SPEC, "fanout": True}, headers=bstack.headers())
    job = bstack.wait(r.json()["id"], {"succeeded", "failed"}, timeout=120)
    assert job["status"] == "succeeded", job
    report = job["result"]
    assert report["rows_out"] == 40
    dedup = report["steps"][1]
    assert dedup["step"] == "exact_dedup" and dedup["dropped"] == {"exact_duplicate": 2}
    assert report["steps"][2]["dropped"] == {"too_short_chars": 1}

    from sqlalchemy import select

    from llmforge.platform.db import session_scope
    from llmforge.platform.models import Job

    with session_scope(bstack.settings.database_url) as s:
        children = list(s.scalars(select(Job).where(Job.parent_id == job["id"])))
    kinds = sorted(c.kind for c in children)
    assert kinds.count("data.pipeline_shard") == 10 and kinds.count("data.pipeline_plan") == 1
    assert all(c.status == "succeeded" for c in children)
    if backend.name == "distributed":  # both workers took shards (the parent helps from its own slot)
        assert len({c.worker for c in children}) == 2, {c.worker for c in children}
    # the shard jobs are internal: nobody can submit one directly
    bad = bstack.client.post("/api/v1/jobs", json={"kind": "data.pipeline_shard", "spec": {"task": {}}},
                             headers=bstack.headers())
    assert bad.status_code == 422 and "internal" in bad.json()["error"]["message"]
    # same output as a local run of the same spec
    from llmforge.artifacts import ArtifactStore
    from llmforge.data_pipeline.datasets import DatasetStore
    from llmforge.data_pipeline.run import run_pipeline

    store = DatasetStore(ArtifactStore(bstack.settings.artifact_url))
    local = run_pipeline(store, v["id"], SPEC)
    assert [r["text"] for r in store.iter_rows(local.version.id)] == \
        [r["text"] for r in store.iter_rows(report["output_version"])]
