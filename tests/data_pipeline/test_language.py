"""language_filter and detect_language (py3langid; its model ships in the wheel), plus one run of the
cleaning steps over real news text from ``shared/data``."""

from __future__ import annotations

import csv

import pytest
from pipeline_checks import SHARED_DATA, check_filter, run_step
from pydantic import ValidationError

from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import get_step
from llmforge.data_pipeline.steps.language import LanguageFilter, detect_language

# Tolkien's ring verse, as in datatrove's language tests
EN = "One Ring to rule them all, One Ring to find them, One Ring to bring them all, and in the darkness bind them."
FR = "Un Anneau pour les gouverner tous, un Anneau pour les trouver, un Anneau pour les amener tous et dans les ténèbres les lier."
DE = "Ein Ring, sie zu knechten, sie alle zu finden, ins Dunkel zu treiben und ewig zu binden."


def test_registered():
    assert get_step("language_filter") is LanguageFilter


@pytest.mark.parametrize(("text", "code"), [(EN, "en"), (FR, "fr"), (DE, "de")])
def test_detect_language(text, code):
    detected, score = detect_language(text)
    assert detected == code
    assert 0.9 < score <= 1.0


def test_keeps_wanted_languages_and_names_the_others():
    step = LanguageFilter(languages=["en", "de"])
    assert check_filter(step, EN) == (True, None)
    assert check_filter(step, DE) == (True, None)
    assert check_filter(step, FR) == (False, "language_fr")


def test_unsure_detection_is_dropped_as_low_score():
    assert detect_language("ok")[1] < 0.65
    assert check_filter(LanguageFilter(), "ok") == (False, "language_low_score")
    assert detect_language("  \n") == ("und", 0.0)
    assert check_filter(LanguageFilter(min_score=0.0, languages=["en"]), "") == (False, "language_und")


def test_empty_language_list_keeps_everything_confident_and_annotates():
    out = run_step(LanguageFilter(languages=[]), [EN, FR])
    assert [(d.metadata["language"], d.metadata["language_score"] > 0.9) for d in out] == [("en", True), ("fr", True)]


def test_bad_params_are_refused():
    with pytest.raises(ValidationError):
        LanguageFilter(languages=["English"])
    with pytest.raises(ValidationError):
        LanguageFilter(min_score=1.5)


def test_stats_and_metadata():
    step = LanguageFilter()
    docs = [Document(EN, "a", {"source": "book"}), Document(FR, "b"), Document(DE, "c"), Document(EN, "d")]
    out = list(step.run(docs))
    assert [d.id for d in out] == ["a", "d"]
    assert out[0].metadata["source"] == "book" and out[0].metadata["language"] == "en"
    assert docs[1].metadata["language"] == "fr" and docs[1].metadata["language_score"] > 0.9
    s = step.stats
    assert (s.docs_in, s.docs_out) == (4, 2)
    assert s.dropped == {"language_fr": 1, "language_de": 1}
    assert [(e["reason"], e["id"]) for e in s.examples] == [("language_fr", "b"), ("language_de", "c")]


@pytest.mark.skipif(not (SHARED_DATA / "ag_news_sample.csv").exists(), reason="shared/data is absent")
def test_real_news_items():
    with open(SHARED_DATA / "ag_news_sample.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    docs = [Document(f"{title}\n\n{description}", str(i)) for i, (_, title, description) in enumerate(rows)]
    assert len(docs) > 500

    cleaning = [get_step(name)(**params) for name, params in [
        ("normalize_unicode", {"form": "NFKC"}), ("fix_mojibake", {}), ("normalize_whitespace", {}),
        ("length_filter", {"min_words": 5}), ("language_filter", {"languages": ["en"]})]]
    stream = docs
    for step in cleaning:
        stream = step.run(stream)
    kept = list(stream)
    assert len(kept) >= 0.95 * len(docs)  # English news: almost all confidently English
    assert all(d.metadata["language"] == "en" for d in kept)
    assert sum(step.stats.docs_in - step.stats.docs_out for step in cleaning[:4]) == 0  # mappers and length keep all

    french_only = LanguageFilter(languages=["fr"])
    assert list(french_only.run(kept)) == []
    assert french_only.stats.dropped["language_en"] == len(kept)

    # news blurbs are a sentence or three: Gopher's 50-word minimum rejects most of them, and says why;
    # many of the rest were cut off with '...' by the feed
    quality = get_step("gopher_quality")()
    passed = list(quality.run(kept))
    assert quality.stats.dropped.most_common(2)[0][0] == "gopher_short_doc"
    assert quality.stats.dropped["gopher_short_doc"] >= 0.7 * len(kept)
    assert 0 < len(passed) < 0.2 * len(kept)
    assert all(len(d.text.split()) >= 50 for d in passed)
