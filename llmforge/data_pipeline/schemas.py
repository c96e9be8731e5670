"""Wire models of the datasets and pipelines API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmforge.data_pipeline.formats import Format, TextSplit
from llmforge.data_pipeline.spec import PipelineSpec


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = Field(default="", max_length=2000)
    project: str | None = None


class DatasetPublic(BaseModel):
    id: str
    project: str
    name: str
    description: str
    created_at: datetime
    latest_version: str | None
    versions: int


class ShardPublic(BaseModel):
    index: int
    digest: str
    rows: int


class VersionPublic(BaseModel):
    id: str = Field(description="Content digest of the version's manifest (64 hex).")
    dataset_id: str
    parent: str | None
    job_id: str | None
    rows: int
    text_field: str
    schema_: dict[str, list[str]] = Field(alias="schema", serialization_alias="schema")
    stats: dict[str, Any]
    shards: list[ShardPublic]
    source: dict[str, Any]
    created_at: datetime

    model_config = ConfigDict(populate_by_name=True)


class ImportFromPath(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=4096, description="A file under one of LLMFORGE_IMPORT_ROOTS.")
    format: Format | None = None
    text_field: str = "text"
    text_split: TextSplit | None = None
    columns: list[str] | None = Field(default=None, description="Column names of a CSV without a header row.")
    shard_rows: int = Field(default=10_000, ge=1, le=10_000_000, description="Rows per shard (the unit of parallelism).")


class PipelineRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline: PipelineSpec
    workers: int = Field(default=1, ge=1, le=64, description="Shard-parallel processes on the worker.")
    fanout: bool | None = Field(default=None, description="Shards as child jobs over every worker; default: in distributed mode.")


class StepInfo(BaseModel):
    name: str
    scope: str
    description: str
    params_schema: dict[str, Any]
