"""The job state machine of ``llmforge/platform/jobs/service.py``, directly on a migrated SQLite DB.

No API and no maintenance loop run here, so nothing but the test touches the rows;
time is moved by rewriting timestamps on the rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from llmforge.platform.jobs import service
from llmforge.platform.models import Job, JobLog, LineageEdge, now

LEASE = 30.0


@dataclass
class Db:
    url: str
    project_id: str

    def session(self):  # noqa: ANN201
        from llmforge.platform.db import session_scope

        return session_scope(self.url)

    def new_job(self, kind: str = "noop", spec: dict | None = None, **kw: Any) -> str:
        with self.session() as s:
            return service.create_job(s, project_id=self.project_id, kind=kind, spec=spec or {}, **kw).id

    def row(self, job_id: str) -> dict[str, Any]:
        with self.session() as s:
            return dict(s.execute(select(Job.__table__).where(Job.id == job_id)).mappings().one())

    def set(self, job_id: str, **values: Any) -> None:
        with self.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(**values))

    def logs(self, job_id: str) -> list[str]:
        with self.session() as s:
            return [r.line for r in service.logs_after(s, job_id)]

    def claim(self, job_id: str, worker: str = "w1", pid: int = 101) -> str | None:
        with self.session() as s:
            return service.claim(s, job_id, worker=worker, pid=pid, lease_seconds=LEASE)

    def reap(self) -> list[tuple[str, str]]:
        with self.session() as s:
            return service.reap(s)

    def expire_lease(self, job_id: str) -> None:
        self.set(job_id, lease_expires_at=now() - 1)


@pytest.fixture
def db(lf_env: dict[str, str], tmp_path: Path) -> Iterator[Db]:
    from llmforge.app import load_task_modules
    from llmforge.platform import auth
    from llmforge.platform.db import dispose_all, session_scope
    from llmforge.platform.migrate import upgrade
    from llmforge.settings import Settings

    settings = Settings()
    load_task_modules(settings)  # registers noop and sleep
    upgrade(settings.database_url)
    with session_scope(settings.database_url) as s:
        project_id = auth.create_project(s, "svc").id
    yield Db(settings.database_url, project_id)
    dispose_all()


# --- submit ---------------------------------------------------------------------
def test_create_job_validates_and_queues(db: Db) -> None:
    job_id = db.new_job("sleep", {"seconds": 2})
    row = db.row(job_id)
    assert row["status"] == "queued" and row["attempt"] == 0 and row["attempt_token"] is None
    assert row["spec"] == {"seconds": 2.0, "steps": 10}  # the validated spec, defaults filled in
    assert row["published_at"] is None and row["publish_count"] == 0

    from llmforge.errors import InvalidInput, NotFound

    with db.session() as s, pytest.raises(InvalidInput) as exc:
        service.create_job(s, project_id=db.project_id, kind="sleep", spec={"seconds": -1})
    assert exc.value.param == "spec.seconds"
    with db.session() as s, pytest.raises(NotFound):
        service.create_job(s, project_id=db.project_id, kind="nope", spec={})
    with db.session() as s, pytest.raises(InvalidInput):
        service.create_job(s, project_id=db.project_id, kind="noop", spec={}, max_attempts=0)


# --- claim / heartbeat / finish ------------------------------------------------------
def test_claim_twice_second_is_none(db: Db) -> None:
    job_id = db.new_job()
    token = db.claim(job_id, worker="w1", pid=11)
    assert token
    assert db.claim(job_id, worker="w2", pid=22) is None
    row = db.row(job_id)
    assert row["status"] == "running" and row["attempt"] == 1 and row["attempt_token"] == token
    assert row["worker"] == "w1" and row["worker_pid"] == 11
    assert row["lease_expires_at"] == pytest.approx(row["started_at"] + LEASE)


def test_claim_refuses_cancelled_and_missing_jobs(db: Db) -> None:
    job_id = db.new_job()
    with db.session() as s:
        service.request_cancel(s, s.get(Job, job_id))
    assert db.row(job_id)["status"] == "cancelled"
    assert db.claim(job_id) is None
    assert db.claim("0" * 32) is None


def test_heartbeat_renews_only_with_the_current_token(db: Db) -> None:
    job_id = db.new_job()
    token = db.claim(job_id)
    db.set(job_id, lease_expires_at=now() + 1)
    with db.session() as s:
        assert service.heartbeat(s, job_id, "stale-token", LEASE) == (False, False)
    assert db.row(job_id)["lease_expires_at"] < now() + 2  # the stale heartbeat renewed nothing

    with db.session() as s:
        assert service.heartbeat(s, job_id, token, LEASE) == (True, False)
    assert db.row(job_id)["lease_expires_at"] > now() + LEASE - 5

    with db.session() as s:
        service.request_cancel(s, s.get(Job, job_id))
    with db.session() as s:
        assert service.heartbeat(s, job_id, token, LEASE) == (True, True)
        assert service.heartbeat(s, job_id, "stale-token", LEASE) == (False, False)


def test_finish_with_stale_token_changes_nothing(db: Db) -> None:
    job_id = db.new_job()
    token = db.claim(job_id)
    before = db.row(job_id)
    with db.session() as s:
        assert service.finish(s, job_id, "stale-token", status="succeeded", result={"x": 1},
                              inputs=["dataset:a"], outputs=["model:b"]) is False
    assert db.row(job_id) == before
    with db.session() as s:
        assert s.scalars(select(LineageEdge)).all() == []

    with db.session() as s:
        assert service.finish(s, job_id, token, status="succeeded", result={"x": 1}) is True
    row = db.row(job_id)
    assert row["status"] == "succeeded" and row["result"] == {"x": 1}
    assert row["lease_expires_at"] is None and row["finished_at"] is not None
    # finishing twice is refused: the row is no longer running
    with db.session() as s:
        assert service.finish(s, job_id, token, status="failed", error="late") is False
    assert db.row(job_id)["status"] == "succeeded"


def test_old_attempt_cannot_finish_the_attempt_that_replaced_it(db: Db) -> None:
    job_id = db.new_job()
    old = db.claim(job_id)
    db.expire_lease(job_id)
    assert db.reap() == [(job_id, "queued")]
    new = db.claim(job_id, worker="w2")
    assert new and new != old
    with db.session() as s:
        assert service.finish(s, job_id, old, status="failed", error="zombie") is False
        assert service.heartbeat(s, job_id, old, LEASE) == (False, False)
    row = db.row(job_id)
    assert row["status"] == "running" and row["attempt"] == 2 and row["worker"] == "w2"


def test_finish_records_lineage_edges(db: Db) -> None:
    job_id = db.new_job()
    token = db.claim(job_id)
    inputs = ["dataset:train@1", "dataset:eval@1", "dataset:train@1"]
    outputs = ["model:m@3"]
    with db.session() as s:
        assert service.finish(s, job_id, token, status="succeeded", inputs=inputs, outputs=outputs)
    job_ref = f"job:{job_id}"
    with db.session() as s:
        edges = {(e.src, e.dst, e.relation, e.job_id, e.project_id) for e in s.scalars(select(LineageEdge))}
    assert edges == {
        ("dataset:train@1", job_ref, "input", job_id, db.project_id),
        ("dataset:eval@1", job_ref, "input", job_id, db.project_id),
        (job_ref, "model:m@3", "output", job_id, db.project_id),
    }
    row = db.row(job_id)
    assert row["inputs"] == inputs and row["outputs"] == outputs


# --- reap ---------------------------------------------------------------------------
def test_reap_requeues_expired_lease_keeping_attempt(db: Db) -> None:
    job_id = db.new_job()
    db.claim(job_id, worker="w-dead")
    with db.session() as s:
        service.mark_published(s, job_id)  # recorded even after a worker claimed the job (fast workers do)
    assert db.row(job_id)["publish_count"] == 1
    assert db.reap() == []  # lease still valid
    db.expire_lease(job_id)
    assert db.reap() == [(job_id, "queued")]
    row = db.row(job_id)
    assert row["status"] == "queued" and row["attempt"] == 1
    assert row["attempt_token"] is None and row["lease_expires_at"] is None
    assert row["worker"] is None and row["worker_pid"] is None and row["published_at"] is None
    assert row["error"] is None and row["finished_at"] is None
    lines = db.logs(job_id)
    assert any("w-dead" in ln and "re-queued for attempt 2/3" in ln for ln in lines), lines
    assert db.reap() == []  # nothing left to reap
    # the next claim is attempt 2
    assert db.claim(job_id) and db.row(job_id)["attempt"] == 2


def test_reap_at_attempt_cap_fails(db: Db) -> None:
    job_id = db.new_job(max_attempts=2)
    for attempt in (1, 2):
        assert db.claim(job_id), attempt
        db.expire_lease(job_id)
        expected = "queued" if attempt == 1 else "failed"
        assert db.reap() == [(job_id, expected)]
    row = db.row(job_id)
    assert row["status"] == "failed" and row["attempt"] == 2
    assert "attempt cap" in row["error"] and "2/2" in row["error"]
    assert row["finished_at"] is not None and row["attempt_token"] is None
    assert any("attempt cap" in ln for ln in db.logs(job_id))
    assert db.claim(job_id) is None


def test_reap_single_attempt_job_fails_at_once(db: Db) -> None:
    job_id = db.new_job(max_attempts=1)
    db.claim(job_id)
    db.expire_lease(job_id)
    assert db.reap() == [(job_id, "failed")]
    assert "attempt cap" in db.row(job_id)["error"]


def test_reap_cancel_requested_running_job_is_cancelled(db: Db) -> None:
    job_id = db.new_job()
    db.claim(job_id)
    with db.session() as s:
        job = service.request_cancel(s, s.get(Job, job_id))
        assert job.status == "running" and job.cancel_requested
    db.expire_lease(job_id)
    assert db.reap() == [(job_id, "cancelled")]
    row = db.row(job_id)
    assert row["status"] == "cancelled" and row["finished_at"] is not None
    assert row["error"].startswith("cancelled")
    assert "cancel requested" in db.logs(job_id)


def test_request_cancel_of_finished_job_conflicts(db: Db) -> None:
    from llmforge.errors import Conflict

    job_id = db.new_job()
    token = db.claim(job_id)
    with db.session() as s:
        service.finish(s, job_id, token, status="succeeded")
    with db.session() as s, pytest.raises(Conflict):
        service.request_cancel(s, s.get(Job, job_id))


# --- dispatch ---------------------------------------------------------------------
def due(db: Db, redispatch_after: float = 10.0) -> list[str]:
    with db.session() as s:
        return [job_id for job_id, _queue in service.due_for_publish(s, redispatch_after)]


def test_unpublished_job_is_due_after_one_second(db: Db) -> None:
    job_id = db.new_job()
    assert due(db) == []  # its submit call is still publishing it
    db.set(job_id, created_at=now() - 1.5)
    with db.session() as s:
        assert service.due_for_publish(s, 10.0) == [(job_id, "cpu")]

    # cancelled or running jobs are never due
    db.set(job_id, cancel_requested=True)
    assert due(db) == []
    db.set(job_id, cancel_requested=False)
    db.claim(job_id)
    assert due(db) == []


def test_published_job_is_due_again_after_backoff(db: Db) -> None:
    after = 10.0
    job_id = db.new_job()
    db.set(job_id, created_at=now() - 1000)
    with db.session() as s:
        service.mark_published(s, job_id)
    row = db.row(job_id)
    assert row["publish_count"] == 1 and row["published_at"] is not None
    assert due(db, after) == []  # just published

    # wait = redispatch_after * 2 ** min(publish_count - 1, 4)
    for count, wait in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (9, 160)]:
        db.set(job_id, publish_count=count, published_at=now() - (wait - 2))
        assert due(db, after) == [], (count, wait)
        db.set(job_id, publish_count=count, published_at=now() - (wait + 2))
        assert due(db, after) == [job_id], (count, wait)

    # publishing again bumps the count and resets the clock
    with db.session() as s:
        service.mark_published(s, job_id)
    row = db.row(job_id)
    assert row["publish_count"] == 10 and row["published_at"] > now() - 5
    assert due(db, after) == []


def test_mark_published_records_even_a_claimed_job(db: Db) -> None:
    job_id = db.new_job()
    db.claim(job_id)
    with db.session() as s:
        service.mark_published(s, job_id)
    row = db.row(job_id)
    assert row["publish_count"] == 1 and row["published_at"] is not None and row["status"] == "running"


def test_unmark_published_makes_a_queued_job_due_at_once(db: Db) -> None:
    job_id = db.new_job()
    db.set(job_id, created_at=now() - 100)
    with db.session() as s:
        service.mark_published(s, job_id)
    with db.session() as s:
        assert job_id not in [j for j, _ in service.due_for_publish(s, redispatch_after=60)]
        service.unmark_published(s, job_id)
    with db.session() as s:
        assert job_id in [j for j, _ in service.due_for_publish(s, redispatch_after=60)]


def test_reaped_job_is_due_for_publish_again(db: Db) -> None:
    job_id = db.new_job()
    db.set(job_id, created_at=now() - 100)
    with db.session() as s:
        service.mark_published(s, job_id)
    db.claim(job_id)
    db.expire_lease(job_id)
    db.reap()
    assert due(db) == [job_id]  # published_at was cleared, so it goes out again at once


def test_logs_and_metrics_round_trip(db: Db) -> None:
    job_id = db.new_job()
    token = db.claim(job_id)
    assert token
    t = now()
    with db.session() as s:
        service.append_logs(s, job_id, 1, [(t, "one"), (t, "x" * (service.MAX_LOG_LINE + 10))])
        service.append_metrics(s, job_id, [("loss", 1, 0.5, t), ("loss", 0, 0.9, t), ("acc", 0, 0.1, t)])
    lines = db.logs(job_id)
    assert lines[0] == "one" and len(lines[1]) == service.MAX_LOG_LINE
    with db.session() as s:
        first = service.logs_after(s, job_id)[0].id
        assert [r.line for r in service.logs_after(s, job_id, first)] == [lines[1]]
        series = service.metric_series(s, job_id)
        assert [p["step"] for p in series["loss"]] == [0, 1]
        assert list(service.metric_series(s, job_id, "acc")) == ["acc"]
    with db.session() as s:
        assert s.scalar(select(JobLog.attempt).where(JobLog.job_id == job_id).limit(1)) == 1
