"""Step registry: ``@register_step`` makes a step class available to declarative specs by name."""

from __future__ import annotations

from llmforge.data_pipeline.base import PipelineStep
from llmforge.errors import InvalidInput

_STEPS: dict[str, type[PipelineStep]] = {}


def register_step(cls: type[PipelineStep]) -> type[PipelineStep]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    existing = _STEPS.get(cls.name)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"step name {cls.name!r} is already taken by {existing.__module__}.{existing.__qualname__}")
    _STEPS[cls.name] = cls
    return cls


def _load_builtin() -> None:
    import llmforge.data_pipeline.steps  # noqa: F401  (registers the built-in steps)


def get_step(name: str) -> type[PipelineStep]:
    _load_builtin()
    cls = _STEPS.get(name)
    if cls is None:
        raise InvalidInput(f"unknown pipeline step {name!r}; available steps: {', '.join(sorted(_STEPS))}", param="steps")
    return cls


def available_steps() -> dict[str, type[PipelineStep]]:
    _load_builtin()
    return dict(sorted(_STEPS.items()))
