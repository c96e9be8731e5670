"""Typed references between lifecycle objects, the vocabulary of lineage (invariant 6).

A reference is ``"<kind>:<id>"`` — e.g. ``dataset_version:3f2a…``,
``job:9c1d…``, ``model_version:tiny-llama/4``. Jobs record their inputs and
outputs as references and the platform stores them as edges
(input → job → output), so any answer can be walked back to the raw upload.
This module only knows the string form; storage lives in the platform.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True)
class Ref:
    kind: str
    id: str

    def __post_init__(self) -> None:
        if not _KIND.match(self.kind):
            raise ValueError(f"lineage kind {self.kind!r} must be lower_snake_case, e.g. 'dataset_version'")
        if not self.id or len(self.id) > 200:
            raise ValueError("lineage id must be 1-200 characters")

    @classmethod
    def parse(cls, text: str) -> "Ref":
        kind, sep, ident = text.partition(":")
        if not sep:
            raise ValueError(f"lineage reference {text!r} must look like 'kind:id', e.g. 'dataset_version:abc123'")
        return cls(kind, ident)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"
