"""REST surface of the job system: submit, list, get, cancel, logs (SSE while running), metrics."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmforge.platform.db import session_scope
from llmforge.platform.deps import PrincipalDep, SessionDep, SettingsDep
from llmforge.platform.jobs import service
from llmforge.platform.jobs.registry import kinds
from llmforge.platform.jobs import submit
from llmforge.platform.jobs.schemas import JobCreate, JobKindPublic, JobMetrics, JobPage, JobPublic, JobStatus
from llmforge.platform.models import Job

router = APIRouter(prefix="/jobs", tags=["jobs"])
log = logging.getLogger(__name__)
ERRORS = {404: {"description": "No such job in a project this key can see"}}


def _names(principal: PrincipalDep) -> dict[str, str]:
    return {pid: name for name, pid in principal.project_names.items()}


@router.get("/kinds", response_model=list[JobKindPublic])
def list_kinds() -> list[JobKindPublic]:
    """Job kinds this deployment can run, each with the JSON schema of its spec."""
    return [JobKindPublic(name=k.name, queue=k.queue, description=k.description, spec_schema=k.spec.model_json_schema())
            for k in kinds()]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobPublic,
             responses={403: {"description": "Viewer keys cannot submit"}, 422: {"description": "Invalid spec"}})
def submit_job(body: JobCreate, session: SessionDep, principal: PrincipalDep, settings: SettingsDep) -> JobPublic:
    """Validate the spec, commit a queued job, then publish it. A broker outage does not lose it: it is re-sent."""
    project_id = principal.resolve_project(body.project)
    job = submit.submit_job(session, settings, principal, project_id=project_id, kind=body.kind, spec=body.spec,
                     queue_name=body.queue, max_attempts=body.max_attempts)
    return JobPublic.of(job, _names(principal)[project_id])


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    project: str | None = None,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> JobPage:
    """Newest first. Filter by project, status or kind; page with `cursor`."""
    project_id = principal.resolve_project(project) if project else None
    page = service.list_jobs(session, principal, project_id=project_id, status=status_, kind=kind, limit=limit, cursor=cursor)
    names = _names(principal)
    return JobPage(items=[JobPublic.of(j, names[j.project_id]) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS)
def get_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobPublic:
    job = service.get_visible(session, principal, job_id)
    return JobPublic.of(job, _names(principal)[job.project_id])


@router.post("/{job_id}/cancel", response_model=JobPublic,
             responses={**ERRORS, 403: {"description": "Viewer keys cannot cancel"}, 409: {"description": "Already finished"}})
def cancel_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobPublic:
    """Queued: cancelled at once. Running: its worker stops the job's whole process tree within a heartbeat."""
    job = service.get_visible(session, principal, job_id)
    principal.require(job.project_id, "editor")
    job = service.request_cancel(session, job)
    return JobPublic.of(job, _names(principal)[job.project_id])


@router.get("/{job_id}/logs", response_model=None, responses={**ERRORS, 200: {"content": {"text/plain": {}, "text/event-stream": {}}}})
async def job_logs(job_id: str, request: Request, principal: PrincipalDep, settings: SettingsDep,
                   follow: bool = False, after: int = 0) -> StreamingResponse | PlainTextResponse:
    """Full text by default; a server-sent event stream while the job runs when asked
    (`Accept: text/event-stream` or `?follow=true`). Each event's `id` resumes with `?after=`."""
    def load(after_id: int) -> tuple[str, list]:
        with session_scope(settings.database_url) as s:
            job = service.get_visible(s, principal, job_id)
            return job.status, [(r.id, r.ts, r.line) for r in service.logs_after(s, job_id, after_id)]

    status_now, lines = await run_in_threadpool(load, after)
    wants_stream = follow or "text/event-stream" in request.headers.get("accept", "")
    if not wants_stream:
        text_lines = [line for _, _, line in lines]
        last = lines[-1][0] if lines else after
        while len(lines) == 1000:  # page through long logs
            status_now, lines = await run_in_threadpool(load, last)
            text_lines += [line for _, _, line in lines]
            last = lines[-1][0] if lines else last
        return PlainTextResponse("\n".join(text_lines) + ("\n" if text_lines else ""), headers={"X-Job-Status": status_now})

    async def events():
        nonlocal status_now, lines
        last = after
        while True:
            for ident, ts, line in lines:
                last = ident
                yield f"id: {ident}\ndata: {json.dumps({'ts': ts, 'line': line})}\n\n"
            if status_now in service.TERMINAL and not lines:
                yield f"event: end\ndata: {json.dumps({'status': status_now})}\n\n"
                return
            if await request.is_disconnected():
                return
            if not lines:
                await asyncio.sleep(0.5)
            status_now, lines = await run_in_threadpool(load, last)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{job_id}/metrics", response_model=JobMetrics, responses=ERRORS)
def job_metrics(job_id: str, session: SessionDep, principal: PrincipalDep, key: str | None = None) -> JobMetrics:
    """Every metric the job emitted, as time series keyed by name (`?key=` for one)."""
    job: Job = service.get_visible(session, principal, job_id)
    return JobMetrics(job_id=job.id, series=service.metric_series(session, job.id, key))
