"""Job kinds of training: ``train.pretrain`` turns a dataset version into a registered model version.

One job: train a BPE tokenizer on the version, pack its tokens, pretrain, track
everything in an MLflow run, and register the final HF-format model as a new
version of an MLflow registered model, tagged with its lineage. The work folder
is ``$LLMFORGE_HOME/runs/<job id>``, so a delivery after a dead worker finds the
tokenizer, the tokens and the latest checkpoint there and resumes where it
stopped (and keeps logging to the same MLflow run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from llmforge.data_pipeline.datasets import DatasetStore
from llmforge.errors import NotFound
from llmforge.platform.db import session_scope
from llmforge.platform.jobs import JobContext, job_kind
from llmforge.platform.models import Dataset, DatasetVersionRow
from llmforge.settings import get_settings
from llmforge.training.config import PRESETS, ModelConfig
from llmforge.training.tokenizer import TokenizerConfig


class PretrainJobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: str
    version: str = Field(pattern=r"^[0-9a-f]{64}$")
    vocab_size: int = Field(default=8192, ge=300, le=262_144)
    """Tokenizer vocabulary (byte-level BPE trained on the same version)."""
    training: dict[str, Any] = Field(default_factory=dict)
    """PretrainConfig fields: model, model_overrides, seq_len, batch_size, max_steps, lr, ... ."""
    register_as: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    """MLflow registered model name; default ``<project>-<dataset name>-lm``."""

    @field_validator("training")
    @classmethod
    def _valid_training(cls, v: dict[str, Any]) -> dict[str, Any]:
        from llmforge.training.recipes.pretrain import PretrainConfig  # imports torch: only when needed

        try:
            cfg = PretrainConfig(**v)
        except TypeError as exc:
            raise ValueError(f"unknown training field: {exc}") from None
        if cfg.model not in PRESETS:
            raise ValueError(f"unknown model preset {cfg.model!r}; choose one of {', '.join(PRESETS)}")
        mcfg = ModelConfig.from_name(cfg.model, **cfg.model_overrides)
        if cfg.seq_len > 8 * mcfg.max_seq_len:
            raise ValueError(f"seq_len {cfg.seq_len} is far beyond the model's context ({mcfg.max_seq_len})")
        return v


def _check_version(project_id: str, dataset_id: str, version: str) -> Dataset:
    with session_scope(get_settings().database_url) as s:
        ds = s.get(Dataset, dataset_id)
        if ds is None or ds.project_id != project_id:
            raise NotFound(f"dataset {dataset_id} not found in this job's project")
        if s.scalar(select(DatasetVersionRow.id).where(DatasetVersionRow.dataset_id == ds.id,
                                                       DatasetVersionRow.digest == version)) is None:
            raise NotFound(f"version {version} is not a version of dataset {ds.name}")
        s.expunge(ds)
        return ds


@job_kind("train.pretrain", spec=PretrainJobSpec)
def pretrain_job(ctx: JobContext, spec: PretrainJobSpec) -> dict[str, Any]:
    """Tokenizer + pretraining on a dataset version, tracked in MLflow, registered as a model version."""
    import mlflow

    from llmforge.training.data import META_FILE, prepare_dataset
    from llmforge.training.recipes.pretrain import PretrainConfig, pretrain
    from llmforge.training.tokenizer import train_from_dataset
    from llmforge.training.tracking import BatchedMetrics

    settings = get_settings()
    ds = _check_version(ctx.project_id, spec.dataset_id, spec.version)
    store = DatasetStore.from_settings()
    work = settings.home / "runs" / ctx.job_id
    work.mkdir(parents=True, exist_ok=True)
    ctx.add_input(f"dataset_version:{spec.version}")

    tok_dir = work / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        tok = json.loads((work / "tokenizer.summary.json").read_text())
        ctx.log(f"reusing tokenizer {tok['tokenizer_id'][:19]} from an earlier attempt")
    else:
        ctx.log(f"training a {spec.vocab_size}-token BPE tokenizer on {spec.version[:12]}")
        tok = train_from_dataset(store, spec.version, TokenizerConfig(vocab_size=spec.vocab_size), tok_dir)
        (work / "tokenizer.summary.json").write_text(json.dumps(tok))
    data_dir = work / "tokens"
    if not (data_dir / META_FILE).exists():
        meta = prepare_dataset(store, spec.version, tok_dir, data_dir)
        ctx.log(f"packed {meta.get('train_tokens', '?')} training tokens")
    ctx.check_cancelled()

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    project_name = _project_name(ctx.project_id)
    run_file = work / "mlflow_run_id"
    if run_file.exists():
        run_id = run_file.read_text().strip()
        client.update_run(run_id, status="RUNNING")
    else:
        exp_name = f"llmforge/{project_name}"
        exp = client.get_experiment_by_name(exp_name)
        exp_id = exp.experiment_id if exp else client.create_experiment(
            exp_name, artifact_location=settings.mlflow_artifact_location(exp_name))
        run = client.create_run(exp_id, run_name=f"pretrain-{ctx.job_id[:8]}", tags={
            "llmforge.job_id": ctx.job_id, "llmforge.project": project_name,
            "llmforge.dataset_version": spec.version, "llmforge.dataset": ds.name,
            "llmforge.tokenizer_id": tok["tokenizer_id"], "llmforge.code_version": _code_version()})
        run_id = run.info.run_id
        cfg_all = {"vocab_size": spec.vocab_size, **spec.training}
        client.log_batch(run_id, params=[mlflow.entities.Param(k, str(v)[:6000]) for k, v in cfg_all.items()])
        client.log_text(run_id, json.dumps({"job": ctx.job_id, "spec": spec.model_dump()}, indent=2), "llmforge/config.json")
        run_file.write_text(run_id)
    ctx.add_output(f"mlflow_run:{run_id}")
    sink = BatchedMetrics(client, run_id)

    def on_metrics(step: int, values: dict[str, float]) -> None:
        ctx.metrics(values, step=step)
        sink.log(step, values)

    cfg = PretrainConfig(**{"threads": None, **spec.training})
    try:
        summary = pretrain(cfg, data_dir / "train.npy", data_dir / "val.npy", work / "run",
                           on_metrics=on_metrics, should_stop=lambda: ctx.cancelled)
    except BaseException:
        sink.close()
        client.set_terminated(run_id, status="FAILED")
        raise
    sink.close()
    if summary["steps_this_run"] < summary["steps"]:
        ctx.log(f"resumed from step {summary['steps'] - summary['steps_this_run']} of an earlier attempt")
    if summary["status"] == "stopped":
        client.set_terminated(run_id, status="KILLED")
        ctx.check_cancelled()
    model_dir = Path(summary["model_dir"])
    for f in tok_dir.iterdir():  # the model directory carries its tokenizer, so it loads on its own
        if f.is_file():
            (model_dir / f.name).write_bytes(f.read_bytes())
    (model_dir / "README.md").write_text(_model_card(ds.name, spec, tok, summary, ctx.job_id))
    client.log_artifacts(run_id, str(model_dir), "model")
    client.set_terminated(run_id, status="FINISHED")

    name = spec.register_as or f"{project_name}-{ds.name}-lm"
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, tags={"llmforge.project": project_name})
    mv = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id, tags={
        "llmforge.job_id": ctx.job_id, "llmforge.dataset_version": spec.version,
        "llmforge.tokenizer_id": tok["tokenizer_id"], "llmforge.project": project_name})
    ctx.add_output(f"model_version:{name}/{mv.version}")
    ctx.log(f"registered {name} version {mv.version} from run {run_id}")
    return {**{k: summary[k] for k in ("steps", "tokens", "seconds", "train_loss", "eval_loss", "status")},
            "mlflow_run_id": run_id, "model_name": name, "model_version": mv.version,
            "tokenizer_id": tok["tokenizer_id"]}


def _project_name(project_id: str) -> str:
    from llmforge.platform.models import Project

    with session_scope(get_settings().database_url) as s:
        return s.get(Project, project_id).name


def _code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"llmforge {version('llmforge')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "llmforge (source)"


def _model_card(dataset: str, spec: PretrainJobSpec, tok: dict, summary: dict, job_id: str) -> str:
    eval_loss = "n/a" if summary.get("eval_loss") is None else f"{summary['eval_loss']:.4f}"
    return (f"# {spec.register_as or dataset + '-lm'}\n\nA Llama-style causal LM pretrained by llmforge.\n\n"
            f"- data: dataset `{dataset}`, version `{spec.version}`\n- tokenizer: `{tok['tokenizer_id']}` "
            f"(byte-level BPE, vocab {tok['vocab_size']})\n- training job: `{job_id}`\n"
            f"- steps: {summary['steps']}, tokens: {summary['tokens']}\n"
            f"- final train loss {summary['train_loss']:.4f}, eval loss {eval_loss}\n\n"
            f"Config:\n\n```json\n{json.dumps(spec.training, indent=2)}\n```\n")
