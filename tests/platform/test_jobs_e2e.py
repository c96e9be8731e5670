"""Jobs end to end: HTTP API in-process, real Celery worker subprocesses, on both backends.

Each test runs on the embedded backend (SQLite + filesystem transport) and on
the distributed one (PostgreSQL + Redis); faults are real: SIGKILL of a pool
process or of the whole worker, a task that kills its worker every time,
duplicate deliveries, and a broker that is down when the job is submitted.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from conftest import Backend, Stack, wait_until

pytestmark = pytest.mark.slow


def test_job_lifecycle_logs_and_metrics(bstack: Stack, start_worker) -> None:
    start_worker(bstack.env)
    job = bstack.submit("sleep", {"seconds": 1.5, "steps": 5})
    assert job["status"] == "queued"
    seen = [job["status"]]
    deadline = time.time() + 30
    while seen[-1] != "succeeded" and time.time() < deadline:
        st = bstack.job(job["id"])["status"]
        if st != seen[-1]:
            seen.append(st)
        time.sleep(0.05)
    assert seen == ["queued", "running", "succeeded"]
    done = bstack.job(job["id"])
    assert done["result"] == {"slept": 1.5} and done["attempt"] == 1 and done["worker"]

    text = bstack.client.get(f"/api/v1/jobs/{job['id']}/logs", headers=bstack.headers())
    assert text.headers["content-type"].startswith("text/plain")
    lines = text.text.splitlines()
    assert [ln for ln in lines if ln.startswith("step ")] == [f"step {i}/5" for i in range(1, 6)]
    assert "finished: succeeded" in lines[-1]

    metrics = bstack.client.get(f"/api/v1/jobs/{job['id']}/metrics", headers=bstack.headers()).json()
    progress = metrics["series"]["progress"]
    assert [p["step"] for p in progress] == [0, 1, 2, 3, 4]
    assert progress[-1]["value"] == pytest.approx(1.0)
    only = bstack.client.get(f"/api/v1/jobs/{job['id']}/metrics?key=step_seconds", headers=bstack.headers()).json()
    assert list(only["series"]) == ["step_seconds"]


def test_logs_stream_as_server_sent_events_while_running(bstack: Stack, start_worker) -> None:
    start_worker(bstack.env)
    job = bstack.submit("sleep", {"seconds": 2, "steps": 4})
    bstack.wait(job["id"], "running")
    events, data = [], []
    with bstack.client.stream("GET", f"/api/v1/jobs/{job['id']}/logs",
                              headers={**bstack.headers(), "Accept": "text/event-stream"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event = "message"
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append(event)
                data.append(json.loads(line[6:]))
                event = "message"
    assert events[-1] == "end" and data[-1] == {"status": "succeeded"}
    streamed = [d["line"] for d in data[:-1]]
    assert [ln for ln in streamed if ln.startswith("step ")] == ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]


def test_failure_is_recorded_with_reason(bstack: Stack, start_worker) -> None:
    start_worker(bstack.env)
    job = bstack.submit("noop", {"fail": "the data was bad"})
    done = bstack.wait(job["id"], {"failed", "succeeded"})
    assert done["status"] == "failed"
    assert done["error"] == "RuntimeError: the data was bad"
    assert done["attempt"] == 1  # a handler error is not retried; only lost workers are
    logs = bstack.client.get(f"/api/v1/jobs/{job['id']}/logs", headers=bstack.headers()).text
    assert "Traceback" in logs and "the data was bad" in logs


def test_cancel_stops_the_whole_process_tree(bstack: Stack, start_worker, tmp_path: Path) -> None:
    start_worker(bstack.env)
    pid_file = tmp_path / "tree.pids"
    job = bstack.submit("test.process_tree", {"pid_file": str(pid_file), "seconds": 120})
    wait_until(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 30, "process tree never started")
    child, grandchild = (int(p) for p in pid_file.read_text().split())
    assert psutil.pid_exists(child) and psutil.pid_exists(grandchild)
    r = bstack.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bstack.headers())
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    done = bstack.wait(job["id"], {"cancelled", "failed", "succeeded"}, timeout=20)
    assert done["status"] == "cancelled"
    wait_until(lambda: not _alive(child) and not _alive(grandchild), 10, "job processes survived the cancel")
    # the worker itself is fine and takes the next job
    nxt = bstack.submit("noop", {"result": {"ok": 1}})
    assert bstack.wait(nxt["id"], {"succeeded", "failed"})["result"] == {"ok": 1}


def test_cancel_of_an_uncooperative_handler(bstack: Stack, start_worker) -> None:
    start_worker(bstack.env)
    job = bstack.submit("test.uncooperative", {"seconds": 60})
    bstack.wait(job["id"], "running")
    bstack.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bstack.headers())
    assert bstack.wait(job["id"], {"cancelled", "failed", "succeeded"}, timeout=20)["status"] == "cancelled"


def test_cancel_queued_and_finished(bstack: Stack) -> None:
    job = bstack.submit("sleep", {"seconds": 1})  # no worker: stays queued
    r = bstack.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bstack.headers())
    assert r.json()["status"] == "cancelled"
    again = bstack.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bstack.headers())
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_kill9_of_pool_process_requeues_and_reruns(bstack: Stack, start_worker) -> None:
    worker = start_worker(bstack.env)
    job = bstack.submit("sleep", {"seconds": 3, "steps": 30})
    bstack.wait(job["id"], "running")
    running = bstack.job(job["id"])
    pool = [p for p in worker.pool_children() if p.pid == _pid_of(bstack, job["id"])]
    assert pool, "the job's pool process is not a child of the worker we started"
    os.kill(pool[0].pid, signal.SIGKILL)
    done = bstack.wait(job["id"], {"succeeded", "failed"}, timeout=40)
    assert done["status"] == "succeeded" and done["attempt"] == 2, done
    logs = bstack.client.get(f"/api/v1/jobs/{job['id']}/logs", headers=bstack.headers()).text
    assert "stopped renewing its lease during attempt 1/3" in logs and "attempt 2 started" in logs
    assert running["attempt"] == 1


def test_kill9_of_whole_worker_then_another_worker_reruns(bstack: Stack, start_worker) -> None:
    first = start_worker(bstack.env, name="first")
    job = bstack.submit("sleep", {"seconds": 2, "steps": 20})
    bstack.wait(job["id"], "running")
    pool_pids = [p.pid for p in first.pool_children()]
    first.kill9()
    # pool processes die with their parent (PR_SET_PDEATHSIG): no orphan keeps running the job
    wait_until(lambda: not any(_alive(p) for p in pool_pids), 10, "orphaned pool process survived its worker")
    start_worker(bstack.env, name="second")
    done = bstack.wait(job["id"], {"succeeded", "failed"}, timeout=40)
    assert done["status"] == "succeeded" and done["attempt"] == 2, done


def test_job_that_kills_its_worker_stops_at_attempt_cap(bstack: Stack, start_worker) -> None:
    start_worker(bstack.env)
    job = bstack.submit("test.kill_worker", {}, max_attempts=2)
    done = bstack.wait(job["id"], {"failed", "succeeded"}, timeout=60)
    assert done["status"] == "failed" and done["attempt"] == 2
    assert "attempt cap of 2 reached" in done["error"]
    # and the worker survived to run something else
    nxt = bstack.submit("noop", {"result": {"after": True}})
    assert bstack.wait(nxt["id"], {"succeeded", "failed"}, timeout=30)["status"] == "succeeded"


def test_duplicate_delivery_runs_once(bstack: Stack, start_worker) -> None:
    from llmforge.platform import queue

    start_worker(bstack.env, concurrency=2)
    job = bstack.submit("sleep", {"seconds": 1, "steps": 2})
    queue.publish(bstack.settings, job["id"], "cpu")  # the same message twice more, as a broker redelivery would
    queue.publish(bstack.settings, job["id"], "cpu")
    done = bstack.wait(job["id"], {"succeeded", "failed"}, timeout=30)
    time.sleep(1.5)  # let the duplicates arrive and be ignored
    again = bstack.job(job["id"])
    assert done["status"] == again["status"] == "succeeded" and again["attempt"] == 1
    logs = bstack.client.get(f"/api/v1/jobs/{job['id']}/logs", headers=bstack.headers()).text
    assert logs.count("attempt 1 started") == 1 and "attempt 2" not in logs


# Redis only: the embedded broker is a local folder, with no server to take down.
@pytest.mark.parametrize("backend", [pytest.param("distributed", marks=pytest.mark.distributed)], indirect=True)
def test_broker_down_at_submit_loses_nothing(backend: Backend, bstack: Stack, start_worker) -> None:
    assert backend.redis is not None
    backend.redis.kill()
    job = bstack.submit("noop", {"result": {"survived": True}})
    assert job["status"] == "queued"
    backend.redis.start()  # same port
    start_worker(bstack.env)
    done = bstack.wait(job["id"], {"succeeded", "failed"}, timeout=40)
    assert done["result"] == {"survived": True}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pid_of(stack: Stack, job_id: str) -> int:
    from llmforge.platform.db import session_scope
    from llmforge.platform.models import Job

    with session_scope(stack.settings.database_url) as s:
        return s.get(Job, job_id).worker_pid
