"""``length_filter``: keep documents whose size lies within bounds, in characters, words and lines.

Words are whitespace-separated tokens (``text.split()``); lines are the non-blank
lines. Every bound is optional (None disables it); by default only empty
documents are dropped. Drop reasons name the unit and the side of the bound:
``too_short_chars``, ``too_long_chars``, ``too_short_words``, ``too_long_words``,
``too_short_lines``, ``too_long_lines`` (checked in that order).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmforge.data_pipeline.base import Filter
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step


@register_step
class LengthFilter(Filter):
    name = "length_filter"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        min_chars: int | None = Field(default=1, ge=0)
        """Fewest characters a document may have (1 drops empty documents)."""
        max_chars: int | None = Field(default=None, ge=0)
        """Most characters a document may have, e.g. 100_000 to keep runaway pages out."""
        min_words: int | None = Field(default=None, ge=0)
        """Fewest whitespace-separated words."""
        max_words: int | None = Field(default=None, ge=0)
        """Most whitespace-separated words."""
        min_lines: int | None = Field(default=None, ge=0)
        """Fewest non-blank lines."""
        max_lines: int | None = Field(default=None, ge=0)
        """Most non-blank lines."""

        @model_validator(mode="after")
        def _min_below_max(self) -> "LengthFilter.Params":
            for unit in ("chars", "words", "lines"):
                lo, hi = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
                if lo is not None and hi is not None and lo > hi:
                    raise ValueError(f"min_{unit} ({lo}) is greater than max_{unit} ({hi}); no document could pass")
            return self

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        p, text = self.params, doc.text
        sizes = {"chars": lambda: len(text), "words": lambda: len(text.split()),
                 "lines": lambda: sum(1 for line in text.splitlines() if line.strip())}
        for unit, size in sizes.items():
            lo, hi = getattr(p, f"min_{unit}"), getattr(p, f"max_{unit}")
            if lo is None and hi is None:
                continue
            n = size()
            if lo is not None and n < lo:
                return False, f"too_short_{unit}"
            if hi is not None and n > hi:
                return False, f"too_long_{unit}"
        return True
