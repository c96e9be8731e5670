"""A training job end to end: REST → real worker → tokenizer + pretraining → MLflow run with metrics
→ registered model version that loads back and generates; bad specs refused at submit."""

from __future__ import annotations

import json

import pytest

from conftest import SHARED_DATA, Stack

pytestmark = pytest.mark.slow
TRAINING = {"model": "llama-1m", "model_overrides": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2},
            "seq_len": 64, "batch_size": 8, "max_steps": 40, "warmup_steps": 5, "eval_every": 20,
            "eval_batches": 2, "checkpoint_every": 20, "precision": "fp32", "threads": 1, "lr": 3e-3}


def _corpus() -> bytes:
    if SHARED_DATA.exists():
        text = (SHARED_DATA / "tinyshakespeare.txt").read_text()[:60_000]
    else:
        text = "\n\n".join(f"line {i}: the quick brown fox jumps over the lazy dog {i % 13}" for i in range(2000))
    paras = [p for p in text.split("\n\n") if p.strip()]
    return "".join(json.dumps({"text": p}) + "\n" for p in paras).encode()


def test_pretrain_job_registers_a_loadable_model(stack: Stack, start_worker) -> None:
    ds = stack.client.post("/api/v1/datasets", json={"name": "plays"}, headers=stack.headers()).json()
    v = stack.client.post(f"/api/v1/datasets/{ds['id']}/versions/upload", headers=stack.headers(),
                          files={"file": ("plays.jsonl", _corpus(), "application/json")}).json()
    spec = {"dataset_id": ds["id"], "version": v["id"], "vocab_size": 400, "training": TRAINING}
    bad = stack.client.post("/api/v1/jobs", json={"kind": "train.pretrain", "spec": {**spec, "training": {
        **TRAINING, "model": "llama-7t"}}}, headers=stack.headers())
    assert bad.status_code == 422 and "unknown model preset 'llama-7t'" in bad.json()["error"]["message"]
    bad = stack.client.post("/api/v1/jobs", json={"kind": "train.pretrain", "spec": {**spec, "training": {
        **TRAINING, "learning_rate": 1}}}, headers=stack.headers())
    assert bad.status_code == 422 and "learning_rate" in bad.json()["error"]["message"]

    start_worker(stack.env)
    job = stack.submit("train.pretrain", spec)
    done = stack.wait(job["id"], {"succeeded", "failed"}, timeout=240)
    assert done["status"] == "succeeded", stack.client.get(f"/api/v1/jobs/{job['id']}/logs", headers=stack.headers()).text
    result = done["result"]
    assert result["steps"] == 40 and result["train_loss"] < 5.5  # ln(400) ≈ 6.0 at the start
    assert f"dataset_version:{v['id']}" in done["inputs"]
    assert f"model_version:{result['model_name']}/{result['model_version']}" in done["outputs"]

    series = stack.client.get(f"/api/v1/jobs/{job['id']}/metrics", headers=stack.headers()).json()["series"]
    assert len(series["loss"]) == 40 and "eval_loss" in series and "tokens_per_s" in series

    import mlflow
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    client = mlflow.MlflowClient(tracking_uri=stack.settings.mlflow_uri, registry_uri=stack.settings.mlflow_uri)
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["llmforge.dataset_version"] == v["id"]
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 40  # every metric arrived, batched
    mv = client.get_model_version(result["model_name"], result["model_version"])
    assert mv.tags["llmforge.job_id"] == job["id"] and mv.tags["llmforge.dataset_version"] == v["id"]
    mlflow.set_tracking_uri(stack.settings.mlflow_uri)
    mlflow.set_registry_uri(stack.settings.mlflow_uri)
    local = mlflow.artifacts.download_artifacts(f"models:/{result['model_name']}/{result['model_version']}")
    model = AutoModelForCausalLM.from_pretrained(local)
    tok = AutoTokenizer.from_pretrained(local)
    ids = tok("ROMEO:", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 5 and torch.isfinite(model(out).logits).all()
    assert "dataset `plays`" in open(f"{local}/README.md").read()
    # artifacts live under LLMFORGE_HOME, never in the process's working folder
    assert run.info.artifact_uri.startswith((stack.settings.home / "mlartifacts").as_uri())


def test_killed_worker_resumes_training_from_its_checkpoint(stack: Stack, start_worker) -> None:
    import os
    import signal
    import time

    ds = stack.client.post("/api/v1/datasets", json={"name": "plays2"}, headers=stack.headers()).json()
    v = stack.client.post(f"/api/v1/datasets/{ds['id']}/versions/upload", headers=stack.headers(),
                          files={"file": ("plays.jsonl", _corpus(), "application/json")}).json()
    training = {**TRAINING, "max_steps": 120, "checkpoint_every": 20}
    worker = start_worker(stack.env)
    job = stack.submit("train.pretrain", {"dataset_id": ds["id"], "version": v["id"], "vocab_size": 400,
                                          "training": training})
    deadline = time.time() + 120
    while True:  # wait until a checkpoint exists and training went past it
        series = stack.client.get(f"/api/v1/jobs/{job['id']}/metrics?key=loss", headers=stack.headers()).json()["series"]
        if len(series.get("loss", [])) >= 50:
            break
        assert time.time() < deadline, "training never got going"
        time.sleep(0.2)
    pid = stack.job(job["id"])
    from llmforge.platform.db import session_scope
    from llmforge.platform.models import Job

    with session_scope(stack.settings.database_url) as s:
        pool_pid = s.get(Job, job["id"]).worker_pid
    assert pool_pid in [p.pid for p in worker.pool_children()]
    os.kill(pool_pid, signal.SIGKILL)
    done = stack.wait(job["id"], {"succeeded", "failed"}, timeout=240)
    assert done["status"] == "succeeded" and done["attempt"] == 2, done
    assert done["result"]["steps"] == 120
    logs = stack.client.get(f"/api/v1/jobs/{job['id']}/logs", headers=stack.headers()).text
    resumed = [ln for ln in logs.splitlines() if "resumed from step" in ln]
    assert resumed and int(resumed[0].split("resumed from step ")[1].split()[0]) >= 40  # lost < one interval
    assert "reusing tokenizer" in logs
    assert pid["attempt"] == 1
