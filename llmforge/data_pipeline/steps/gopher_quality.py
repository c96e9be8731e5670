"""``gopher_quality``: the quality heuristics of MassiveText (Rae et al. 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", appendix A.1.1), as datatrove's GopherQualityFilter.

Tokens are the whitespace-separated pieces of the text. A token's *word* is the token
without the punctuation and symbols (Unicode categories P* and S*) around it
("world," -> "world"); tokens that are nothing but punctuation ("-", "|", "...")
have no word and do not count as words. Lines are the non-blank lines.

Rules, checked in this order; the first that fails is the drop reason:

    gopher_short_doc              fewer than min_doc_words words (a text with no word at all is always short)
    gopher_long_doc               more than max_doc_words words
    gopher_below_avg_threshold    mean word length (characters) below min_avg_word_length
    gopher_above_avg_threshold    mean word length above max_avg_word_length
    gopher_too_many_hashes        '#' characters per word above max_symbol_word_ratio
    gopher_too_many_ellipsis      '...' and '…' per word above max_symbol_word_ratio
    gopher_too_many_bullets       fraction of lines starting with a bullet above max_bullet_lines_ratio
    gopher_too_many_end_ellipsis  fraction of lines ending with an ellipsis above max_ellipsis_lines_ratio
    gopher_below_alpha_threshold  fraction of tokens with an alphabetic character below min_alpha_words_ratio
    gopher_too_few_stop_words     fewer than min_stop_words occurrences of the stop words (case-insensitive)

Every threshold is a parameter and None switches its rule off.
"""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, ConfigDict, Field

from llmforge.data_pipeline.base import Filter
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step

GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS = ("•", "●", "◦", "‣", "▪", "-", "*")
ELLIPSES = ("...", "…")


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def word_of(token: str) -> str:
    """The token without leading and trailing punctuation or symbols; '' for a pure-punctuation token."""
    i, j = 0, len(token)
    while i < j and _is_punct(token[i]):
        i += 1
    while j > i and _is_punct(token[j - 1]):
        j -= 1
    return token[i:j]


@register_step
class GopherQuality(Filter):
    name = "gopher_quality"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        min_doc_words: int | None = Field(default=50, ge=0)
        """Fewest words a document may have."""
        max_doc_words: int | None = Field(default=100_000, ge=0)
        """Most words a document may have."""
        min_avg_word_length: float | None = Field(default=3, ge=0)
        """Lowest mean word length in characters (lists of numbers, 'a b c' debris fall below)."""
        max_avg_word_length: float | None = Field(default=10, ge=0)
        """Highest mean word length (URLs, base64, concatenated tokens rise above)."""
        max_symbol_word_ratio: float | None = Field(default=0.1, ge=0)
        """Most '#' per word, and separately most ellipses ('...' or '…') per word."""
        max_bullet_lines_ratio: float | None = Field(default=0.9, ge=0, le=1)
        """Largest fraction of lines that may start with a bullet (•, ●, ◦, ‣, ▪, -, *)."""
        max_ellipsis_lines_ratio: float | None = Field(default=0.3, ge=0, le=1)
        """Largest fraction of lines that may end with an ellipsis (truncated snippets)."""
        min_alpha_words_ratio: float | None = Field(default=0.8, ge=0, le=1)
        """Smallest fraction of tokens that must contain an alphabetic character."""
        min_stop_words: int | None = Field(default=2, ge=0)
        """Fewest occurrences of stop words in the document (real prose uses them; lists and spam don't)."""
        stop_words: list[str] = Field(default_factory=lambda: list(GOPHER_STOP_WORDS), min_length=1)
        """The stop words, lower case; the default is the Gopher paper's English list."""

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._stop_words = frozenset(w.lower() for w in self.params.stop_words)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        p, text = self.params, doc.text
        tokens = text.split()
        words = [w for w in map(word_of, tokens) if w]
        n_words = len(words)
        if n_words == 0 or (p.min_doc_words is not None and n_words < p.min_doc_words):
            return False, "gopher_short_doc"
        if p.max_doc_words is not None and n_words > p.max_doc_words:
            return False, "gopher_long_doc"

        mean_length = sum(map(len, words)) / n_words
        if p.min_avg_word_length is not None and mean_length < p.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if p.max_avg_word_length is not None and mean_length > p.max_avg_word_length:
            return False, "gopher_above_avg_threshold"

        if p.max_symbol_word_ratio is not None:
            if text.count("#") / n_words > p.max_symbol_word_ratio:
                return False, "gopher_too_many_hashes"
            if sum(text.count(e) for e in ELLIPSES) / n_words > p.max_symbol_word_ratio:
                return False, "gopher_too_many_ellipsis"

        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if p.max_bullet_lines_ratio is not None:
            if sum(line.startswith(BULLETS) for line in lines) / len(lines) > p.max_bullet_lines_ratio:
                return False, "gopher_too_many_bullets"
        if p.max_ellipsis_lines_ratio is not None:
            if sum(line.endswith(ELLIPSES) for line in lines) / len(lines) > p.max_ellipsis_lines_ratio:
                return False, "gopher_too_many_end_ellipsis"

        if p.min_alpha_words_ratio is not None:
            alpha = sum(any(c.isalpha() for c in t) for t in tokens)
            if alpha / len(tokens) < p.min_alpha_words_ratio:
                return False, "gopher_below_alpha_threshold"

        if p.min_stop_words is not None:
            if sum(w.lower() in self._stop_words for w in words) < p.min_stop_words:
                return False, "gopher_too_few_stop_words"
        return True
