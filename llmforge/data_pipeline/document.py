"""The unit every pipeline step sees: a piece of text, a stable id and free-form metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Document:
    text: str
    id: str
    """Stable within a dataset version (row index by default), so reports and clusters can point at rows."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Every other column of the row, carried through untouched."""

    def to_row(self, text_field: str = "text") -> dict[str, Any]:
        return {**self.metadata, text_field: self.text}
