"""Declarative cleaning pipelines: an ordered list of ``{step, params}`` in JSON or YAML.

    text_field: text
    steps:
      - step: normalize_unicode
        params: {form: NFKC}
      - step: gopher_quality
      - step: pii_redact
      - step: minhash_dedup
        params: {bands: 14, rows: 8}

``build_steps`` validates every step name and parameter before anything runs,
and its errors name the step's position and the field (``steps[3].params.bands``).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmforge.data_pipeline.base import PipelineStep
from llmforge.data_pipeline.registry import get_step
from llmforge.errors import InvalidInput


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[StepSpec] = Field(min_length=1, max_length=100)
    text_field: str = Field(default="text", min_length=1, max_length=100)
    """The row field steps read and rewrite; every other field is carried through."""

    @classmethod
    def parse(cls, source: str | dict[str, Any]) -> "PipelineSpec":
        """From a dict, a JSON string or a YAML string, with a readable error."""
        if isinstance(source, str):
            try:
                data = json.loads(source)
            except json.JSONDecodeError:
                try:
                    data = yaml.safe_load(source)
                except yaml.YAMLError as exc:
                    raise InvalidInput(f"pipeline spec is neither valid JSON nor YAML: {exc}") from None
        else:
            data = source
        if not isinstance(data, dict):
            raise InvalidInput("a pipeline spec is a mapping with a 'steps' list")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"pipeline spec: {where}: {first['msg']}", param=where) from None


def build_steps(spec: PipelineSpec) -> list[PipelineStep]:
    steps = []
    for i, s in enumerate(spec.steps):
        cls = get_step(s.step)
        try:
            steps.append(cls(**s.params))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"steps[{i}] ({s.step}): params.{field}: {first['msg']}",
                               param=f"steps[{i}].params.{field}") from None
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"steps[{i}] ({s.step}): {exc}", param=f"steps[{i}].params") from None
    return steps
