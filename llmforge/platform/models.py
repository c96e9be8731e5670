"""SQLAlchemy table models for the control plane's metadata.

Wire shapes live in ``schemas.py`` files next to each router; these are storage
only. Timestamps are UNIX seconds (float) so lease arithmetic is the same on
SQLite and PostgreSQL and never depends on a server time zone. Services add
their own tables (datasets, deployments, ...) on the same ``Base`` in their edge
modules, with migrations in ``llmforge/platform/migrations``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ApiKey(Base):
    """An API key. Only its SHA-256 is stored; the secret is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Membership(Base):
    """A key's role in one project. A key sees only projects it is a member of."""

    __tablename__ = "memberships"

    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))


class Job(Base):
    """One long operation. The row, not the broker, owns delivery (see ``platform/jobs/service.py``)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_project_created", "project_id", "created_at"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    queue: Mapped[str] = mapped_column(String(32), default="cpu")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, default=now)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    attempt_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    worker_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    published_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    publish_count: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    inputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list)


class JobLog(Base):
    __tablename__ = "job_logs"
    __table_args__ = (Index("ix_job_logs_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    ts: Mapped[float] = mapped_column(Float, default=now)
    line: Mapped[str] = mapped_column(Text)


class JobMetric(Base):
    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_key_step", "job_id", "key", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    ts: Mapped[float] = mapped_column(Float, default=now)


class LineageEdge(Base):
    """input → job → output, as typed references (``llmforge.lineage.Ref`` strings)."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        UniqueConstraint("src", "dst", "relation", name="uq_lineage_edge"),
        Index("ix_lineage_dst", "dst"),
        Index("ix_lineage_src", "src"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    src: Mapped[str] = mapped_column(String(240))
    dst: Mapped[str] = mapped_column(String(240))
    relation: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Dataset(Base):
    """A named dataset in a project; its content lives in immutable versions."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_dataset_project_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class DatasetVersionRow(Base):
    """A version of a dataset: a reference to a complete manifest in the artifact store (by digest).

    The row is inserted only after the manifest exists, so a listed version is always whole.
    """

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "digest", name="uq_dataset_version_digest"),
        Index("ix_dataset_versions_digest", "digest"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    parent_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    rows: Mapped[int] = mapped_column(Integer)
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class LabelProject(Base):
    """A labelling project: rows of one dataset version, one task (``data_pipeline/labelling.py``), annotators."""

    __tablename__ = "label_projects"
    __table_args__ = (Index("ix_label_projects_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    task_type: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class LabelItem(Base):
    """One row to label: a snapshot of the fields the task needs (the version is immutable, the snapshot is cheap)."""

    __tablename__ = "label_items"
    __table_args__ = (UniqueConstraint("label_project_id", "row_index", name="uq_label_item_row"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    label_project_id: Mapped[str] = mapped_column(ForeignKey("label_projects.id", ondelete="CASCADE"))
    row_index: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prelabel: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    prelabel_source: Mapped[str | None] = mapped_column(String(200), nullable=True)


class LabelAssignment(Base):
    """Item ``item_id`` is to be labelled by the key ``annotator``."""

    __tablename__ = "label_assignments"
    __table_args__ = (Index("ix_label_assignments_project_annotator", "label_project_id", "annotator"),)

    label_project_id: Mapped[str] = mapped_column(ForeignKey("label_projects.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(ForeignKey("label_items.id", ondelete="CASCADE"), primary_key=True)
    annotator: Mapped[str] = mapped_column(String(32), primary_key=True)


class LabelAnnotation(Base):
    """An annotator's answer for an item (canonical value, or skipped); annotating again updates it."""

    __tablename__ = "label_annotations"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator", name="uq_label_annotation_item_annotator"),
        Index("ix_label_annotations_project_annotator", "label_project_id", "annotator"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    item_id: Mapped[str] = mapped_column(ForeignKey("label_items.id", ondelete="CASCADE"))
    label_project_id: Mapped[str] = mapped_column(ForeignKey("label_projects.id", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(String(32))
    value: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)
