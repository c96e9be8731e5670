"""gopher_quality: a clean paragraph passes; each rule fires on a text built to break only that rule."""

from __future__ import annotations

import pytest
from pipeline_checks import check_filter, run_step

from llmforge.data_pipeline.registry import get_step
from llmforge.data_pipeline.steps.gopher_quality import GopherQuality, word_of

CLEAN = (
    "The village library opened a new reading room last spring. Volunteers painted the walls, "
    "repaired the old shelves and sorted thousands of donated books by subject. Children now come "
    "after school to read with their parents, and the librarian runs a weekly story hour that is "
    "always full. The council has promised to keep the building open on weekends through the winter."
)  # 62 words, mean length 4.9, 14 stop words

SENTENCES = [  # eight words each, with stop words
    "The river rose slowly during the long night.",
    "Farmers moved their cattle to the higher fields.",
    "Neighbours carried sandbags to the old mill door.",
    "By morning the water had reached the bridge.",
    "Rescue boats searched the flooded lanes for hours.",
    "Schools stayed closed and the market was cancelled.",
    "Engineers said that the dam would hold firm.",
    "The mayor thanked everyone who helped with sandbags.",
    "Families returned home to clean up the mud.",
    "Insurance experts visited the damaged houses next week.",
]


def test_word_of_strips_surrounding_punctuation_only():
    assert [word_of(t) for t in ['"Hello,', "world!", "e-mail", "...", "#1", "(U.S.)"]] == [
        "Hello", "world", "e-mail", "", "1", "U.S"]


def test_registered():
    assert get_step("gopher_quality") is GopherQuality


def test_clean_paragraph_and_clean_lines_pass():
    assert check_filter(GopherQuality(), CLEAN) == (True, None)
    assert check_filter(GopherQuality(), "\n".join(SENTENCES)) == (True, None)


def test_each_rule_can_be_disabled():
    disabled = GopherQuality(min_doc_words=None, min_stop_words=None)
    assert check_filter(disabled, "Cheap flights today.") == (True, None)
    assert check_filter(disabled, "") == (False, "gopher_short_doc")  # no word at all is always short


HASHTAGS = " #news #local #library #books #reading #kids #winter #council"  # 8 '#' for 70 words
ELLIPSIS_WORDS = " ".join(w + "..." if i % 7 == 6 else w for i, w in enumerate(CLEAN.split()))  # 8 per 62 words
END_ELLIPSIS = "\n".join(s[:-1] + "..." if i < 4 else s for i, s in enumerate(SENTENCES))  # 4 of 10 lines
BULLETS = "\n".join(("- " if i else "• ") + s for i, s in enumerate(SENTENCES))  # 10 of 10 lines
NUMBERS = CLEAN + " " + " ".join(str(1990 + i) for i in range(17))  # 62 of 79 tokens alphabetic
SHORT_WORDS = " ".join(["To be or not to be, it is so."] * 6)  # 54 words, mean 2.1
LONG_WORDS = " ".join(["Internationalization and telecommunications with extraordinarily comprehensive "
                       "responsibilities characterizes the unquestionably overwhelming institutionalization."] * 5)
NO_STOP_WORDS = " ".join(["Cheap flights, hotel deals, car rentals, holiday packages, cruise offers, "
                          "travel insurance, airport parking, city breaks, beach resorts, ski trips."] * 3)


@pytest.mark.parametrize(("text", "params", "reason"), [
    ("The cat sat on the mat with the dog.", {}, "gopher_short_doc"),
    (CLEAN, {"max_doc_words": 61}, "gopher_long_doc"),
    (SHORT_WORDS, {}, "gopher_below_avg_threshold"),
    (LONG_WORDS, {}, "gopher_above_avg_threshold"),
    (CLEAN + HASHTAGS, {}, "gopher_too_many_hashes"),
    (ELLIPSIS_WORDS, {}, "gopher_too_many_ellipsis"),
    (BULLETS, {}, "gopher_too_many_bullets"),
    (END_ELLIPSIS, {}, "gopher_too_many_end_ellipsis"),
    (NUMBERS, {}, "gopher_below_alpha_threshold"),
    (NO_STOP_WORDS, {}, "gopher_too_few_stop_words"),
])
def test_rule_fires_alone(text, params, reason):
    assert check_filter(GopherQuality(**params), text) == (False, reason)
    # the same text passes once that one rule is switched off: it breaks no other rule
    rule_param = {
        "gopher_short_doc": "min_doc_words", "gopher_long_doc": "max_doc_words",
        "gopher_below_avg_threshold": "min_avg_word_length", "gopher_above_avg_threshold": "max_avg_word_length",
        "gopher_too_many_hashes": "max_symbol_word_ratio", "gopher_too_many_ellipsis": "max_symbol_word_ratio",
        "gopher_too_many_bullets": "max_bullet_lines_ratio", "gopher_too_many_end_ellipsis": "max_ellipsis_lines_ratio",
        "gopher_below_alpha_threshold": "min_alpha_words_ratio", "gopher_too_few_stop_words": "min_stop_words",
    }[reason]
    assert check_filter(GopherQuality(**{**params, rule_param: None}), text) == (True, None)


def test_nine_bullets_of_ten_lines_pass():
    assert check_filter(GopherQuality(), "\n".join(SENTENCES[:1] + ["- " + s for s in SENTENCES[1:]])) == (True, None)


def test_custom_stop_words_for_another_language():
    german = ("Der Fluss stieg langsam in der Nacht und die Bauern brachten das Vieh auf die Felder. " * 4).strip()
    assert check_filter(GopherQuality(), german) == (False, "gopher_too_few_stop_words")
    assert check_filter(GopherQuality(stop_words=["der", "die", "das", "und"]), german) == (True, None)


def test_stats():
    step = GopherQuality()
    out = run_step(step, [CLEAN, "Too short.", NO_STOP_WORDS, "Also short."])
    assert [d.id for d in out] == ["0"]
    s = step.stats
    assert (s.docs_in, s.docs_out) == (4, 1)
    assert s.dropped == {"gopher_short_doc": 2, "gopher_too_few_stop_words": 1}
    assert [e["id"] for e in s.examples] == ["1", "2", "3"]
