"""What a worker does with one delivery: claim → heartbeat → run the handler → finish.

Runs inside a Celery pool process. The handler runs on this thread; a
heartbeat thread renews the lease, flushes buffered logs and metrics in batches,
and watches for cancellation. If the lease is lost (the reaper gave the job to
another attempt) the handler's processes are stopped and its result discarded.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import threading
import time
import traceback

import psutil

from llmforge.platform.db import session_scope
from llmforge.platform.jobs import service
from llmforge.platform.jobs.context import JobCancelled, JobContext
from llmforge.platform.jobs.registry import get_kind
from llmforge.platform.models import Job, JobLog
from llmforge.settings import Settings

log = logging.getLogger(__name__)
FLUSH_EVERY = 0.5


class _JobLogHandler(logging.Handler):
    """Copies records logged on the handler's thread into the job's log."""

    def __init__(self, ctx: JobContext, thread_id: int) -> None:
        super().__init__(logging.INFO)
        self.ctx, self.thread_id = ctx, thread_id
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id and not record.name.startswith(("llmforge.platform", "celery", "kombu")):
            self.ctx.log(self.format(record))


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Last resort for a handler that ignores cancellation: raise inside its Python frames."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


class _Heartbeat(threading.Thread):
    def __init__(self, ctx: JobContext, token: str, settings: Settings, handler_thread: int) -> None:
        super().__init__(name=f"heartbeat-{ctx.job_id[:8]}", daemon=True)
        self.ctx, self.token, self.settings = ctx, token, settings
        self.handler_thread = handler_thread
        self.stopped = threading.Event()
        self.lost = False
        self.cancel_seen_at: float | None = None

    def run(self) -> None:
        last_beat = 0.0
        while not self.stopped.wait(FLUSH_EVERY):
            try:
                self.flush()
                if time.time() - last_beat >= self.settings.heartbeat_seconds:
                    last_beat = time.time()
                    self.beat()
            except Exception:  # a DB hiccup must not kill the heartbeat; the lease has slack
                log.exception("heartbeat for job %s failed; retrying", self.ctx.job_id)

    def flush(self) -> None:
        logs, metrics = self.ctx.drain()
        if logs or metrics:
            with session_scope(self.settings.database_url) as s:
                service.append_logs(s, self.ctx.job_id, self.ctx.attempt, logs)
                service.append_metrics(s, self.ctx.job_id, metrics)

    def beat(self) -> None:
        with session_scope(self.settings.database_url) as s:
            ours, cancel = service.heartbeat(s, self.ctx.job_id, self.token, self.settings.lease_seconds)
        if not ours and not self.lost:
            self.lost = True
            log.warning("job %s: lease lost; stopping this attempt", self.ctx.job_id)
            self._stop_job()
        elif cancel and self.cancel_seen_at is None:
            self.cancel_seen_at = time.time()
            self.ctx.log("[llmforge] cancel requested; stopping the job's processes")
            self._stop_job()
        elif self.cancel_seen_at and time.time() - self.cancel_seen_at > self.settings.cancel_grace_seconds:
            _raise_in_thread(self.handler_thread, JobCancelled)

    def _stop_job(self) -> None:
        threading.Thread(target=self._kill_tree, daemon=True).start()

    def _kill_tree(self) -> None:
        self.ctx.request_cancel(self.settings.cancel_grace_seconds)
        # anything the handler started outside ctx.popen (a library's helper process) goes too
        me = psutil.Process()
        for child in me.children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass


def execute(job_id: str, settings: Settings) -> str | None:
    """Run one delivery of ``job_id``. Returns the final status, or None for a no-op delivery."""
    worker = f"{socket.gethostname()}:{os.getppid()}"
    with session_scope(settings.database_url) as s:
        token = service.claim(s, job_id, worker=worker, pid=os.getpid(), lease_seconds=settings.lease_seconds)
    if token is None:
        log.info("job %s: not claimable (duplicate delivery, cancelled, or already running); ignored", job_id)
        return None
    with session_scope(settings.database_url) as s:
        job = s.get(Job, job_id)
        kind_name, spec_raw, project_id, attempt = job.kind, dict(job.spec), job.project_id, job.attempt
        s.add(JobLog(job_id=job_id, attempt=attempt, line=f"[llmforge] attempt {attempt} started on {worker} (pid {os.getpid()})"))

    ctx = JobContext(job_id=job_id, project_id=project_id, attempt=attempt, kind=kind_name)
    beat = _Heartbeat(ctx, token, settings, threading.get_ident())
    handler_log = _JobLogHandler(ctx, threading.get_ident())
    logging.getLogger().addHandler(handler_log)
    beat.start()
    status, result, error = "failed", None, None
    try:
        kind = get_kind(kind_name)
        spec = kind.validate(spec_raw)
        result = kind.handler(ctx, spec)
        if result is not None and not isinstance(result, dict):
            raise TypeError(f"job kind {kind_name!r} returned {type(result).__name__}; handlers return a dict or None")
        status = "cancelled" if ctx.cancelled else "succeeded"
    except JobCancelled:
        status, error = "cancelled", "cancelled while running"
    except BaseException as exc:  # noqa: BLE001 - a job's failure is data, not a worker crash
        if beat.cancel_seen_at is not None:
            status, error = "cancelled", "cancelled while running"
        else:
            error = f"{type(exc).__name__}: {exc}"
            ctx.log(traceback.format_exc())
    finally:
        beat.stopped.set()
        beat.join()
        logging.getLogger().removeHandler(handler_log)
    if beat.lost:
        ctx.log(f"[llmforge] attempt {attempt} lost its lease; its outcome ({status}) is discarded")
    ctx.log(f"[llmforge] attempt {attempt} finished: {status}" + (f" ({error})" if error else ""))
    beat.flush()
    with session_scope(settings.database_url) as s:
        done = service.finish(
            s, job_id, token, status=status, result=result, error=error, inputs=ctx.inputs, outputs=ctx.outputs
        )
    if not done:
        log.warning("job %s: attempt %s no longer owns the row; outcome %s discarded", job_id, attempt, status)
        return None
    return status
