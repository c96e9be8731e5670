"""length_filter: each bound gives its own drop reason."""

from __future__ import annotations

import pytest
from pipeline_checks import check_filter, run_step
from pydantic import ValidationError

from llmforge.data_pipeline.registry import get_step
from llmforge.data_pipeline.steps.length import LengthFilter

TEXT = "one two three\nfour five\n\nsix"  # 28 chars, 6 words, 3 non-blank lines


def test_registered():
    assert get_step("length_filter") is LengthFilter


def test_default_drops_only_empty_documents():
    step = LengthFilter()
    assert check_filter(step, "") == (False, "too_short_chars")
    assert check_filter(step, "x") == (True, None)


@pytest.mark.parametrize(("params", "expected"), [
    ({"min_chars": 28}, (True, None)),
    ({"min_chars": 29}, (False, "too_short_chars")),
    ({"max_chars": 27}, (False, "too_long_chars")),
    ({"min_words": 6, "max_words": 6}, (True, None)),
    ({"min_words": 7}, (False, "too_short_words")),
    ({"max_words": 5}, (False, "too_long_words")),
    ({"min_lines": 3, "max_lines": 3}, (True, None)),
    ({"min_lines": 4}, (False, "too_short_lines")),
    ({"max_lines": 2}, (False, "too_long_lines")),
])
def test_bounds(params, expected):
    assert check_filter(LengthFilter(**params), TEXT) == expected


def test_chars_are_checked_before_words():
    assert check_filter(LengthFilter(min_chars=100, min_words=100), TEXT) == (False, "too_short_chars")


def test_inconsistent_or_negative_bounds_are_refused():
    with pytest.raises(ValidationError, match="min_words"):
        LengthFilter(min_words=10, max_words=5)
    with pytest.raises(ValidationError):
        LengthFilter(min_chars=-1)


def test_stats():
    step = LengthFilter(min_words=2, max_words=3)
    out = run_step(step, ["one", "one two", "one two three four", "a b c", ""])
    assert [d.id for d in out] == ["1", "3"]
    s = step.stats
    assert (s.docs_in, s.docs_out) == (5, 2)
    assert s.dropped == {"too_short_words": 1, "too_long_words": 1, "too_short_chars": 1}
    assert [(e["reason"], e["id"]) for e in s.examples] == [
        ("too_short_words", "0"), ("too_long_words", "2"), ("too_short_chars", "4")]
