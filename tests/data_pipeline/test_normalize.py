"""normalize_unicode, fix_mojibake and normalize_whitespace on short hand-made texts."""

from __future__ import annotations

import pytest
from pipeline_checks import apply_step, run_step
from pydantic import ValidationError

from llmforge.data_pipeline.registry import get_step
from llmforge.data_pipeline.steps.normalize import FixMojibake, NormalizeUnicode, NormalizeWhitespace


def test_steps_are_registered_by_name():
    assert get_step("normalize_unicode") is NormalizeUnicode
    assert get_step("fix_mojibake") is FixMojibake
    assert get_step("normalize_whitespace") is NormalizeWhitespace


def test_nfkc_folds_ligatures_and_fullwidth_digits():
    assert apply_step(NormalizeUnicode(form="NFKC"), "ﬁnal score １２３") == "final score 123"


def test_nfc_composes_accents_but_keeps_compatibility_forms():
    decomposed = "cafe\u0301 ﬁ １"
    assert apply_step(NormalizeUnicode(), decomposed) == "caf\u00e9 ﬁ １"


def test_unknown_form_and_unknown_param_are_refused():
    with pytest.raises(ValidationError):
        NormalizeUnicode(form="NFD")
    with pytest.raises(ValidationError):
        NormalizeUnicode(from_="NFC")


def test_fix_mojibake_repairs_utf8_read_as_latin1():
    assert apply_step(FixMojibake(), "cafÃ©") == "café"
    assert apply_step(FixMojibake(), "The cafÃ© is â€œniceâ€\x9d.") == "The café is “nice”."


def test_fix_mojibake_leaves_correct_text_alone():
    text = "naïve café, “curly quotes”, ﬁ ligature, ＦＵＬＬ width, 日本語, &amp; entity, tab\there\r\n"
    step = FixMojibake()
    assert apply_step(step, text) == text
    assert step.stats.modified == 0


def test_whitespace_rules():
    text = "  Hello \t  world.  \n\n\n\n\nSecond\x00 para\x07graph.\t \r\nlast\x1b line  \n\n"
    assert apply_step(NormalizeWhitespace(), text) == "Hello world.\n\nSecond paragraph.\nlast line"


def test_one_blank_line_survives_and_tabs_inside_lines_collapse():
    assert apply_step(NormalizeWhitespace(), "a\tb\n\nc") == "a b\n\nc"


def test_control_characters_removed_but_newline_and_tab_kept_when_collapse_is_off():
    step = NormalizeWhitespace(collapse_spaces=False)
    assert apply_step(step, "a\x00\x08b\tc\x7f\x85d\ne") == "ab\tcd\ne"


def test_each_whitespace_rule_can_be_switched_off():
    off = dict(remove_control_chars=False, collapse_spaces=False, strip_trailing=False,
               collapse_blank_lines=False, strip=False)
    text = " a  b \n\n\n\nc\x00 "
    assert apply_step(NormalizeWhitespace(**off), text) == text
    assert apply_step(NormalizeWhitespace(**{**off, "strip": True}), text) == "a  b \n\n\n\nc\x00"


def test_mapper_stats_count_modified_documents_with_examples():
    step = NormalizeWhitespace()
    out = run_step(step, ["already clean", "needs  fixing ", "also clean"])
    assert [d.text for d in out] == ["already clean", "needs fixing", "also clean"]
    s = step.stats
    assert (s.docs_in, s.docs_out, s.modified, dict(s.dropped)) == (3, 3, 1, {})
    assert s.examples == [{"reason": "normalize_whitespace", "id": "1", "text": "needs  fixing ",
                           "after": "needs fixing"}]
