"""Job kinds of the data pipeline: ``data.pipeline`` cleans a dataset version into a new one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from llmforge.data_pipeline.datasets import DatasetStore
from llmforge.data_pipeline.run import run_pipeline
from llmforge.data_pipeline.spec import PipelineSpec, build_steps
from llmforge.errors import NotFound
from llmforge.platform.db import session_scope
from llmforge.platform.jobs import JobContext, job_kind
from llmforge.platform.models import Dataset, DatasetVersionRow
from llmforge.settings import get_settings


class PipelineJobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: str
    version: str = Field(pattern=r"^[0-9a-f]{64}$")
    pipeline: PipelineSpec
    workers: int = Field(default=1, ge=1, le=64)

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

    result = run_pipeline(store, spec.version, spec.pipeline, workers=spec.workers, job_id=ctx.job_id, progress=progress)
    record_version(dataset_id=spec.dataset_id, project_id=ctx.project_id, version=result.version,
                   created_by=None, job_id=ctx.job_id)
    ctx.add_output(f"dataset_version:{result.version.id}")
    for st in result.report["steps"]:
        ctx.log(f"{st['step']}: {st['docs_in']} in, {st['docs_out']} out, {st['modified']} modified"
                + (f", dropped {st['dropped']}" if st["dropped"] else ""))
    return result.report
