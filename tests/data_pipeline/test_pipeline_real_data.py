"""Every built-in step, in one pipeline, over real text from ../shared/data (skipped when absent)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from llmforge.artifacts import ArtifactStore
from llmforge.data_pipeline.datasets import DatasetStore
from llmforge.data_pipeline.run import run_pipeline

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent")

SPEC = {"steps": [
    {"step": "fix_mojibake"}, {"step": "normalize_unicode", "params": {"form": "NFKC"}}, {"step": "normalize_whitespace"},
    {"step": "length_filter", "params": {"min_words": 5}}, {"step": "language_filter", "params": {"languages": ["en"]}},
    {"step": "gopher_repetition"}, {"step": "pii_redact"}, {"step": "exact_dedup"}, {"step": "minhash_dedup"},
    {"step": "decontaminate", "params": {"eval_dataset_version": "EVAL", "ngram": 13}},
]}


def test_full_pipeline_on_news_and_wikipedia(tmp_path: Path) -> None:
    store = DatasetStore(ArtifactStore(str(tmp_path / "a")))
    with open(SHARED_DATA / "ag_news_sample.csv", newline="") as fh:
        news = [r[2].replace("\\", " ") for r in csv.reader(fh)]
    squad = json.loads((SHARED_DATA / "xquad_en_dev.json").read_text())
    paras = [p["context"] for a in squad["data"] for p in a["paragraphs"]]
    rows = [{"text": t, "src": "news"} for t in news] + [{"text": t, "src": "wiki"} for t in paras]
    rows += [{"text": news[5], "src": "dup"}, {"text": news[9] + " Reuters", "src": "near"},
             {"text": news[11] + " Write to desk@example.org.", "src": "pii"}]
    eval_version = store.write_version([{"text": paras[0]}, {"text": paras[1]}])
    version = store.write_version(rows, shard_rows=200)
    spec = json.loads(json.dumps(SPEC).replace("EVAL", eval_version.id))
    result = run_pipeline(store, version.id, spec, workers=2)
    by_step = {s["step"]: s for s in result.report["steps"]}
    assert by_step["pii_redact"]["counts"].get("email", 0) >= 1
    assert by_step["exact_dedup"]["dropped"].get("exact_duplicate", 0) >= 1
    assert by_step["minhash_dedup"]["dropped"].get("near_duplicate", 0) >= 1
    assert by_step["decontaminate"]["dropped"] == {"contaminated": 2}
    assert by_step["language_filter"]["docs_out"] > 0.9 * by_step["language_filter"]["docs_in"]
    out = list(store.iter_rows(result.version.id))
    assert all("desk@example.org" not in r["text"] for r in out)
    assert {r["src"] for r in out} >= {"news", "wiki"}
    assert len(out) == result.version.rows == result.report["rows_out"]
