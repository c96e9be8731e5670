"""gopher_repetition: duplicate paragraphs, lines and n-grams, each with its own drop reason.

The n-gram texts are made of 4-letter filler words (``w000``, ``w001``...) that never
repeat, so every fraction can be worked out by hand; the numbers are in the comments.
"""

from __future__ import annotations

from pipeline_checks import check_filter, run_step

from llmforge.data_pipeline.registry import get_step
from llmforge.data_pipeline.steps.gopher_repetition import (
    GopherRepetition,
    duplicate_ngram_chars,
    duplicates,
    top_ngram_chars,
)

SENTENCES = [
    "The river rose slowly during the long night.",
    "Farmers moved their cattle to the higher fields.",
    "Neighbours carried sandbags to the old mill door.",
    "By morning the water had reached the bridge.",
    "Rescue boats searched the flooded lanes for hours.",
    "Schools stayed closed and the market was cancelled.",
    "Engineers said that the dam would hold firm.",
    "The mayor thanked everyone who helped with sandbags.",
]


def filler(n: int, start: int = 0) -> list[str]:
    return [f"w{i:03d}" for i in range(start, start + n)]


def test_registered():
    assert get_step("gopher_repetition") is GopherRepetition


def test_helpers_count_by_hand():
    assert duplicates(["a", "bb", "a", "bb", "a", "c"]) == (3, 4)
    words = "the cat sat on the cat sat on the mat".split()
    assert top_ngram_chars(words, 2) == 2 * 6  # "the cat" twice; "the mat" never repeats
    assert top_ngram_chars(["one", "two", "three"], 2) == 0  # a top n-gram seen once is no repetition
    assert top_ngram_chars(["ha"] * 4, 2) == 8  # overlapping occurrences count each word once
    # the only repeated 5-gram is the second "the cat sat on the" (words 4 to 8)
    assert duplicate_ngram_chars(words, 5) == len("thecatsatonthe")
    assert duplicate_ngram_chars(words, 10) == 0


def test_clean_prose_passes():
    text = " ".join(SENTENCES[:4]) + "\n\n" + " ".join(SENTENCES[4:])
    assert check_filter(GopherRepetition(), text) == (True, None)


def test_duplicate_paragraph_fraction():
    # paragraphs: "Read more." / five lines / "Read more." -> 1 of 3 paragraphs is a duplicate (0.33 > 0.3);
    # by characters 10 / 259 (0.04), and 1 of 7 lines (0.14)
    text = "Read more.\n\n" + "\n".join(SENTENCES[:5]) + "\n\nRead more."
    assert check_filter(GopherRepetition(), text) == (False, "dup_para_frac")
    assert check_filter(GopherRepetition(dup_para_frac=None), text) == (True, None)


def test_duplicate_paragraph_characters():
    # six paragraphs, one repeats (0.17 of paragraphs), but it holds 93 of 380 characters (0.24 > 0.2)
    long = SENTENCES[0] + " " + SENTENCES[1]
    text = "\n\n".join([long, *SENTENCES[2:6], long])
    assert check_filter(GopherRepetition(), text) == (False, "dup_para_char_frac")


def test_duplicate_line_fraction():
    # one paragraph; "Share" after each of 8 sentences: 7 duplicate lines of 16 (0.44 > 0.3), 35 of 422 chars (0.08)
    text = "\n".join(line for s in SENTENCES for line in (s, "Share"))
    assert check_filter(GopherRepetition(), text) == (False, "dup_line_frac")


def test_duplicate_line_characters():
    # one paragraph of 6 lines, the first repeated at the end: 1/6 lines (0.17), 93 of 380 chars (0.24 > 0.2)
    long = SENTENCES[0] + " " + SENTENCES[1]
    text = "\n".join([long, *SENTENCES[2:6], long])
    assert check_filter(GopherRepetition(), text) == (False, "dup_line_char_frac")


def test_top_2_gram():
    # "city hall" after each of 10 filler words: 80 of 120 word characters
    text = " ".join(f"{w} city hall" for w in filler(10)) + "."
    assert check_filter(GopherRepetition(), text) == (False, "top_2_gram")


def test_top_3_gram():
    # "greenhouse a fertiliser" 3 times (63 chars) in 251: top 3-gram 0.251 > 0.18, top 2-gram 33/251 = 0.13
    words = filler(47)
    for i in (10, 25, 40):
        words[i:i] = ["greenhouse", "a", "fertiliser"]
    assert top_ngram_chars(words, 3) / sum(map(len, words)) > 0.18 > top_ngram_chars(words, 2) / sum(map(len, words))
    assert check_filter(GopherRepetition(), " ".join(words)) == (False, "top_3_gram")


def test_top_4_gram():
    # "greenhouse a b fertiliser" 3 times: 66 of 302 chars (0.22 > 0.16); top 3-gram 36/302, top 2-gram 33/302
    words = filler(59)
    for i in (10, 30, 50):
        words[i:i] = ["greenhouse", "a", "b", "fertiliser"]
    assert check_filter(GopherRepetition(), " ".join(words)) == (False, "top_4_gram")


def test_duplicated_5_grams():
    # a 10-word phrase twice among 40 unique words: the second copy is 40 of 240 chars (0.167 > 0.15);
    # its most frequent 4-gram covers 32/240 (0.133 < 0.16)
    phrase = filler(10, start=500)
    text = " ".join(filler(20) + phrase + filler(10, start=20) + phrase + filler(10, start=30))
    assert check_filter(GopherRepetition(), text) == (False, "dup_5_gram")
    assert check_filter(GopherRepetition(dup_n_grams={10: 0.1}), text) == (False, "dup_10_gram")
    longer = " ".join(filler(45) + phrase + filler(45, start=45) + phrase)  # 40 of 440 chars: 0.09
    assert check_filter(GopherRepetition(), longer) == (True, None)


def test_stats():
    step = GopherRepetition()
    texts = ["Read more.\n\nRead more.", " ".join(SENTENCES), "Share\nShare\nShare", "Read more.\n\nRead more."]
    out = run_step(step, texts)
    assert [d.id for d in out] == ["1"]
    s = step.stats
    assert (s.docs_in, s.docs_out) == (4, 1)
    assert s.dropped == {"dup_para_frac": 2, "dup_line_frac": 1}
    assert [(e["reason"], e["id"]) for e in s.examples] == [
        ("dup_para_frac", "0"), ("dup_line_frac", "2"), ("dup_para_frac", "3")]
