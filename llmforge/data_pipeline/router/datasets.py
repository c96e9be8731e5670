"""REST surface of datasets and cleaning pipelines (thin: validate, call the core, shape the response)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from llmforge.data_pipeline.datasets import DatasetStore, DatasetVersion
from llmforge.data_pipeline.formats import Format, TextSplit
from llmforge.data_pipeline.registry import available_steps
from llmforge.data_pipeline.schemas import (DatasetCreate, DatasetPublic, ImportFromPath, PipelineRun, ShardPublic,
                                            StepInfo, VersionPublic)
from llmforge.data_pipeline.tasks import record_version
from llmforge.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from llmforge.lineage import Ref
from llmforge.platform.auth import Principal
from llmforge.platform.deps import PrincipalDep, SessionDep, SettingsDep
from llmforge.platform.jobs.schemas import JobPublic
from llmforge.platform.jobs.submit import submit_job
from llmforge.platform.models import Dataset, DatasetVersionRow, LineageEdge
from llmforge.settings import Settings

router = APIRouter(prefix="/datasets", tags=["datasets"])
steps_router = APIRouter(prefix="/pipelines", tags=["pipelines"])
UPLOAD_PATH = r"^/api/v1/datasets/[^/]+/versions/upload$"


def _iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _store(settings: Settings) -> DatasetStore:
    from llmforge.artifacts import ArtifactStore

    return DatasetStore(ArtifactStore(settings.artifact_url))


def _dataset(session, principal: Principal, dataset_id: str) -> Dataset:  # noqa: ANN001
    ds = session.get(Dataset, dataset_id)
    if ds is None or not principal.can_see(ds.project_id):
        raise NotFound(f"dataset {dataset_id!r} not found")
    return ds


def _version_row(session, ds: Dataset, digest: str) -> DatasetVersionRow:  # noqa: ANN001
    row = session.scalar(select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == ds.id,
                                                         DatasetVersionRow.digest == digest))
    if row is None:
        raise NotFound(f"version {digest!r} of dataset {ds.name!r} not found")
    return row


def _public(session, ds: Dataset, principal: Principal) -> DatasetPublic:  # noqa: ANN001
    names = {pid: n for n, pid in principal.project_names.items()}
    latest = session.scalar(select(DatasetVersionRow.digest).where(DatasetVersionRow.dataset_id == ds.id)
                            .order_by(DatasetVersionRow.created_at.desc()).limit(1))
    count = session.scalar(select(func.count()).select_from(DatasetVersionRow).where(DatasetVersionRow.dataset_id == ds.id))
    return DatasetPublic(id=ds.id, project=names[ds.project_id], name=ds.name, description=ds.description,
                         created_at=_iso(ds.created_at), latest_version=latest, versions=count or 0)


def _version_public(v: DatasetVersion, row: DatasetVersionRow) -> VersionPublic:
    return VersionPublic(id=v.id, dataset_id=row.dataset_id, parent=v.parent, job_id=v.job_id or row.job_id, rows=v.rows,
                         text_field=v.manifest.get("text_field", "text"), schema=v.schema, stats=v.stats,
                         shards=[ShardPublic(index=i, digest=s["digest"], rows=s["rows"]) for i, s in enumerate(v.shards)],
                         source=v.manifest.get("source", {}), created_at=_iso(row.created_at))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetPublic)
def create_dataset(body: DatasetCreate, session: SessionDep, principal: PrincipalDep) -> DatasetPublic:
    project_id = principal.resolve_project(body.project)
    principal.require(project_id, "editor")
    if session.scalar(select(Dataset.id).where(Dataset.project_id == project_id, Dataset.name == body.name)):
        raise Conflict(f"a dataset named {body.name!r} already exists in this project")
    ds = Dataset(project_id=project_id, name=body.name, description=body.description, created_by=principal.key_id)
    session.add(ds)
    session.flush()
    return _public(session, ds, principal)


@router.get("", response_model=list[DatasetPublic])
def list_datasets(session: SessionDep, principal: PrincipalDep, project: str | None = None) -> list[DatasetPublic]:
    visible = [principal.resolve_project(project)] if project else list(principal.roles)
    rows = session.scalars(select(Dataset).where(Dataset.project_id.in_(visible)).order_by(Dataset.created_at.desc()))
    return [_public(session, ds, principal) for ds in rows]


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: str, session: SessionDep, principal: PrincipalDep) -> DatasetPublic:
    return _public(session, _dataset(session, principal, dataset_id), principal)


def _import(session, settings: Settings, principal: Principal, ds: Dataset, path: Path, *, name: str,  # noqa: ANN001
            fmt: Format | None, text_field: str, text_split: TextSplit | None, columns: list[str] | None,
            shard_rows: int) -> VersionPublic:
    store = _store(settings)
    version = store.import_file(path, fmt=fmt, text_split=text_split, text_field=text_field, name=name, columns=columns,
                                shard_rows=shard_rows)
    record_version(dataset_id=ds.id, project_id=ds.project_id, version=version, created_by=principal.key_id, job_id=None)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    src, dst = str(Ref("upload", h.hexdigest())), str(Ref("dataset_version", version.id))
    if session.scalar(select(LineageEdge.id).where(LineageEdge.src == src, LineageEdge.dst == dst)) is None:
        session.add(LineageEdge(project_id=ds.project_id, src=src, dst=dst, relation="imported"))
    session.commit()
    return _version_public(version, _version_row(session, ds, version.id))


@router.post("/{dataset_id}/versions/upload", status_code=status.HTTP_201_CREATED, response_model=VersionPublic,
             responses={413: {"description": "File over LLMFORGE_MAX_UPLOAD_BYTES"}, 422: {"description": "Malformed file"}})
def upload_version(
    dataset_id: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep,
    file: Annotated[UploadFile, File(description="JSONL, CSV, Parquet, .txt or .md; UTF-8.")],
    format: Annotated[Format | None, Form()] = None,
    text_field: Annotated[str, Form()] = "text",
    text_split: Annotated[TextSplit | None, Form()] = None,
    columns: Annotated[str | None, Form(description="Comma-separated column names for a CSV without a header.")] = None,
    shard_rows: Annotated[int, Form(ge=1, le=10_000_000, description="Rows per shard (the unit of parallelism).")] = 10_000,
) -> VersionPublic:
    """Upload a raw file as a new version. The body streams to disk; a malformed file creates nothing."""
    ds = _dataset(session, principal, dataset_id)
    principal.require(ds.project_id, "editor")
    staging = settings.home / "uploads"
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=staging, suffix=Path(file.filename or "upload").suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            copied = 0
            while chunk := file.file.read(1 << 20):
                copied += len(chunk)
                if copied > settings.max_upload_bytes:
                    raise PayloadTooLarge(f"file exceeds the {settings.max_upload_bytes}-byte upload limit")
                out.write(chunk)
        return _import(session, settings, principal, ds, Path(tmp), name=file.filename or "upload", fmt=format,
                       text_field=text_field, text_split=text_split,
                       columns=[c.strip() for c in columns.split(",")] if columns else None, shard_rows=shard_rows)
    finally:
        os.unlink(tmp)


@router.post("/{dataset_id}/versions/from-path", status_code=status.HTTP_201_CREATED, response_model=VersionPublic)
def import_from_path(dataset_id: str, body: ImportFromPath, session: SessionDep, principal: PrincipalDep,
                     settings: SettingsDep) -> VersionPublic:
    """Import a server-side file; only project admins, and only under LLMFORGE_IMPORT_ROOTS."""
    ds = _dataset(session, principal, dataset_id)
    principal.require(ds.project_id, "admin")
    target = Path(body.path).resolve()
    roots = [Path(r).expanduser().resolve() for r in settings.import_roots]
    if not any(target.is_relative_to(r) for r in roots):
        raise Forbidden(f"{body.path} is not under an allowed import root; an operator lists roots in LLMFORGE_IMPORT_ROOTS")
    if not target.is_file():
        raise NotFound(f"no file at {body.path}")
    return _import(session, settings, principal, ds, target, name=target.name, fmt=body.format,
                   text_field=body.text_field, text_split=body.text_split, columns=body.columns,
                   shard_rows=body.shard_rows)


@router.get("/{dataset_id}/versions", response_model=list[VersionPublic])
def list_versions(dataset_id: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep) -> list[VersionPublic]:
    ds = _dataset(session, principal, dataset_id)
    store = _store(settings)
    rows = session.scalars(select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == ds.id)
                           .order_by(DatasetVersionRow.created_at.desc()))
    return [_version_public(store.get(r.digest), r) for r in rows]


@router.get("/{dataset_id}/versions/{version}", response_model=VersionPublic)
def get_version(dataset_id: str, version: str, session: SessionDep, principal: PrincipalDep,
                settings: SettingsDep) -> VersionPublic:
    ds = _dataset(session, principal, dataset_id)
    row = _version_row(session, ds, version)
    return _version_public(_store(settings).get(row.digest), row)


@router.get("/{dataset_id}/versions/{version}/preview")
def preview(dataset_id: str, version: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep,
            n: Annotated[int, Query(ge=1, le=500)] = 20, sample: bool = False, seed: int = 0) -> dict:
    """The first `n` rows, or a reproducible uniform random sample with `sample=true`."""
    ds = _dataset(session, principal, dataset_id)
    row = _version_row(session, ds, version)
    store = _store(settings)
    rows = store.sample(row.digest, n, seed) if sample else store.preview(row.digest, n)
    return {"version": row.digest, "rows": rows}


@router.get("/{dataset_id}/versions/{version}/shards/{index}", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
def download_shard(dataset_id: str, version: str, index: int, session: SessionDep, principal: PrincipalDep,
                   settings: SettingsDep) -> StreamingResponse:
    """A shard as JSONL (load with `datasets.load_dataset("json", data_files=...)`)."""
    ds = _dataset(session, principal, dataset_id)
    row = _version_row(session, ds, version)
    store = _store(settings)
    v = store.get(row.digest)
    if not 0 <= index < len(v.shards):
        raise NotFound(f"version has {len(v.shards)} shard(s); no shard {index}")
    fh = store.artifacts.open(v.shards[index]["digest"])

    def chunks():  # noqa: ANN202
        with fh:
            yield from iter(lambda: fh.read(1 << 16), b"")

    return StreamingResponse(chunks(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="{row.digest[:12]}-{index:05d}.jsonl"'})


@router.post("/{dataset_id}/versions/{version}/pipelines", status_code=status.HTTP_201_CREATED, response_model=JobPublic)
def run_pipeline_job(dataset_id: str, version: str, body: PipelineRun, session: SessionDep, principal: PrincipalDep,
                     settings: SettingsDep) -> JobPublic:
    """Start a cleaning job over this version; its result is the report, its output a new version."""
    ds = _dataset(session, principal, dataset_id)
    _version_row(session, ds, version)
    job = submit_job(session, settings, principal, project_id=ds.project_id, kind="data.pipeline",
                     spec={"dataset_id": ds.id, "version": version, "pipeline": body.pipeline.model_dump(),
                           "workers": body.workers, "fanout": body.fanout})
    names = {pid: n for n, pid in principal.project_names.items()}
    return JobPublic.of(job, names[ds.project_id])


@steps_router.get("/steps", response_model=list[StepInfo])
def list_steps() -> list[StepInfo]:
    """Every pipeline step with its parameters' JSON schema (what a spec may name)."""
    if not available_steps():
        raise InvalidInput("no pipeline steps are installed")
    return [StepInfo(name=name, scope=cls.scope, description=((cls.__doc__ or "").strip().splitlines() or [""])[0],
                     params_schema=cls.Params.model_json_schema()) for name, cls in available_steps().items()]
