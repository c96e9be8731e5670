"""``gopher_repetition``: drop documents that repeat themselves, after the repetition rules of
MassiveText (Rae et al. 2021, appendix A.1.1 and table A1; also datatrove's GopherRepetitionFilter).

Units:

- *paragraphs* are the pieces between blank lines, *lines* the non-blank lines,
  both stripped; a duplicate is any occurrence after the first of an equal piece.
  Fractions are counted in pieces (``dup_*_frac``) or in characters over the
  characters of all pieces (``dup_*_char_frac``).
- *words* are the matches of the regex ``\\w+`` (letters, digits and underscore; case
  is kept), so punctuation and spacing never split or merge an n-gram. Character
  fractions of n-grams are over the characters of all words, so whitespace and
  punctuation neither dilute nor inflate them.
- ``top_n_grams``: the characters covered by the most frequent n-gram, if it occurs
  more than once (overlapping occurrences are counted once per word).
- ``dup_n_grams``: the characters of the words covered by a repeated occurrence of
  any n-gram (every occurrence after its first), each word counted once however many
  n-grams cover it: the paper's "without counting overlapping characters twice".

Rules, in the order checked; the first that fails is the drop reason:

    dup_para_frac        duplicate paragraphs / paragraphs            > 0.3
    dup_para_char_frac   characters in duplicate paragraphs          > 0.2
    dup_line_frac        duplicate lines / lines                     > 0.3
    dup_line_char_frac   characters in duplicate lines               > 0.2
    top_{n}_gram         top n-gram characters, n = 2, 3, 4          > 0.20, 0.18, 0.16
    dup_{n}_gram         duplicated n-gram characters, n = 5 .. 10   > 0.15, 0.14, 0.13, 0.12, 0.11, 0.10

Every threshold is a parameter; None (or leaving n out of the mapping) disables a rule.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from llmforge.data_pipeline.base import Filter
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step

_WORD = re.compile(r"\w+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")

Fraction = Annotated[float, Field(ge=0, le=1)]
NgramSize = Annotated[int, Field(ge=1, le=50)]


def duplicates(pieces: list[str]) -> tuple[int, int]:
    """(number, characters) of the pieces that equal an earlier piece."""
    seen: set[str] = set()
    count = chars = 0
    for piece in pieces:
        if piece in seen:
            count += 1
            chars += len(piece)
        else:
            seen.add(piece)
    return count, chars


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters of the words covered by the most frequent n-gram, 0 if no n-gram repeats."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    top, count = Counter(grams).most_common(1)[0]
    if count < 2:
        return 0
    covered = set()
    for i, gram in enumerate(grams):
        if gram == top:
            covered.update(range(i, i + n))
    return sum(len(words[i]) for i in covered)


def duplicate_ngram_chars(words: list[str], n: int) -> int:
    """Characters of the words covered by an occurrence of an n-gram that already occurred earlier."""
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        if gram in seen:
            covered[i:i + n] = [True] * n
        else:
            seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered) if c)


@register_step
class GopherRepetition(Filter):
    name = "gopher_repetition"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        dup_para_frac: Fraction | None = 0.3
        """Largest fraction of paragraphs that may duplicate an earlier paragraph."""
        dup_para_char_frac: Fraction | None = 0.2
        """Largest fraction of paragraph characters that may sit in duplicate paragraphs."""
        dup_line_frac: Fraction | None = 0.3
        """Largest fraction of lines that may duplicate an earlier line."""
        dup_line_char_frac: Fraction | None = 0.2
        """Largest fraction of line characters that may sit in duplicate lines."""
        top_n_grams: dict[NgramSize, Fraction] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
        """n -> largest fraction of word characters the most frequent n-gram may cover."""
        dup_n_grams: dict[NgramSize, Fraction] = Field(
            default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})
        """n -> largest fraction of word characters that repeated n-grams may cover."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        p, text = self.params, doc.text
        paragraphs = [s.strip() for s in _PARAGRAPH_BREAK.split(text) if s.strip()]
        lines = [s.strip() for s in text.splitlines() if s.strip()]
        for unit, pieces, frac, char_frac in (("para", paragraphs, p.dup_para_frac, p.dup_para_char_frac),
                                              ("line", lines, p.dup_line_frac, p.dup_line_char_frac)):
            if not pieces:
                continue
            count, chars = duplicates(pieces)
            if frac is not None and count / len(pieces) > frac:
                return False, f"dup_{unit}_frac"
            if char_frac is not None and chars / sum(map(len, pieces)) > char_frac:
                return False, f"dup_{unit}_char_frac"

        words = _WORD.findall(text)
        total = sum(map(len, words))
        if not total:
            return True
        for n, limit in sorted(p.top_n_grams.items()):
            if top_ngram_chars(words, n) / total > limit:
                return False, f"top_{n}_gram"
        for n, limit in sorted(p.dup_n_grams.items()):
            if duplicate_ngram_chars(words, n) / total > limit:
                return False, f"dup_{n}_gram"
        return True
