"""c4_lines: bad lines are removed and counted; documents with too little left are dropped with a reason."""

from __future__ import annotations

from pipeline_checks import apply_step, check_filter, run_step

from llmforge.data_pipeline.registry import get_step
from llmforge.data_pipeline.steps.c4 import C4Lines

GOOD = [
    "The river rose slowly during the long night.",
    "Farmers moved their cattle to the higher fields.",
    "Neighbours carried sandbags to the old mill door.",
]
PAGE = "\n".join([
    "Home | About | Contact",
    "Please enable JavaScript to view this page properly.",
    GOOD[0],
    "",
    "  " + GOOD[1] + "  ",
    "Read more...",
    "Wow!",
    GOOD[2],
    "By using this site you agree to our Terms of Use.",
])


def test_registered():
    assert get_step("c4_lines") is C4Lines


def test_removes_bad_lines_and_keeps_good_sentences():
    step = C4Lines()
    assert apply_step(step, PAGE) == "\n".join(GOOD)
    assert step.stats.counts == {"line_no_terminal_punct": 2, "line_javascript": 1, "line_too_few_words": 1,
                                 "line_policy": 1}


def test_clean_text_is_kept_unchanged():
    step = C4Lines()
    assert apply_step(step, "\n".join(GOOD)) == "\n".join(GOOD)
    assert step.stats.modified == 0


def test_document_level_drops():
    step = C4Lines()
    assert check_filter(step, "\n".join([*GOOD, "Lorem ipsum dolor sit amet."])) == (False, "c4_lorem_ipsum")
    assert check_filter(step, "\n".join([*GOOD, "Call f() { return 1; } to start."])) == (False, "c4_curly_bracket")
    assert check_filter(step, "Home\nAbout us\nContact") == (False, "c4_no_lines_left")
    assert check_filter(step, "\n".join([GOOD[0], "Menu", GOOD[1]])) == (False, "c4_too_few_sentences")


def test_sentences_are_counted_inside_lines():
    one_line = "It rained all night. The river rose! Was the bridge safe? Nobody knew."
    assert check_filter(C4Lines(min_sentences=4), one_line) == (True, None)
    assert check_filter(C4Lines(min_sentences=5), one_line) == (False, "c4_too_few_sentences")


def test_rules_can_be_switched_off():
    code = "\n".join([*GOOD, "Use {braces} freely in this line."])
    assert apply_step(C4Lines(drop_curly_bracket=False), code) == code
    menu = "\n".join(["Home", *GOOD])
    assert apply_step(C4Lines(require_terminal_punct=False, min_words_per_line=None), menu) == menu
    assert apply_step(C4Lines(min_sentences=0, require_terminal_punct=False), "one\ntwo") is None  # nothing left
    js = "\n".join([*GOOD, "This page uses JavaScript for its maps."])
    assert apply_step(C4Lines(remove_javascript_lines=False), js) == js


def test_a_line_with_a_monster_word_is_removed():
    assert apply_step(C4Lines(max_word_length=20), "\n".join([*GOOD, "Token " + "x" * 21 + " here."])) == "\n".join(GOOD)


def test_stats_follow_the_base_conventions():
    step = C4Lines()
    out = run_step(step, ["\n".join(GOOD), PAGE, "Lorem ipsum dolor sit amet.", "Nothing here"])
    assert [d.id for d in out] == ["0", "1"]
    s = step.stats
    assert (s.docs_in, s.docs_out, s.modified) == (4, 2, 1)
    assert s.dropped == {"c4_lorem_ipsum": 1, "c4_no_lines_left": 1}
    assert [(e["reason"], e["id"]) for e in s.examples] == [
        ("c4_lines", "1"), ("c4_lorem_ipsum", "2"), ("c4_no_lines_left", "3")]
    assert s.examples[0]["text"] == PAGE and s.examples[0]["after"] == "\n".join(GOOD)
