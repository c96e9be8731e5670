"""``language_filter``: identify each document's language with py3langid and keep the wanted ones.

The model (a naive Bayes classifier over byte n-grams for ~140 labels, ~4 MB) ships
inside the py3langid wheel: nothing is downloaded. It is loaded on first use, once per
process (each worker of a parallel run loads its own copy, ~0.5 s).

Scores are normalised probabilities in [0, 1]. py3langid >= 0.4 scales the log scores by
1/sqrt(bytes) before the softmax, so very short texts (a few words) get low scores:
that is "not sure", not "not this language".

Every document gets ``metadata["language"]`` (an ISO 639-1 code, or 639-3 where there is
none; ``zxx`` is "no linguistic content", ``und`` blank text) and
``metadata["language_score"]``. Drop reasons: ``language_low_score`` when the best
score is below ``min_score``, otherwise ``language_<code>`` for a confident language
that is not in ``languages`` (e.g. ``language_fr``).
"""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from llmforge.data_pipeline.base import Filter
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step


@functools.cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """The most likely language of ``text`` and its probability, e.g. ``("en", 0.99)``.

    Args:
        text: any text; newlines are fine. Blank text gives ``("und", 0.0)`` (undetermined).
    """
    if not text.strip():
        return "und", 0.0
    code, score = _identifier().classify(text)
    return code, float(score)


@register_step
class LanguageFilter(Filter):
    name = "language_filter"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        languages: list[Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]] = Field(default_factory=lambda: ["en"])
        """ISO 639-1 codes to keep, e.g. ["en", "de"]; an empty list keeps every language (annotate only)."""
        min_score: float = Field(default=0.65, ge=0, le=1)
        """Lowest probability of the detected language for a document to be kept."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        code, score = detect_language(doc.text)
        doc.metadata["language"] = code
        doc.metadata["language_score"] = round(score, 4)
        if score < self.params.min_score:
            return False, "language_low_score"
        if self.params.languages and code not in self.params.languages:
            return False, f"language_{code}"
        return True
