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
from typing import Any, Protocol

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
class ShardTask:
    """One shard's work in one segment. Plain data: it crosses into a process or a child job.

    References are ``"version:<id>"`` (a shard of a dataset version), ``"file:<path>"``
    (a local file or folder, when every process shares a disk) or ``"artifact:<digest>"``
    (the artifact store, when shards run on other machines); ``"artifact"`` as an output
    asks for the result to be uploaded there.
    """

    artifact_url: str
    spec: dict[str, Any]
    shard: int
    source: str
    steps: list[int]
    """Indices into spec.steps of the shard-scope steps to run, in order."""
    filter_global: int | None = None
    """Global step whose ``filter_shard`` runs first, reading its plan from ``filter_dir``."""
    filter_dir: str | None = None
    index_global: int | None = None
    """Global step whose ``index_shard`` runs over this task's output, writing to ``index_to``."""
    index_to: str | None = None
    out: str = "artifact"


def _bind(step: PipelineStep, store: DatasetStore) -> None:
    if hasattr(step, "bind"):
        step.bind(lambda version_id: store.texts(version_id))


def _local_file(ref: str, store: DatasetStore, tmp: Path) -> str:
    if ref.startswith("file:"):
        return ref[5:]
    dest = tmp / f"in-{ref[-12:]}.jsonl"
    store.artifacts.get_file(ref.split(":", 1)[1], dest)
    return str(dest)


def _local_dir(ref: str, store: DatasetStore, dest: Path) -> str:
    if ref.startswith("file:"):
        return ref[5:]
    store.artifacts.get_dir(ref.split(":", 1)[1], dest)
    return str(dest)


def _read_docs(source: str, shard: int, store: DatasetStore, text_field: str, tmp: Path) -> Iterator[Document]:
    if source.startswith("version:"):
        version = store.get(source.split(":", 1)[1])
        for row_i, row in enumerate(store.iter_shard(version, shard)):
            text = row.pop(text_field, None)
            if not isinstance(text, str):
                raise InvalidInput(
                    f"shard {shard} row {row_i} has no string field {text_field!r}; set the spec's "
                    f"text_field to one of {sorted(row)}", param="text_field")
            yield Document(text, f"{shard}:{row_i}", row)
        return
    with open(_local_file(source, store, tmp), encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            ident = row.pop(ID_FIELD)
            yield Document(row.pop(text_field), ident, row)


def run_shard_task(task: ShardTask | dict[str, Any]) -> dict[str, Any]:
    """Run one shard through one segment. Returns ``{"stats", "output", "index"}`` (stats per step run)."""
    task = task if isinstance(task, ShardTask) else ShardTask(**task)
    spec = PipelineSpec.model_validate(task.spec)
    store = DatasetStore(ArtifactStore(task.artifact_url))
    steps = build_steps(spec)
    for s in steps:
        _bind(s, store)
    with tempfile.TemporaryDirectory(prefix="llmforge-shard-") as tmp_s:
        tmp = Path(tmp_s)
        docs: Iterator[Document] = _read_docs(task.source, task.shard, store, spec.text_field, tmp)
        ran: list[PipelineStep] = []
        if task.filter_global is not None:
            g = steps[task.filter_global]
            assert isinstance(g, GlobalStep) and task.filter_dir
            docs = g.filter_shard(task.shard, docs, _local_dir(task.filter_dir, store, tmp / "plan"))
            ran.append(g)
        for i in task.steps:
            docs = steps[i].run(docs, task.shard, 1)
            ran.append(steps[i])
        out_path = task.out[5:] if task.out.startswith("file:") else str(tmp / "out.jsonl")
        with open(out_path, "w", encoding="utf-8") as fh:
            for doc in docs:
                fh.write(json.dumps({**doc.metadata, spec.text_field: doc.text, ID_FIELD: doc.id},
                                    ensure_ascii=False, default=str))
                fh.write("\n")
        output = task.out if task.out.startswith("file:") else f"artifact:{store.artifacts.put_file(out_path)}"
        index_ref = None
        if task.index_global is not None:
            g = steps[task.index_global]
            assert isinstance(g, GlobalStep) and task.index_to
            gdir = Path(task.index_to[5:]) if task.index_to.startswith("file:") else tmp / "index"
            gdir.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            g.index_shard(task.shard, _read_docs(f"file:{out_path}", task.shard, store, spec.text_field, tmp), str(gdir))
            index_stats = StepStats(g.name, seconds=time.perf_counter() - t0)  # counts come from the filter phase
            index_ref = task.index_to if task.index_to.startswith("file:") else f"artifact:{store.artifacts.put_dir(gdir)}"
    stats = [{"index": steps.index(s), **s.stats.to_dict()} for s in ran]
    if task.index_global is not None:
        stats.append({"index": task.index_global, **index_stats.to_dict()})
    return {"stats": stats, "output": output, "index": index_ref}


def run_plan(artifact_url: str, spec: dict[str, Any], step_index: int, index_refs: list[str], num_shards: int) -> dict[str, Any]:
    """The global phase of a global step. Returns ``{"plan": ref, "inspect": {name: digest}}``.

    With local references every shard indexed into the same folder and the plan is
    written there; with artifact references the shards' folders are merged into a
    temporary one (their files are named per shard) and the plan is uploaded.
    """
    pspec = PipelineSpec.model_validate(spec)
    store = DatasetStore(ArtifactStore(artifact_url))
    step = build_steps(pspec)[step_index]
    assert isinstance(step, GlobalStep)
    if all(r.startswith("file:") for r in index_refs) and len(set(index_refs)) == 1:
        gdir = Path(index_refs[0][5:])
        step.plan(str(gdir), num_shards)
        return {"plan": index_refs[0], "inspect": _keep_inspectables(store, gdir)}
    with tempfile.TemporaryDirectory(prefix="llmforge-plan-") as tmp_s:
        gdir = Path(tmp_s) / "plan"
        gdir.mkdir()
        for ref in index_refs:
            store.artifacts.get_dir(ref.split(":", 1)[1], gdir)
        step.plan(str(gdir), num_shards)
        return {"plan": f"artifact:{store.artifacts.put_dir(gdir)}", "inspect": _keep_inspectables(store, gdir)}


class Fanout(Protocol):
    """How shard tasks and plans are executed: local processes, or child jobs on other workers."""

    shared_disk: bool

    def map_shards(self, tasks: list[ShardTask]) -> Iterator[dict[str, Any]]: ...

    def plan(self, artifact_url: str, spec: dict[str, Any], step_index: int, index_refs: list[str],
             num_shards: int) -> dict[str, Any]: ...


class LocalFanout:
    """Shards in a pool of ``workers`` processes on this machine (inline when 1), sharing a work folder."""

    shared_disk = True

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) if workers > 1 else None

    def map_shards(self, tasks: list[ShardTask]) -> Iterator[dict[str, Any]]:
        return self.pool.map(run_shard_task, tasks) if self.pool else map(run_shard_task, tasks)

    def plan(self, artifact_url: str, spec: dict[str, Any], step_index: int, index_refs: list[str],
             num_shards: int) -> dict[str, Any]:
        return run_plan(artifact_url, spec, step_index, index_refs, num_shards)

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()


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
    fanout: Fanout | None = None,
) -> PipelineResult:
    """Clean ``version_id`` with ``spec`` into a new version whose parent is the input.

    ``fanout`` decides where shards run (default: ``workers`` local processes).
    """
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
    own = fanout is None
    fanout = fanout or LocalFanout(workers)
    spec_dict = spec.model_dump()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmforge-pipeline-") as workdir:
        sources = [f"version:{version_id}"] * num_shards
        plan_ref: str | None = None
        try:
            for seg_i, (filter_g, shard_steps, index_g) in enumerate(segments):
                tasks = []
                for shard in range(num_shards):
                    local = Path(workdir)
                    tasks.append(ShardTask(
                        store.artifacts.url, spec_dict, shard, sources[shard], shard_steps,
                        filter_global=filter_g, filter_dir=plan_ref if filter_g is not None else None,
                        index_global=index_g,
                        index_to=(f"file:{local / f'g{index_g}'}" if fanout.shared_disk else "artifact")
                        if index_g is not None else None,
                        out=f"file:{local / f'seg{seg_i}-shard{shard:05d}.jsonl'}" if fanout.shared_disk else "artifact",
                    ))
                results = list(_tracked(fanout.map_shards(tasks), tasks, seg_i, len(segments), num_shards,
                                        done, total, progress))
                done += len(tasks)
                for res in results:
                    for d in res["stats"]:
                        st = StepStats.from_dict(d)
                        stats[d["index"]] = stats[d["index"]].merge(st) if d["index"] in stats else st
                sources = [res["output"] for res in results]
                if index_g is not None:
                    t_plan = time.perf_counter()
                    planned = fanout.plan(store.artifacts.url, spec_dict, index_g, [r["index"] for r in results], num_shards)
                    stats[index_g] = stats[index_g].merge(StepStats(steps[index_g].name,
                                                                    seconds=time.perf_counter() - t_plan))
                    plan_ref = planned["plan"]
                    if planned["inspect"]:
                        artifacts[index_g] = planned["inspect"]
        finally:
            if own:
                fanout.close()

        def final_rows() -> Iterator[dict[str, Any]]:
            with tempfile.TemporaryDirectory(prefix="llmforge-final-") as tmp:
                for ref in sources:
                    with open(_local_file(ref, store, Path(tmp)), encoding="utf-8") as fh:
                        for line in fh:
                            row = json.loads(line)
                            row.pop(ID_FIELD, None)
                            yield row

        out = store.write_version(final_rows(), text_field=spec.text_field, parent=version_id, job_id=job_id,
                                  source={"pipeline": spec_dict},
                                  shard_rows=max(1, max(s["rows"] for s in version.shards)))
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


def _tracked(results: Iterator[dict[str, Any]], tasks: list[ShardTask], seg_i: int, n_segments: int, num_shards: int,
             done: int, total: int, progress: Progress | None) -> Iterator[dict[str, Any]]:
    for k, res in enumerate(results):
        if progress:
            progress(done + k + 1, total, f"segment {seg_i + 1}/{n_segments}, shard {tasks[k].shard + 1}/{num_shards}")
        yield res


def _keep_inspectables(store: DatasetStore, gdir: Path) -> dict[str, str]:
    """Global steps may leave JSONL files (e.g. dedup clusters) worth keeping: store them as artifacts."""
    return {p.stem: store.artifacts.put_file(p) for p in sorted(gdir.glob("*.jsonl"))}
