"""decontaminate: a planted 13-gram from an eval text is found through case and punctuation changes;
12 shared words are not enough; short eval texts match whole; eval sets from a dataset version via bind."""

from __future__ import annotations

import pytest
from dedup_cases import distinct_words, docs
from pydantic import ValidationError

from llmforge.data_pipeline.dedup import Decontaminate
from llmforge.data_pipeline.registry import get_step
from llmforge.errors import InvalidInput

EVAL = distinct_words(40, seed=11)
FILLER = distinct_words(60, seed=12)
EVAL_TEXT = " ".join(EVAL)


def _planted(n: int, at: int = 10) -> str:
    """Filler text with eval words at..at+n planted in the middle, in upper case with punctuation."""
    planted = ", ".join(w.upper() for w in EVAL[at:at + n])
    return " ".join(FILLER[:30]) + f' "{planted}!" ' + " ".join(FILLER[30:])


def test_planted_13gram_is_dropped_and_named_12_words_are_kept():
    step = Decontaminate(eval_texts=[EVAL_TEXT])
    texts = [_planted(13), _planted(12), " ".join(FILLER), _planted(20, at=5)]
    out = list(step.run(docs(texts)))
    assert [d.id for d in out] == ["d1", "d2"]
    assert step.stats.dropped == {"contaminated": 2}
    dropped = {e["id"] for e in step.stats.examples}
    assert dropped == {"d0", "d3"}
    first = docs(texts)[0]
    list(Decontaminate(eval_texts=[EVAL_TEXT]).run([first]))
    assert first.metadata["contaminated_ngram"] == " ".join(EVAL[10:23])


def test_short_eval_texts_match_whole_and_very_short_ones_are_ignored():
    question = " ".join(EVAL[:9])  # 9 words: shorter than 13, at least min_words=8
    step = Decontaminate(eval_texts=[question, "yes", "the answer is"], ngram=13)
    texts = [" ".join(FILLER[:20] + EVAL[:9] + FILLER[20:]), " ".join(FILLER[:20] + EVAL[:8] + FILLER[20:]),
             "yes the answer is no"]
    assert [d.id for d in step.run(docs(texts))] == ["d1", "d2"]
    assert step.stats.counts["eval_texts_too_short"] == 2


def test_eval_set_from_a_dataset_version_through_bind():
    step = Decontaminate(eval_dataset_version="v-eval")
    with pytest.raises(InvalidInput, match="bind"):
        list(step.run(docs([_planted(13)])))
    step = Decontaminate(eval_dataset_version="v-eval", ngram=8)
    versions = {"v-eval": ["unrelated words only here", EVAL_TEXT]}
    step.bind(lambda version_id: iter(versions[version_id]))
    assert list(step.run(docs([_planted(8), " ".join(FILLER)]))) [0].id == "d1"
    assert step.stats.dropped == {"contaminated": 1}


def test_needs_an_eval_set_and_is_registered():
    with pytest.raises(ValidationError, match="eval_texts or eval_dataset_version"):
        Decontaminate()
    assert get_step("decontaminate") is Decontaminate
