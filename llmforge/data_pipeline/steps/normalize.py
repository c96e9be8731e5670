"""Text normalisation mappers: Unicode normal form, mojibake repair and whitespace.

Each step rewrites ``doc.text`` and never drops a document; the base ``Mapper``
counts the documents it changed and keeps a few before/after examples.

    normalize_unicode    {form: NFC | NFKC}
    fix_mojibake         (no params) repairs text decoded with the wrong codec, nothing else
    normalize_whitespace {remove_control_chars, collapse_spaces, strip_trailing, collapse_blank_lines, strip}
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import ftfy
from pydantic import BaseModel, ConfigDict

from llmforge.data_pipeline.base import Mapper
from llmforge.data_pipeline.registry import register_step


@register_step
class NormalizeUnicode(Mapper):
    """Put text in one Unicode normal form, so equal-looking strings compare equal (dedup, n-grams)."""

    name = "normalize_unicode"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        form: Literal["NFC", "NFKC"] = "NFC"
        """NFC only composes accents; NFKC also folds compatibility forms ('ﬁ' -> 'fi', '１２' -> '12')."""

    def apply(self, text: str) -> str:
        return unicodedata.normalize(self.params.form, text)


# Only the fixes that undo a wrong decoding; everything that changes correct text
# (HTML entities, ligatures, full-width forms, curly quotes, line breaks, control
# characters, normal form) is off: other steps own those choices.
_ENCODING_ONLY = ftfy.TextFixerConfig(
    unescape_html=False, remove_terminal_escapes=False, fix_latin_ligatures=False, fix_character_width=False,
    uncurl_quotes=False, fix_line_breaks=False, remove_control_chars=False, normalization=None, explain=False,
)


@register_step
class FixMojibake(Mapper):
    """Repair mojibake with ftfy ('cafÃ©' -> 'café', 'â€œ' -> '“'); correctly decoded text is left as it is."""

    name = "fix_mojibake"

    def apply(self, text: str) -> str:
        return ftfy.fix_text(text, _ENCODING_ONLY)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # Unicode category Cc, less \t (\x09) and \n (\x0a)
_SPACES = re.compile(r"[ \t]+")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n){2,}")


@register_step
class NormalizeWhitespace(Mapper):
    """Tidy whitespace and drop invisible control characters; every rule can be switched off."""

    name = "normalize_whitespace"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        remove_control_chars: bool = True
        """Remove control characters (Unicode Cc) except newline and tab; '\\r\\n' and '\\r' become '\\n' first."""
        collapse_spaces: bool = True
        """Replace each run of spaces and tabs by one space (other Unicode spaces are kept)."""
        strip_trailing: bool = True
        """Remove spaces and tabs at the end of every line."""
        collapse_blank_lines: bool = True
        """Replace two or more consecutive blank lines by a single blank line (paragraph breaks survive)."""
        strip: bool = True
        """Strip whitespace at the start and end of the text."""

    def apply(self, text: str) -> str:
        p = self.params
        if p.remove_control_chars:
            text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
        if p.collapse_spaces:
            text = _SPACES.sub(" ", text)
        if p.strip_trailing:
            text = _TRAILING.sub("", text)
        if p.collapse_blank_lines:
            text = _BLANK_LINES.sub("\n\n", text)
        if p.strip:
            text = text.strip()
        return text
