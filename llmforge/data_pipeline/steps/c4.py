"""``c4_lines``: the line rules of C4 (Raffel et al. 2020, "Exploring the Limits of Transfer Learning",
section 2.2), as a mapper that removes bad lines and drops documents with too little left.

Whole-document rules, on the original text (the first that fires is the drop reason):

    c4_lorem_ipsum        the text contains "lorem ipsum" (any case): placeholder pages
    c4_curly_bracket      the text contains '{' : code

Line rules: each line is stripped; blank lines and lines that break a rule are removed
and counted in ``stats.counts`` under the name shown (one count per removed line,
for the first rule it breaks); kept lines are joined with '\\n':

    line_no_terminal_punct  does not end in . ! ? or a closing quote, or ends in an ellipsis
    line_too_few_words      fewer than min_words_per_line whitespace-separated words
    line_too_long_word      has a word longer than max_word_length characters
    line_javascript         mentions "javascript" ("please enable JavaScript")
    line_policy             mentions a boilerplate phrase: terms of use, privacy policy, cookies...

Then, on what is left:

    c4_no_lines_left      every line was removed
    c4_too_few_sentences  fewer than min_sentences sentences; a sentence ends in . ! or ?
                          (optionally followed by closing quotes or brackets) before a space or the end
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from llmforge.data_pipeline.base import Mapper
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step

TERMINAL_PUNCT = (".", "!", "?", '"', "'", "”", "’", "»")
ELLIPSES = ("...", "…")
POLICY_PHRASES = ("terms of use", "terms of service", "privacy policy", "cookie policy", "uses cookies",
                  "use of cookies", "use cookies")
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’»)\]]*(?=\s|$)")


@register_step
class C4Lines(Mapper):
    name = "c4_lines"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        drop_lorem_ipsum: bool = True
        """Drop the document if it contains "lorem ipsum"."""
        drop_curly_bracket: bool = True
        """Drop the document if it contains '{' (C4's guard against code; turn off for code corpora)."""
        require_terminal_punct: bool = True
        """Remove lines that do not end in terminal punctuation (menus, titles, buttons)."""
        min_words_per_line: int | None = Field(default=3, ge=0)
        """Remove lines with fewer words than this."""
        max_word_length: int | None = Field(default=1000, ge=1)
        """Remove lines with a word longer than this (minified data, hashes)."""
        remove_javascript_lines: bool = True
        """Remove lines that mention javascript."""
        remove_policy_lines: bool = True
        """Remove lines with terms-of-use, privacy or cookie boilerplate."""
        min_sentences: int = Field(default=3, ge=0)
        """Drop the document if fewer sentences than this remain (C4 itself used 5)."""

    def line_rule(self, line: str) -> str | None:
        """The first rule this stripped, non-blank line breaks, or None to keep it."""
        p, lower = self.params, line.lower()
        if p.require_terminal_punct and (not line.endswith(TERMINAL_PUNCT) or line.endswith(ELLIPSES)):
            return "line_no_terminal_punct"
        words = line.split()
        if p.min_words_per_line is not None and len(words) < p.min_words_per_line:
            return "line_too_few_words"
        if p.max_word_length is not None and any(len(w) > p.max_word_length for w in words):
            return "line_too_long_word"
        if p.remove_javascript_lines and "javascript" in lower:
            return "line_javascript"
        if p.remove_policy_lines and any(phrase in lower for phrase in POLICY_PHRASES):
            return "line_policy"
        return None

    def clean(self, text: str) -> tuple[str, str | None]:
        """(the kept lines, the reason to drop the document or None)."""
        p, lower = self.params, text.lower()
        if p.drop_lorem_ipsum and "lorem ipsum" in lower:
            return text, "c4_lorem_ipsum"
        if p.drop_curly_bracket and "{" in text:
            return text, "c4_curly_bracket"
        kept = []
        for line in (s.strip() for s in text.splitlines()):
            rule = self.line_rule(line) if line else None
            if rule is not None:
                self.stats.count(rule)
            elif line:
                kept.append(line)
        cleaned = "\n".join(kept)
        if not kept:
            return cleaned, "c4_no_lines_left"
        if len(_SENTENCE_END.findall(cleaned)) < p.min_sentences:
            return cleaned, "c4_too_few_sentences"
        return cleaned, None

    def apply(self, text: str) -> str:
        """The kept lines only, for use outside a pipeline (the document-level drop is not applied)."""
        return self.clean(text)[0]

    def run(self, docs: Iterable[Document], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        # Mapper.run cannot drop and Filter.run cannot rewrite, so this follows both:
        # dropped documents count under stats.dropped[reason], kept changed ones under stats.modified.
        stats = self.stats
        for doc in docs:
            stats.docs_in += 1
            t0 = time.perf_counter()
            cleaned, reason = self.clean(doc.text)
            stats.seconds += time.perf_counter() - t0
            if reason is not None:
                stats.dropped[reason] += 1
                stats.example(reason, doc)
                continue
            if cleaned != doc.text:
                stats.modified += 1
                stats.example(self.name, doc, after=cleaned)
                doc.text = cleaned
            stats.docs_out += 1
            yield doc
