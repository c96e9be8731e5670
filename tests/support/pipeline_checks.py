"""Helpers for data-pipeline step tests: run one text through a step and read the verdict.

``tests/support`` is on ``sys.path`` (see ``tests/conftest.py``), so tests write
``from pipeline_checks import check_filter``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llmforge.data_pipeline.base import PipelineStep
from llmforge.data_pipeline.document import Document

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
"""Real text for tests (``../shared/data`` from the repo root); absent on a user's machine."""


def check_filter(step: PipelineStep, text: str, doc_id: str = "0") -> tuple[bool, str | None]:
    """(kept, reason): run ``text`` through ``step``; reason is the drop reason, None when kept.

    The step's stats keep accumulating, so one step can check several texts in a row.
    """
    before = Counter(step.stats.dropped)
    out = list(step.run([Document(text=text, id=doc_id)]))
    if out:
        return True, None
    new = step.stats.dropped - before
    assert sum(new.values()) == 1, f"one dropped document should add one reason, got {dict(new)}"
    return False, next(iter(new))


def run_step(step: PipelineStep, texts: list[str]) -> list[Document]:
    """The documents ``step`` yields for ``texts`` (ids are the positions, as strings)."""
    return list(step.run([Document(text=t, id=str(i)) for i, t in enumerate(texts)]))


def apply_step(step: PipelineStep, text: str) -> str | None:
    """The text after ``step``, or None if the step dropped the document."""
    out = run_step(step, [text])
    return out[0].text if out else None
