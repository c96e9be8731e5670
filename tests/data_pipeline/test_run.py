"""The pipeline runner: steps in order over shards, in parallel or not, global steps across shards,
a report per step, a new version whose parent is the input, and nothing visible when it fails."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from llmforge.artifacts import ArtifactStore
from llmforge.data_pipeline.base import GlobalStep
from llmforge.data_pipeline.datasets import DatasetStore
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.registry import register_step
from llmforge.data_pipeline.run import run_pipeline
from llmforge.errors import InvalidInput

ROWS = [{"text": t, "i": i} for i, t in enumerate([
    "  Hello   world  ", "x", "A proper sentence that is long enough.", "", "Another   long enough line here.",
    "y", "Third sentence with plenty of characters.", "Same same.", "Same same.", "Final row that stays in place.",
])]
SPEC = {"steps": [{"step": "normalize_whitespace"}, {"step": "length_filter", "params": {"min_chars": 5}}]}


@register_step
class KeepFirstSeenLength(GlobalStep):
    """Test-only global step: keeps the first document of each text length, across all shards."""

    name = "test_first_of_length"

    def index_shard(self, shard: int, docs: Iterable[Document], workdir: str) -> None:
        Path(workdir, f"{shard}.json").write_text(json.dumps([len(d.text) for d in docs]))

    def plan(self, workdir: str, num_shards: int) -> None:
        seen, drop = set(), {}
        for shard in range(num_shards):
            for pos, n in enumerate(json.loads(Path(workdir, f"{shard}.json").read_text())):
                if n in seen:
                    drop.setdefault(shard, []).append(pos)
                seen.add(n)
        Path(workdir, "drop.json").write_text(json.dumps(drop))
        Path(workdir, "clusters.jsonl").write_text(json.dumps({"dropped": drop}) + "\n")

    def filter_shard(self, shard: int, docs: Iterable[Document], workdir: str) -> Iterator[Document]:
        drop = set(json.loads(Path(workdir, "drop.json").read_text()).get(str(shard), []))
        for pos, doc in enumerate(docs):
            self.stats.docs_in += 1
            if pos in drop:
                self.stats.dropped["same_length"] += 1
                self.stats.example("same_length", doc)
            else:
                self.stats.docs_out += 1
                yield doc


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(ArtifactStore(str(tmp_path / "artifacts")))


@pytest.fixture
def version(store: DatasetStore):  # noqa: ANN201
    return store.write_version(ROWS, shard_rows=4)


def test_pipeline_report_and_lineage(store: DatasetStore, version) -> None:  # noqa: ANN001
    result = run_pipeline(store, version.id, SPEC, job_id="job123")
    out = result.version
    assert out.parent == version.id and out.job_id == "job123"
    texts = [r["text"] for r in store.iter_rows(out.id)]
    assert texts == ["Hello world", "A proper sentence that is long enough.", "Another long enough line here.",
                     "Third sentence with plenty of characters.", "Same same.", "Same same.", "Final row that stays in place."]
    assert [r["i"] for r in store.iter_rows(out.id)] == [0, 2, 4, 6, 7, 8, 9]  # other columns carried through
    ws, length = result.report["steps"]
    assert (ws["step"], ws["docs_in"], ws["docs_out"], ws["modified"]) == ("normalize_whitespace", 10, 10, 2)
    assert (length["docs_in"], length["docs_out"], length["dropped"]) == (10, 7, {"too_short_chars": 3})
    # examples point at rows of the input version as "<shard>:<row>"
    assert {e["id"] for e in length["examples"]} == {"0:1", "0:3", "1:1"}
    assert result.report["rows_in"] == 10 and result.report["rows_out"] == 7
    assert result.report["output_version"] == out.id


def test_parallel_run_gives_the_same_version(store: DatasetStore, version) -> None:  # noqa: ANN001
    one = run_pipeline(store, version.id, SPEC, workers=1)
    two = run_pipeline(store, version.id, SPEC, workers=2)
    assert one.version.id == two.version.id
    assert [s["dropped"] for s in one.report["steps"]] == [s["dropped"] for s in two.report["steps"]]


def test_global_step_sees_every_shard(store: DatasetStore, version) -> None:  # noqa: ANN001
    spec = {"steps": [{"step": "normalize_whitespace"}, {"step": "test_first_of_length"},
                      {"step": "length_filter", "params": {"min_chars": 2}}]}
    result = run_pipeline(store, version.id, spec)
    texts = [r["text"] for r in store.iter_rows(result.version.id)]
    lengths = [len(t) for t in texts]
    assert len(lengths) == len(set(lengths))  # one per length, across shards of 4 rows
    assert "Same same." in texts and texts.count("Same same.") == 1
    g = result.report["steps"][1]
    assert g["step"] == "test_first_of_length" and g["docs_in"] == 10
    assert g["dropped"]["same_length"] == 10 - g["docs_out"]
    clusters = g["artifacts"]["clusters"]
    assert json.loads(store.artifacts.get_bytes(clusters))["dropped"]


def test_spec_errors_name_the_step_and_field(store: DatasetStore, version) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInput, match="unknown pipeline step 'nope'; available steps: .*length_filter"):
        run_pipeline(store, version.id, {"steps": [{"step": "nope"}]})
    with pytest.raises(InvalidInput, match=r"steps\[1\] \(length_filter\): params.min_chars"):
        run_pipeline(store, version.id, {"steps": [{"step": "normalize_whitespace"},
                                                   {"step": "length_filter", "params": {"min_chars": -1}}]})
    with pytest.raises(InvalidInput, match="steps: List should have at least 1"):
        run_pipeline(store, version.id, {"steps": []})
    with pytest.raises(InvalidInput, match="neither valid JSON nor YAML"):
        run_pipeline(store, version.id, "steps: [unclosed")


def test_yaml_spec(store: DatasetStore, version) -> None:  # noqa: ANN001
    result = run_pipeline(store, version.id, "steps:\n  - step: length_filter\n    params: {min_chars: 20}\n")
    assert result.version.rows == 4


def test_missing_text_field_fails_with_no_new_version(store: DatasetStore, tmp_path: Path) -> None:
    v = store.write_version([{"body": "no text field here"}], text_field="body")
    before = {p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()}
    with pytest.raises(InvalidInput, match="row 0 has no string field 'text'; set the spec's text_field to one of \\['body'\\]"):
        run_pipeline(store, v.id, SPEC)
    after = {p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()}
    assert after == before


class NoSharedDisk:
    """Runs tasks inline but as if on other machines: every hand-off goes through the artifact store."""

    shared_disk = False

    def __init__(self) -> None:
        from llmforge.data_pipeline.run import LocalFanout

        self.inner = LocalFanout(1)
        self.calls: list[str] = []

    def map_shards(self, tasks):  # noqa: ANN001, ANN201
        self.calls.append(f"map:{len(tasks)}")
        assert all(t.out == "artifact" for t in tasks)
        return self.inner.map_shards(tasks)

    def plan(self, *args):  # noqa: ANN002, ANN201
        self.calls.append("plan")
        return self.inner.plan(*args)


def test_artifact_handoffs_give_the_same_version(store: DatasetStore, version) -> None:  # noqa: ANN001
    spec = {"steps": [{"step": "normalize_whitespace"}, {"step": "test_first_of_length"},
                      {"step": "length_filter", "params": {"min_chars": 2}}]}
    local = run_pipeline(store, version.id, spec)
    fan = NoSharedDisk()
    remote = run_pipeline(store, version.id, spec, fanout=fan)
    assert remote.version.id == local.version.id
    assert fan.calls == ["map:3", "plan", "map:3"]
    assert [s["dropped"] for s in remote.report["steps"]] == [s["dropped"] for s in local.report["steps"]]
