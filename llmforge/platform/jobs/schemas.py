"""Wire models of the jobs API (tables live in ``platform/models.py``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmforge.platform.models import Job

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def _iso(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc) if ts is not None else None


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64, examples=["sleep"])
    spec: dict[str, Any] = Field(default_factory=dict, examples=[{"seconds": 1}])
    project: str | None = Field(default=None, description="Project name; defaults to the key's only project.")
    queue: Literal["cpu", "gpu"] | None = Field(default=None, description="Overrides the kind's default queue.")
    max_attempts: int | None = Field(default=None, ge=1, le=20, description="Attempts before a job whose worker keeps dying fails.")


class JobPublic(BaseModel):
    id: str
    project: str
    kind: str
    spec: dict[str, Any]
    queue: str
    status: JobStatus
    attempt: int
    max_attempts: int
    cancel_requested: bool
    worker: str | None
    error: str | None
    result: dict[str, Any] | None
    inputs: list[str]
    outputs: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, job: Job, project_name: str) -> "JobPublic":
        return cls(
            id=job.id, project=project_name, kind=job.kind, spec=job.spec, queue=job.queue, status=job.status,
            attempt=job.attempt, max_attempts=job.max_attempts, cancel_requested=job.cancel_requested,
            worker=job.worker, error=job.error, result=job.result, inputs=job.inputs or [], outputs=job.outputs or [],
            created_at=_iso(job.created_at), started_at=_iso(job.started_at), finished_at=_iso(job.finished_at),
            updated_at=_iso(job.updated_at),
        )


class JobPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null on the last page.")


class MetricPoint(BaseModel):
    step: int
    value: float
    ts: float


class JobMetrics(BaseModel):
    job_id: str
    series: dict[str, list[MetricPoint]]


class JobKindPublic(BaseModel):
    name: str
    queue: str
    description: str
    spec_schema: dict[str, Any]
