"""``llmforge up`` (the whole local stack), ``llmforge api`` and ``llmforge worker`` (its parts)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from llmforge.cli.output import console, fail
from llmforge.settings import get_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _warn_if_exposed(host: str) -> None:
    if host not in LOOPBACK:
        console.print(f"[yellow]warning:[/yellow] listening on {host}: reachable from other machines. "
                      "Every route needs an API key; put TLS in front of it.")


def _prepare(host: str | None, port: int | None) -> None:
    if host:
        os.environ["LLMFORGE_HOST"] = host
    if port:
        os.environ["LLMFORGE_PORT"] = str(port)
    get_settings.cache_clear()


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1; LLMFORGE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000; LLMFORGE_PORT).")] = None,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations first.")] = True,
) -> None:
    """Run the control-plane API alone (what `up` and docker-compose start)."""
    import uvicorn

    from llmforge.app import create_app
    from llmforge.platform.migrate import upgrade
    from llmforge.platform.supervisor import port_is_free

    _prepare(host, port)
    s = get_settings()
    if not port_is_free(s.host, s.port):
        fail(f"port {s.port} on {s.host} is already in use; stop what holds it or pass --port")
    _warn_if_exposed(s.host)
    if migrate:
        upgrade(s.database_url)
    uvicorn.run(create_app(s), host=s.host, port=s.port, log_level="info", access_log=False,
                timeout_graceful_shutdown=5)


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume: cpu, gpu.")] = "cpu,gpu",
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once by this worker (one process each).")] = 1,
    name: Annotated[str | None, typer.Option(help="Worker name (default worker-<pid>@<host>).")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Join the job queue as a Celery worker, on this machine or any other that reaches the broker and database."""
    from llmforge.app import worker_celery
    from llmforge.platform.queue import QUEUES

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if not wanted or unknown:
        fail(f"unknown queue(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(QUEUES)}")
    # Oversubscribed BLAS/OpenMP threads turn microsecond kernels into milliseconds: give each
    # concurrent job an equal share of the cores unless the operator chose otherwise.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // concurrency)))
    s = get_settings()
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = worker_celery(s)
    w = app.Worker(
        queues=wanted, concurrency=concurrency, hostname=name or f"worker-{os.getpid()}@%h", pool_cls="prefork",
        loglevel=loglevel.upper(), without_gossip=True, without_mingle=True, without_heartbeat=True,
    )
    w.start()
    # a fatal error (broker gone for good, a crash in the consumer) must not look like a clean stop
    raise SystemExit(w.exitcode or 0)


def up(
    host: Annotated[str | None, typer.Option(help="API bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="API port (default 8000).")] = None,
    mlflow_port: Annotated[int | None, typer.Option(help="Embedded MLflow port (default 5001, loopback only).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs the local worker runs at once.")] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every part to become ready.")] = 120.0,
) -> None:
    """Start the local stack: API, one worker and MLflow as supervised processes. Ctrl-C stops everything."""
    from llmforge.platform import auth
    from llmforge.platform.db import session_scope
    from llmforge.platform.migrate import upgrade
    from llmforge.platform.supervisor import ChildFailed, ChildSpec, Supervisor, port_is_free, wait_for_http

    _prepare(host, port)
    if mlflow_port:
        os.environ["LLMFORGE_MLFLOW_PORT"] = str(mlflow_port)
        get_settings.cache_clear()
    s = get_settings()
    own_mlflow = "LLMFORGE_MLFLOW_URI" not in os.environ
    if not port_is_free(s.host, s.port):
        fail(f"port {s.port} on {s.host} is already in use (another 'llmforge up'?); stop it or pass --port")
    if own_mlflow and not port_is_free("127.0.0.1", s.mlflow_port):
        fail(f"port {s.mlflow_port} for MLflow is already in use; pass --mlflow-port or set LLMFORGE_MLFLOW_URI")
    _warn_if_exposed(s.host)
    s.home.mkdir(parents=True, exist_ok=True)
    s.log_dir.mkdir(parents=True, exist_ok=True)
    upgrade(s.database_url)
    with session_scope(s.database_url) as session:
        secret = auth.bootstrap(session, s.admin_key_file)

    env = {"LLMFORGE_HOME": str(s.home), "PYTHONUNBUFFERED": "1"}
    specs = []
    if own_mlflow:
        mlflow_uri = f"http://127.0.0.1:{s.mlflow_port}"
        env["LLMFORGE_MLFLOW_URI"] = mlflow_uri
        specs.append(ChildSpec(
            name="mlflow",
            argv=[sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(s.mlflow_port),
                  "--workers", "1", "--backend-store-uri", f"sqlite:///{s.home / 'mlflow.db'}",
                  "--artifacts-destination", str(s.home / "mlartifacts")],
            env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            log_path=str(s.log_dir / "mlflow.log"),
            ready_check=lambda: wait_for_http(f"{mlflow_uri}/health", 0),
        ))
    else:
        mlflow_uri = s.mlflow_uri
    api_url = f"http://{'127.0.0.1' if s.host in ('0.0.0.0', '::') else s.host}:{s.port}"
    specs.append(ChildSpec(
        name="api", argv=[sys.executable, "-m", "llmforge", "api", "--host", s.host, "--port", str(s.port), "--no-migrate"],
        env=env, log_path=str(s.log_dir / "api.log"), ready_check=lambda: wait_for_http(f"{api_url}/healthz", 0),
    ))
    specs.append(ChildSpec(
        name="worker", argv=[sys.executable, "-m", "llmforge", "worker", "--concurrency", str(concurrency)],
        env=env, log_path=str(s.log_dir / "worker.log"),
    ))
    console.print(f"llmforge: starting {', '.join(sp.name for sp in specs)} (logs in {s.log_dir})")
    sup = Supervisor(specs, stop_timeout=10.0)
    sup.start()
    try:
        sup.wait_ready(timeout)
    except ChildFailed as exc:
        sup.stop()
        fail(f"{exc}")
    console.print(f"[green]llmforge is up[/green]\n  console  {api_url}/\n  API      {api_url}/api/v1  (OpenAPI: {api_url}/api/v1/openapi.json)"
                  f"\n  MLflow   {mlflow_uri}\n  data     {s.home}")
    if secret:
        console.print(f"\n  admin API key (shown once; also saved to {s.admin_key_file}, mode 0600):\n  [bold]{secret}[/bold]\n")
    else:
        console.print(f"  admin key: in {s.admin_key_file}")
    console.print("Press Ctrl-C to stop.")
    sys.stdout.flush()
    sup.run_forever()
    console.print("llmforge: stopped")
