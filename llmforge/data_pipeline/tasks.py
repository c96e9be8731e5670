"""Job kinds of the data pipeline.

- ``data.pipeline`` cleans a dataset version into a new one. In distributed mode
  (any broker but the embedded one, or ``fanout: true``) it fans its shards out
  as child jobs so every worker takes part:
- ``data.pipeline_shard`` (internal) runs one shard through one segment;
- ``data.pipeline_plan`` (internal) runs the global phase of a dedup step.

The parent never just waits: while children are queued it claims and runs them
itself, so a pipeline cannot deadlock when every worker slot holds a parent.
Children hand data over through the artifact store only (never local paths).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from llmforge.data_pipeline.datasets import DatasetStore
from llmforge.data_pipeline.run import ShardTask, run_plan, run_pipeline, run_shard_task
from llmforge.data_pipeline.spec import PipelineSpec, build_steps
from llmforge.errors import InvalidInput, NotFound, Unavailable
from llmforge.platform import queue
from llmforge.platform.db import session_scope
from llmforge.platform.jobs import JobContext, job_kind, runner, service
from llmforge.platform.models import Dataset, DatasetVersionRow, Job
from llmforge.settings import Settings, get_settings

log = logging.getLogger(__name__)


class PipelineJobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: str
    version: str = Field(pattern=r"^[0-9a-f]{64}$")
    pipeline: PipelineSpec
    workers: int = Field(default=1, ge=1, le=64)
    """Local processes per shard stage (when not fanning out)."""
    fanout: bool | None = None
    """Run shards as child jobs over every worker. Default: yes in distributed mode (a non-embedded broker)."""

    @model_validator(mode="after")
    def _steps_exist(self) -> "PipelineJobSpec":
        build_steps(self.pipeline)  # unknown steps / bad params are refused at submit time
        return self


def record_version(*, dataset_id: str, project_id: str, version, created_by: str | None, job_id: str | None) -> None:  # noqa: ANN001
    """Make a complete version visible in the project (idempotent: a re-run finds it already there)."""
    with session_scope(get_settings().database_url) as s:
        exists = s.scalar(select(DatasetVersionRow.id).where(
            DatasetVersionRow.dataset_id == dataset_id, DatasetVersionRow.digest == version.id))
        if exists is None:
            s.add(DatasetVersionRow(dataset_id=dataset_id, project_id=project_id, digest=version.id,
                                    parent_digest=version.parent, job_id=job_id, rows=version.rows,
                                    source=version.manifest.get("source", {}), created_by=created_by))


@job_kind("data.pipeline", spec=PipelineJobSpec)
def pipeline(ctx: JobContext, spec: PipelineJobSpec) -> dict[str, Any]:
    """Run a cleaning pipeline over a dataset version into a new version, with a per-step report."""
    settings = get_settings()
    with session_scope(settings.database_url) as s:
        ds = s.get(Dataset, spec.dataset_id)
        if ds is None or ds.project_id != ctx.project_id:
            raise NotFound(f"dataset {spec.dataset_id} not found in this job's project")
        if s.scalar(select(DatasetVersionRow.id).where(DatasetVersionRow.dataset_id == ds.id,
                                                       DatasetVersionRow.digest == spec.version)) is None:
            raise NotFound(f"version {spec.version} is not a version of dataset {ds.name}")
    store = DatasetStore.from_settings()
    ctx.add_input(f"dataset_version:{spec.version}")
    ctx.log(f"pipeline of {len(spec.pipeline.steps)} steps over {spec.version[:12]} with {spec.workers} worker(s)")

    def progress(done: int, total: int, message: str) -> None:
        ctx.check_cancelled()
        ctx.metric("progress", done / total, step=done)
        ctx.log(message)

    fan_out = spec.fanout if spec.fanout is not None else not settings.embedded_broker
    fanout = JobFanout(ctx, settings) if fan_out else None
    if fanout:
        ctx.log("fanning shards out as child jobs over every worker")
    result = run_pipeline(store, spec.version, spec.pipeline, workers=spec.workers, job_id=ctx.job_id,
                          progress=progress, fanout=fanout)
    record_version(dataset_id=spec.dataset_id, project_id=ctx.project_id, version=result.version,
                   created_by=None, job_id=ctx.job_id)
    ctx.add_output(f"dataset_version:{result.version.id}")
    for st in result.report["steps"]:
        ctx.log(f"{st['step']}: {st['docs_in']} in, {st['docs_out']} out, {st['modified']} modified"
                + (f", dropped {st['dropped']}" if st["dropped"] else ""))
    return result.report


# --- fan-out over workers ------------------------------------------------------------


def _no_local_refs(refs: list[str | None]) -> None:
    for ref in refs:
        if ref and not (ref.startswith(("version:", "artifact:")) or ref == "artifact"):
            raise InvalidInput(f"shard tasks exchange data through the artifact store only, not {ref!r}")


class ShardJobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: dict[str, Any]


class PlanJobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any]
    step_index: int = Field(ge=0)
    index_refs: list[str]
    num_shards: int = Field(ge=1)


@job_kind("data.pipeline_shard", spec=ShardJobSpec, internal=True)
def pipeline_shard(ctx: JobContext, spec: ShardJobSpec) -> dict[str, Any]:
    """One shard of a pipeline segment (started by data.pipeline)."""
    task = ShardTask(**{**spec.task, "artifact_url": get_settings().artifact_url})  # never a URL from the spec
    _no_local_refs([task.source, task.filter_dir, task.index_to, task.out])
    return run_shard_task(task)


@job_kind("data.pipeline_plan", spec=PlanJobSpec, internal=True)
def pipeline_plan(ctx: JobContext, spec: PlanJobSpec) -> dict[str, Any]:
    """The global phase of a dedup step (started by data.pipeline)."""
    _no_local_refs(spec.index_refs)
    return run_plan(get_settings().artifact_url, spec.spec, spec.step_index, spec.index_refs, spec.num_shards)


class JobFanout:
    """Runs a pipeline's shard tasks and plans as child jobs of the running job."""

    shared_disk = False

    def __init__(self, ctx: JobContext, settings: Settings) -> None:
        self.ctx, self.settings = ctx, settings

    def map_shards(self, tasks: list[ShardTask]):  # noqa: ANN201 - iterator of results, in order
        specs = [{"task": {k: v for k, v in t.__dict__.items() if k != "artifact_url"}} for t in tasks]
        return iter(self._run_children("data.pipeline_shard", specs))

    def plan(self, artifact_url: str, spec: dict[str, Any], step_index: int, index_refs: list[str],
             num_shards: int) -> dict[str, Any]:
        body = {"spec": spec, "step_index": step_index, "index_refs": index_refs, "num_shards": num_shards}
        return self._run_children("data.pipeline_plan", [body])[0]

    def _run_children(self, kind: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        db = self.settings.database_url
        with session_scope(db) as s:
            ids = [service.create_job(s, project_id=self.ctx.project_id, kind=kind, spec=sp, parent_id=self.ctx.job_id,
                                      max_attempts=self.settings.max_attempts, internal=True).id for sp in specs]
        for cid in ids:
            try:
                queue.publish(self.settings, cid, "cpu")
                with session_scope(db) as s:
                    service.mark_published(s, cid)
            except Unavailable:
                pass  # the dispatcher publishes it later; meanwhile we may run it ourselves
        self.ctx.log(f"started {len(ids)} {kind} child job(s)")
        pending = list(ids)
        while pending:
            if self.ctx.cancelled:
                self._cancel(pending)
                self.ctx.check_cancelled()
            with session_scope(db) as s:
                rows = {j.id: (j.status, j.error) for j in s.query(Job).filter(Job.id.in_(pending))}
            for cid in list(pending):
                status, error = rows[cid]
                if status == "succeeded":
                    pending.remove(cid)
                elif status in ("failed", "cancelled"):
                    self._cancel(pending)
                    raise RuntimeError(f"{kind} child job {cid} {status}: {error}")
            queued = [cid for cid in pending if rows[cid][0] == "queued"]
            if queued:
                runner.execute(queued[0], self.settings)  # help instead of waiting; a no-op if a worker took it
            elif pending:
                time.sleep(0.2)
        with session_scope(db) as s:
            results = {j.id: j.result for j in s.query(Job).filter(Job.id.in_(ids))}
        return [results[cid] for cid in ids]

    def _cancel(self, job_ids: list[str]) -> None:
        with session_scope(self.settings.database_url) as s:
            for j in s.query(Job).filter(Job.id.in_(job_ids)):
                if j.status in ("queued", "running"):
                    service.request_cancel(s, j)
