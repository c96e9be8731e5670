"""Run a cleaning pipeline over a dataset version, shard-parallel, into a new version plus a report.

The step list is cut at every global step (deduplication) into segments. Each
segment runs per shard in parallel processes; a global step runs its
``index_shard`` phase at the end of the segment before it, its ``plan`` once in
this process, and its ``filter_shard`` phase at the start of the segment after
it — so memory stays bounded by a shard and only compact keys cross shards.
Intermediate shards live in a private work directory; the output version is
written (manifest last) only after every shard succeeded, so a failed run
leaves nothing visible.

Documents keep the id ``"<shard>:<row>"`` of the input version throughout, so
the report's examples and dedup clusters point at rows of the input.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from llmforge.artifacts import ArtifactStore
from llmforge.data_pipeline.base import GlobalStep, PipelineStep, StepStats
from llmforge.data_pipeline.datasets import DatasetStore, DatasetVersion
from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.spec import PipelineSpec, build_steps
from llmforge.errors import InvalidInput

ID_FIELD = "__llmforge_id"
Progress = Callable[[int, int, str], None]


@dataclass
class PipelineResult:
    version: DatasetVersion
    report: dict[str, Any]


@dataclass
class _Task:
    """One shard's work in one segment (picklable: it crosses into a worker process)."""

    artifact_url: str
    spec: dict[str, Any]
    shard: int
    source: str  # "version:<id>" or a path to an intermediate JSONL file
    steps: list[int]  # indices into spec.steps of shard-scope steps to run, in order
    filter_global: int | None  # global step whose filter_shard runs first
    index_global: int | None  # global step whose index_shard runs on the output
    workdir: str
    out_path: str


def _bind(step: PipelineStep, store: DatasetStore) -> None:
    if hasattr(step, "bind"):
        step.bind(lambda version_id: store.texts(version_id))


def _read_docs(task: _Task, store: DatasetStore, text_field: str) -> Iterator[Document]:
    if task.source.startswith("version:"):
        version = store.get(task.source.split(":", 1)[1])
        for row_i, row in enumerate(store.iter_shard(version, task.shard)):
            text = row.pop(text_field, None)
            if not isinstance(text, str):
                raise InvalidInput(
                    f"shard {task.shard} row {row_i} has no string field {text_field!r}; set the spec's "
                    f"text_field to one of {sorted(row)}", param="text_field")
            yield Document(text, f"{task.shard}:{row_i}", row)
    else:
        with open(task.source, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                ident = row.pop(ID_FIELD)
                yield Document(row.pop(text_field), ident, row)


def _run_task(task: _Task) -> list[dict[str, Any]]:
    """Run one shard through one segment; returns the stats of every step it ran."""
    spec = PipelineSpec.model_validate(task.spec)
    store = DatasetStore(ArtifactStore(task.artifact_url))
    steps = build_steps(spec)
    for s in steps:
        _bind(s, store)
    docs: Iterator[Document] = _read_docs(task, store, spec.text_field)
    ran: list[PipelineStep] = []
    if task.filter_global is not None:
        g = steps[task.filter_global]
        assert isinstance(g, GlobalStep)
        docs = g.filter_shard(task.shard, docs, str(Path(task.workdir) / f"g{task.filter_global}"))
        ran.append(g)
    for i in task.steps:
        docs = steps[i].run(docs, task.shard, 1)
        ran.append(steps[i])
    with open(task.out_path, "w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps({**doc.metadata, spec.text_field: doc.text, ID_FIELD: doc.id}, ensure_ascii=False, default=str))
            fh.write("\n")
    if task.index_global is not None:
        g = steps[task.index_global]
        gdir = Path(task.workdir) / f"g{task.index_global}"
        gdir.mkdir(parents=True, exist_ok=True)
        spec_out = _Task(**{**task.__dict__, "source": task.out_path})
        g.index_shard(task.shard, _read_docs(spec_out, store, spec.text_field), str(gdir))
    return [{"index": steps.index(s), **s.stats.to_dict()} for s in ran]


def _segments(steps: list[PipelineStep]) -> list[tuple[int | None, list[int], int | None]]:
    """[(global step filtered at the start, shard steps, global step indexed at the end)]."""
    segments: list[tuple[int | None, list[int], int | None]] = []
    pending_filter: int | None = None
    current: list[int] = []
    for i, step in enumerate(steps):
        if isinstance(step, GlobalStep):
            segments.append((pending_filter, current, i))
            pending_filter, current = i, []
        else:
            current.append(i)
    segments.append((pending_filter, current, None))
    return segments


def run_pipeline(
    store: DatasetStore,
    version_id: str,
    spec: PipelineSpec | dict[str, Any] | str,
    *,
    workers: int = 1,
    job_id: str | None = None,
    progress: Progress | None = None,
    shard_rows: int | None = None,
) -> PipelineResult:
    """Clean ``version_id`` with ``spec`` into a new version whose parent is the input."""
    spec = spec if isinstance(spec, PipelineSpec) else PipelineSpec.parse(spec)
    steps = build_steps(spec)  # validates everything before any work
    version = store.get(version_id)
    for s in steps:
        _bind(s, store)
    num_shards = len(version.shards)
    segments = _segments(steps)
    total = len(segments) * num_shards
    done = 0
    stats: dict[int, StepStats] = {}
    artifacts: dict[int, dict[str, str]] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmforge-pipeline-") as workdir:
        sources = [f"version:{version_id}"] * num_shards
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) if workers > 1 else None
        try:
            for seg_i, (filter_g, shard_steps, index_g) in enumerate(segments):
                tasks = [
                    _Task(store.artifacts.url, spec.model_dump(), shard, sources[shard], shard_steps, filter_g, index_g,
                          workdir, str(Path(workdir) / f"seg{seg_i}-shard{shard:05d}.jsonl"))
                    for shard in range(num_shards)
                ]
                results = pool.map(_run_task, tasks) if pool else map(_run_task, tasks)
                for task, step_stats in zip(tasks, results):
                    for d in step_stats:
                        st = StepStats.from_dict(d)
                        stats[d["index"]] = stats[d["index"]].merge(st) if d["index"] in stats else st
                    done += 1
                    if progress:
                        progress(done, total, f"segment {seg_i + 1}/{len(segments)}, shard {task.shard + 1}/{num_shards}")
                sources = [t.out_path for t in tasks]
                if index_g is not None:
                    g = steps[index_g]
                    assert isinstance(g, GlobalStep)
                    gdir = Path(workdir) / f"g{index_g}"
                    g.plan(str(gdir), num_shards)
                    kept = _keep_inspectables(store, gdir)
                    if kept:
                        artifacts[index_g] = kept
        finally:
            if pool:
                pool.shutdown()

        def final_rows() -> Iterator[dict[str, Any]]:
            for path in sources:
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        row = json.loads(line)
                        row.pop(ID_FIELD, None)
                        yield row

        out = store.write_version(final_rows(), text_field=spec.text_field, parent=version_id, job_id=job_id,
                                  source={"pipeline": spec.model_dump()},
                                  shard_rows=shard_rows or max(1, max(s["rows"] for s in version.shards)))
    report = {
        "input_version": version_id,
        "output_version": out.id,
        "rows_in": version.rows,
        "rows_out": out.rows,
        "seconds": round(time.perf_counter() - t0, 3),
        "workers": workers,
        "shards": num_shards,
        "steps": [{**stats[i].to_dict(), "step": spec.steps[i].step, "params": spec.steps[i].params,
                   **({"artifacts": artifacts[i]} if i in artifacts else {})}
                  for i in range(len(steps)) if i in stats],
    }
    return PipelineResult(out, report)


def _keep_inspectables(store: DatasetStore, gdir: Path) -> dict[str, str]:
    """Global steps may leave JSONL files (e.g. dedup clusters) worth keeping: store them as artifacts."""
    return {p.stem: store.artifacts.put_file(p) for p in sorted(gdir.glob("*.jsonl"))}
