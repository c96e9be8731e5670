"""Every state change of a job, each one a compare-and-set UPDATE on its row.

Delivery is owned by the table, not the broker:

- **submit** commits the row (``queued``) *before* publishing; a failed publish
  leaves ``published_at`` empty and the dispatcher publishes it later.
- **claim** moves ``queued → running`` only if the row is still queued, and
  stamps a fresh ``attempt_token``; a duplicate delivery finds nothing to claim
  and is a no-op.
- **heartbeat / finish** only touch the row while it still carries the
  caller's token, so a worker that lost its lease cannot overwrite the
  attempt that replaced it.
- **reap** re-queues (or fails, at the attempt cap) any running job whose lease
  lapsed: a job that a dead worker held never stays running.

Everything here is plain SQLAlchemy over a Session; the HTTP layer and the
worker call these functions.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from llmforge.errors import Conflict, InvalidInput, NotFound
from llmforge.platform.auth import Principal
from llmforge.platform.jobs.registry import get_kind
from llmforge.platform.models import Job, JobLog, JobMetric, LineageEdge, new_id, now

log = logging.getLogger(__name__)
TERMINAL = ("succeeded", "failed", "cancelled")
MAX_LOG_LINE = 8192


# --- control-plane side --------------------------------------------------------
def create_job(
    session: Session,
    *,
    project_id: str,
    kind: str,
    spec: dict[str, Any],
    created_by: str | None = None,
    queue: str | None = None,
    max_attempts: int = 3,
    parent_id: str | None = None,
    internal: bool = False,
) -> Job:
    """Validate the spec against its kind and insert a queued row (the caller commits, then publishes).

    ``internal`` is True only for jobs submitted by other jobs; internal kinds are refused otherwise.
    """
    job_kind = get_kind(kind)
    if job_kind.internal and not internal:
        raise InvalidInput(f"job kind {kind!r} is internal: it is started by other jobs, not submitted directly",
                           param="kind")
    validated = job_kind.validate(spec)
    if max_attempts < 1 or max_attempts > 20:
        raise InvalidInput("max_attempts must be between 1 and 20", param="max_attempts")
    job = Job(
        project_id=project_id,
        kind=kind,
        spec=validated.model_dump(mode="json"),
        queue=queue or job_kind.queue,
        created_by=created_by,
        max_attempts=max_attempts,
        parent_id=parent_id,
    )
    session.add(job)
    session.flush()
    return job


def get_visible(session: Session, principal: Principal, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or not principal.can_see(job.project_id):
        raise NotFound(f"job {job_id!r} not found")
    return job


@dataclass
class Page:
    items: list[Job]
    next_cursor: str | None


def _encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(json.dumps([job.created_at, job.id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created), str(ident)
    except Exception:  # noqa: BLE001 - any garbage is the caller's mistake
        raise InvalidInput("cursor is not one this API returned; start again without it", param="cursor") from None


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    project_id: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Newest first, keyset-paged (stable while new jobs arrive)."""
    visible = list(principal.roles)
    q = select(Job).where(Job.project_id.in_(visible))
    if project_id is not None:
        q = q.where(Job.project_id == project_id)
    if status is not None:
        q = q.where(Job.status == status)
    if kind is not None:
        q = q.where(Job.kind == kind)
    if cursor:
        created, ident = _decode_cursor(cursor)
        q = q.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < ident)))
    rows = list(session.scalars(q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, _encode_cursor(rows[-1]) if more and rows else None)


def request_cancel(session: Session, job: Job) -> Job:
    """Queued jobs are cancelled at once; running ones are stopped by their worker's next heartbeat."""
    if job.status in TERMINAL:
        raise Conflict(f"job {job.id} already {job.status}; only queued or running jobs can be cancelled")
    t = now()
    res = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=t, updated_at=t, error="cancelled before it started")
    )
    if res.rowcount == 0:
        session.execute(update(Job).where(Job.id == job.id, Job.status == "running").values(cancel_requested=True, updated_at=t))
    session.add(JobLog(job_id=job.id, attempt=job.attempt, line="cancel requested"))
    session.flush()
    session.refresh(job)
    return job


def mark_published(session: Session, job_id: str) -> None:
    # No status condition: a worker may already have claimed the job by now, and the record should still say so.
    session.execute(update(Job).where(Job.id == job_id).values(published_at=now(), publish_count=Job.publish_count + 1))


def unmark_published(session: Session, job_id: str) -> None:
    """The publish failed: make the job due for the dispatcher right away."""
    session.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued").values(published_at=None, publish_count=0)
    )


def logs_after(session: Session, job_id: str, after_id: int = 0, limit: int = 1000) -> list[JobLog]:
    q = select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after_id).order_by(JobLog.id).limit(limit)
    return list(session.scalars(q))


def metric_series(session: Session, job_id: str, key: str | None = None) -> dict[str, list[dict[str, float]]]:
    q = select(JobMetric).where(JobMetric.job_id == job_id)
    if key is not None:
        q = q.where(JobMetric.key == key)
    series: dict[str, list[dict[str, float]]] = {}
    for m in session.scalars(q.order_by(JobMetric.key, JobMetric.step, JobMetric.id)):
        series.setdefault(m.key, []).append({"step": m.step, "value": m.value, "ts": m.ts})
    return series


# --- worker side ---------------------------------------------------------------
def claim(session: Session, job_id: str, *, worker: str, pid: int, lease_seconds: float) -> str | None:
    """queued → running with a fresh attempt token; None when someone else has it (duplicate delivery)."""
    token = new_id()
    t = now()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued", Job.cancel_requested.is_(False))
        .values(
            status="running",
            attempt=Job.attempt + 1,
            attempt_token=token,
            worker=worker,
            worker_pid=pid,
            started_at=t,
            lease_expires_at=t + lease_seconds,
            updated_at=t,
        )
    )
    return token if res.rowcount == 1 else None


def heartbeat(session: Session, job_id: str, token: str, lease_seconds: float) -> tuple[bool, bool]:
    """Renew the lease. Returns (still_ours, cancel_requested)."""
    t = now()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt_token == token, Job.status == "running")
        .values(lease_expires_at=t + lease_seconds, updated_at=t)
    )
    if res.rowcount != 1:
        return False, False
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return True, bool(cancel)


def append_logs(session: Session, job_id: str, attempt: int, lines: list[tuple[float, str]]) -> None:
    if lines:
        session.add_all(JobLog(job_id=job_id, attempt=attempt, ts=ts, line=line[:MAX_LOG_LINE]) for ts, line in lines)


def append_metrics(session: Session, job_id: str, rows: list[tuple[str, int, float, float]]) -> None:
    if rows:
        session.add_all(JobMetric(job_id=job_id, key=k, step=s, value=v, ts=ts) for k, s, v, ts in rows)


def finish(
    session: Session,
    job_id: str,
    token: str,
    *,
    status: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
) -> bool:
    """running → terminal, only while the caller's attempt still owns the row. Records lineage edges."""
    assert status in TERMINAL, status
    t = now()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt_token == token, Job.status == "running")
        .values(
            status=status,
            result=result,
            error=error,
            finished_at=t,
            updated_at=t,
            lease_expires_at=None,
            inputs=inputs or [],
            outputs=outputs or [],
        )
    )
    if res.rowcount != 1:
        return False
    project_id = session.scalar(select(Job.project_id).where(Job.id == job_id))
    job_ref = f"job:{job_id}"
    edges = [(ref, job_ref, "input") for ref in inputs or []] + [(job_ref, ref, "output") for ref in outputs or []]
    for src, dst, relation in dict.fromkeys(edges):
        session.add(LineageEdge(project_id=project_id, src=src, dst=dst, relation=relation, job_id=job_id))
    return True


# --- maintenance (control plane) ----------------------------------------------
def reap(session: Session, *, limit: int = 100) -> list[tuple[str, str]]:
    """Deal with running jobs whose lease lapsed. Returns [(job_id, new_status)]."""
    t = now()
    lapsed = session.execute(
        select(Job.id, Job.attempt_token, Job.attempt, Job.max_attempts, Job.cancel_requested, Job.worker)
        .where(Job.status == "running", Job.lease_expires_at < t)
        .limit(limit)
    ).all()
    changed: list[tuple[str, str]] = []
    for job_id, token, attempt, max_attempts, cancel, worker in lapsed:
        where = (Job.id == job_id, Job.attempt_token == token, Job.status == "running", Job.lease_expires_at < t)
        lost = f"worker {worker} stopped renewing its lease during attempt {attempt}/{max_attempts} (killed or crashed)"
        if cancel:
            values = dict(status="cancelled", error=f"cancelled; {lost}", finished_at=t)
        elif attempt >= max_attempts:
            values = dict(
                status="failed",
                finished_at=t,
                error=f"{lost}; attempt cap of {max_attempts} reached, not retrying. "
                "If every attempt dies the job may be crashing its worker (out of memory?): see the job's logs.",
            )
        else:
            values = dict(status="queued", published_at=None, worker=None, worker_pid=None)
        res = session.execute(
            update(Job).where(*where).values(attempt_token=None, lease_expires_at=None, updated_at=t, **values)
        )
        if res.rowcount == 1:
            note = values.get("error") or f"{lost}; re-queued for attempt {attempt + 1}/{max_attempts}"
            session.add(JobLog(job_id=job_id, attempt=attempt, line=f"[llmforge] {note}"))
            changed.append((job_id, values["status"]))
    return changed


def due_for_publish(session: Session, redispatch_after: float, limit: int = 200) -> list[tuple[str, str]]:
    """Queued jobs never published, or published long ago and still unclaimed (the message may be lost).

    The wait doubles with each publish (capped at 16×) so a long backlog is not
    flooded with duplicates; duplicates are harmless anyway (claim is a CAS).
    """
    t = now()
    rows = session.execute(
        select(Job.id, Job.queue, Job.published_at, Job.publish_count, Job.created_at)
        .where(Job.status == "queued", Job.cancel_requested.is_(False))
        .order_by(Job.created_at)
        .limit(limit)
    ).all()
    due = []
    for job_id, queue, published_at, count, created_at in rows:
        if published_at is None:
            if t - created_at > 1.0:  # younger ones are still being published by their submit call
                due.append((job_id, queue))
        elif t - published_at > redispatch_after * (2 ** min(max(count - 1, 0), 4)):
            due.append((job_id, queue))
    return due
