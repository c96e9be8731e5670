"""``pii_redact``: replace personal data and credentials with typed placeholders (``[EMAIL]``, ``[SECRET]``).

Detection lives in :mod:`llmforge.data_pipeline.pii` (patterns plus Luhn, mod-97
and entropy checks; see its docstring for what is and is not caught). The step
never drops a document. It counts every replacement per kind in the step's
stats (``counts: {"email": 12, "phone": 3}``) and, for a document where
anything was found, records that document's counts in ``doc.metadata["pii"]``
(so it lands in an output column); documents without PII are left untouched.

    pii_redact  {kinds: [email, phone, ip_address, credit_card, iban, secret], placeholder: "[{KIND}]"}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmforge.data_pipeline.base import Mapper
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.pii import DEFAULT_PLACEHOLDER, KINDS, check_kinds, redact, replacements
from llmforge.data_pipeline.registry import register_step
from llmforge.errors import InvalidInput


@register_step
class PiiRedact(Mapper):
    name = "pii_redact"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kinds: list[str] = Field(default_factory=lambda: list(KINDS))
        """What to redact, any of: email, phone, ip_address, credit_card, iban, secret (default all)."""
        placeholder: str = DEFAULT_PLACEHOLDER
        """Replacement text; ``{KIND}`` becomes EMAIL, PHONE..., ``{kind}`` email, phone..."""

        @field_validator("kinds")
        @classmethod
        def _known_kinds(cls, kinds: list[str]) -> list[str]:
            if not kinds:
                raise ValueError(f"kinds is empty, so nothing would be redacted; valid kinds: {', '.join(KINDS)}")
            try:
                return list(check_kinds(kinds))
            except InvalidInput as exc:
                raise ValueError(exc.message) from None

        @field_validator("placeholder")
        @classmethod
        def _formattable(cls, placeholder: str) -> str:
            try:
                replacements(placeholder)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
            return placeholder

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._kinds = check_kinds(self.params.kinds)  # KINDS itself when all: redact's fast path

    def apply(self, text: str) -> str:
        return redact(text, self._kinds, self.params.placeholder)[0]

    def map(self, doc: Document) -> Document:
        text, counts = redact(doc.text, self._kinds, self.params.placeholder)
        if counts:
            doc.text = text
            for kind, n in counts.items():
                self.stats.count(kind, n)
            doc.metadata["pii"] = dict(counts)
        return doc
