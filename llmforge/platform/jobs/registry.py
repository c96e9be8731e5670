"""Job kinds: each service registers what it can run, with a pydantic model for its spec.

A service's ``tasks.py`` does::

    class CleanSpec(BaseModel):
        dataset_version: str

    @job_kind("data.clean", spec=CleanSpec, queue="cpu")
    def clean(ctx: JobContext, spec: CleanSpec) -> dict:
        ...

The API validates a submitted spec against the model before a row exists, so
a bad spec is refused at submit time and never reaches a worker.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from llmforge.errors import InvalidInput, NotFound

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class JobKind:
    name: str
    spec: type[BaseModel]
    handler: Callable[..., dict[str, Any] | None]
    queue: str = "cpu"
    description: str = ""
    internal: bool = False
    """Submitted only by other jobs (e.g. a pipeline's shard tasks), never through the API."""

    def validate(self, raw: dict[str, Any]) -> BaseModel:
        try:
            return self.spec.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "spec"
            raise InvalidInput(
                f"invalid spec for job kind {self.name!r}: {where}: {first['msg']}", param=f"spec.{where}"
            ) from None


_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, spec: type[BaseModel], queue: str = "cpu", internal: bool = False) -> Callable:
    """Register ``handler(ctx, spec) -> result dict | None`` as job kind ``name``."""
    if not _NAME.match(name):
        raise ValueError(f"job kind name {name!r} must be lower-case letters, digits, '.', '_' or '-'")

    def register(handler: Callable) -> Callable:
        existing = _KINDS.get(name)
        if existing is not None and existing.handler.__qualname__ != handler.__qualname__:
            raise ValueError(f"job kind {name!r} is already registered by {existing.handler.__module__}")
        doc = (handler.__doc__ or "").strip().splitlines()
        _KINDS[name] = JobKind(name, spec, handler, queue, doc[0] if doc else "", internal)
        return handler

    return register


def get_kind(name: str) -> JobKind:
    kind = _KINDS.get(name)
    if kind is None:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise NotFound(f"unknown job kind {name!r}; known kinds: {known}")
    return kind


def kinds(include_internal: bool = False) -> list[JobKind]:
    return [_KINDS[k] for k in sorted(_KINDS) if include_internal or not _KINDS[k].internal]
