"""The Celery side: one app per broker URL, one task (``llmforge.run_job``), two named queues.

The broker only carries "job <id> is ready" messages; the job row owns
delivery (see ``jobs/service.py``), so the app acknowledges early, keeps no
results and never retries on its own. Embedded mode uses kombu's
``filesystem://`` transport under ``$LLMFORGE_HOME/broker`` with a short
polling interval (kombu's 1 s default would put a 1 s floor under every job);
distributed mode is any broker URL (Redis is tested). The embedded transport is
our subclass of kombu's (``fs_transport.py``), which writes and claims message
files atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

from celery import Celery, signals

from llmforge.errors import Unavailable
from llmforge.settings import Settings

log = logging.getLogger(__name__)
QUEUES = ("cpu", "gpu")
TASK_NAME = "llmforge.run_job"


def _transport_options(settings: Settings) -> dict:
    if settings.embedded_broker:
        folder = settings.broker_dir / "queue"
        folder.mkdir(parents=True, exist_ok=True)
        (settings.broker_dir / "control").mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            "polling_interval": settings.broker_poll_interval,
        }
    return {"visibility_timeout": 3600, "socket_connect_timeout": 2, "socket_timeout": 5}


@lru_cache(maxsize=4)
def _app(broker_url: str, settings_json: str, include: tuple[str, ...]) -> Celery:
    settings = Settings.model_validate_json(settings_json)
    app = Celery("llmforge", broker=broker_url, include=list(include))
    if settings.embedded_broker:
        app.conf.broker_transport = "llmforge.platform.fs_transport:Transport"
    app.conf.update(
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=False,  # the job row owns redelivery, not the broker
        worker_prefetch_multiplier=1,
        task_default_queue="cpu",
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=not settings.embedded_broker,
        broker_heartbeat=0,
    )

    @app.task(name=TASK_NAME, ignore_result=True)
    def run_job(job_id: str) -> None:
        from llmforge.platform.jobs.runner import execute

        execute(job_id, settings)

    return app


def get_celery(settings: Settings, include: Sequence[str] = ()) -> Celery:
    return _app(settings.broker_url, settings.model_dump_json(), tuple(include))


def publish(settings: Settings, job_id: str, queue: str) -> None:
    """Send one "run this job" message; raises Unavailable when the broker cannot take it."""
    app = get_celery(settings)
    try:
        app.send_task(
            TASK_NAME,
            args=(job_id,),
            queue=queue,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        )
    except Exception as exc:  # kombu raises a zoo of connection errors
        raise Unavailable(f"job broker unreachable ({type(exc).__name__}: {exc}); the job stays queued and is re-sent") from exc


@signals.worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    """Pool processes: drop inherited DB connections and die with the worker's main process."""
    import ctypes
    import signal

    from llmforge.platform.db import dispose_after_fork

    dispose_after_fork()
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphaned pool children
    except OSError:
        pass
