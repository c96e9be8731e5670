"""Built-in job kinds for tests, benchmarks and smoke checks: ``noop`` and ``sleep``.

``noop`` can also log a run to MLflow, which proves a worker reaches the
tracking server it was configured with (``llmforge up`` checks that path).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmforge.platform.jobs.context import JobContext
from llmforge.platform.jobs.registry import job_kind
from llmforge.settings import get_settings


class NoopSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: dict[str, Any] | None = None
    """Returned as the job's result unchanged."""
    fail: str | None = Field(default=None, max_length=1000)
    """If set, the job fails with this message (to exercise the failure path)."""
    log_to_mlflow: bool = False
    """Create an MLflow run (experiment 'llmforge-smoke') and record it as the job's output."""


@job_kind("noop", spec=NoopSpec)
def noop(ctx: JobContext, spec: NoopSpec) -> dict[str, Any] | None:
    """Does nothing, quickly: the unit of the job-latency benchmark."""
    if spec.fail:
        raise RuntimeError(spec.fail)
    if spec.log_to_mlflow:
        import mlflow

        settings = get_settings()
        client = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri)
        exp = client.get_experiment_by_name("llmforge-smoke")
        exp_id = exp.experiment_id if exp else client.create_experiment(
            "llmforge-smoke", artifact_location=settings.mlflow_artifact_location("llmforge-smoke"))
        run = client.create_run(exp_id, tags={"llmforge.job_id": ctx.job_id})
        client.log_metric(run.info.run_id, "noop", 1.0)
        client.set_terminated(run.info.run_id)
        ctx.add_output(f"mlflow_run:{run.info.run_id}")
        ctx.log(f"logged MLflow run {run.info.run_id}")
        return {**(spec.result or {}), "mlflow_run_id": run.info.run_id}
    return spec.result


class SleepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=86_400)
    """Total time to sleep."""
    steps: int = Field(default=10, ge=1, le=100_000)
    """Split the sleep into this many steps; each logs a line and a `progress` metric."""


@job_kind("sleep", spec=SleepSpec)
def sleep(ctx: JobContext, spec: SleepSpec) -> dict[str, Any]:
    """Sleeps in steps, logging and emitting metrics; cancellable at any moment."""
    for step in range(spec.steps):
        ctx.sleep(spec.seconds / spec.steps)
        ctx.metrics({"progress": (step + 1) / spec.steps, "step_seconds": spec.seconds / spec.steps}, step=step)
        ctx.log(f"step {step + 1}/{spec.steps}")
    return {"slept": spec.seconds}
