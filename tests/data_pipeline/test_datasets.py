"""Dataset versions: content-addressed, immutable, complete-or-absent, loadable by Hugging Face `datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from llmforge.artifacts import ArtifactStore
from llmforge.data_pipeline.datasets import DatasetStore
from llmforge.errors import InvalidInput, NotFound


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(ArtifactStore(str(tmp_path / "artifacts")))


def jsonl(tmp_path: Path, rows: list[dict], name: str = "in.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_import_shards_stats_schema_and_identity(store: DatasetStore, tmp_path: Path) -> None:
    rows = [{"text": f"document number {i}", "n": i} for i in range(25)] + [{"text": "Document number 0 ", "n": 99}]
    v = store.import_file(jsonl(tmp_path, rows), shard_rows=10)
    assert v.rows == 26 and [s["rows"] for s in v.shards] == [10, 10, 6]
    assert v.schema == {"n": ["int"], "text": ["string"]}
    assert v.stats["duplicate_rate"] == pytest.approx(1 / 26, abs=1e-4)  # case/whitespace-normalised duplicate
    assert v.stats["characters"] == sum(len(r["text"]) for r in rows)
    assert sum(b["rows"] for b in v.stats["length_histogram"]) == 26
    assert list(store.iter_rows(v.id)) == rows
    assert store.preview(v.id, 3) == rows[:3]
    sample = store.sample(v.id, 5, seed=1)
    assert len(sample) == 5 and sample == store.sample(v.id, 5, seed=1)
    again = store.import_file(jsonl(tmp_path, rows, "same.jsonl"), shard_rows=10, name="in.jsonl")
    assert again.id == v.id  # same content, same parentage: same version


def test_versions_load_with_hugging_face_datasets(store: DatasetStore, tmp_path: Path) -> None:
    from datasets import load_dataset

    rows = [{"text": f"t{i}", "label": i % 2} for i in range(30)]
    v = store.import_file(jsonl(tmp_path, rows), shard_rows=7)
    ds = load_dataset("json", data_files=store.data_files(v.id), split="train")
    assert ds.num_rows == 30 and ds[0] == {"text": "t0", "label": 0}
    assert store.load_hf(v.id)["label"] == [r["label"] for r in rows]


def test_malformed_file_leaves_no_version(store: DatasetStore, tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok"}\n' * 5 + "{oops\n")
    with pytest.raises(InvalidInput, match="line 6"):
        store.import_file(p, shard_rows=2)
    objects = list((tmp_path / "artifacts").rglob("*"))
    manifests = [o for o in objects if o.is_file() and o.read_bytes().startswith(b'{"format"')]
    assert manifests == []  # shards may exist as unreferenced blobs, but no manifest, so no version


def test_unknown_and_malformed_version_ids(store: DatasetStore) -> None:
    with pytest.raises(NotFound):
        store.get("0" * 64)
    with pytest.raises(NotFound, match="64 hex"):
        store.get("../../etc/passwd")


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent")
def test_real_news_csv(store: DatasetStore) -> None:
    v = store.import_file(SHARED_DATA / "ag_news_sample.csv", columns=["class", "title", "description"],
                          text_field="description")
    assert v.rows >= 600 and v.stats["rows_with_text"] == v.rows
    assert 50 < v.stats["mean_characters"] < 1000
