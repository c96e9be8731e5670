"""What a job handler sees: a small object with logs, metrics, lineage, cancellation and subprocesses.

The handler never touches the database: it appends to in-memory buffers and
the runner's heartbeat thread flushes them in batches off the handler's path
(a synchronous write per log line or metric would cost milliseconds per step).
Subprocesses started with :meth:`JobContext.popen` run in their own process
group with ``PR_SET_PDEATHSIG``, so a cancel, or the death of the worker, takes
down the whole process tree (torchrun and its ranks included).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

from llmforge.lineage import Ref

_PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a handler when its job was cancelled; the runner records 'cancelled', not 'failed'."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: fall back to process-group cleanup only
        pass


class JobContext:
    def __init__(self, *, job_id: str, project_id: str, attempt: int, kind: str) -> None:
        self.job_id = job_id
        self.project_id = project_id
        self.attempt = attempt
        self.kind = kind
        self._lock = threading.Lock()
        self._logs: list[tuple[float, str]] = []
        self._metrics: list[tuple[str, int, float, float]] = []
        self._steps: dict[str, int] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self._cancel = threading.Event()
        self._procs: list[subprocess.Popen] = []

    # --- logs and metrics -------------------------------------------------------
    def log(self, message: str) -> None:
        t = time.time()
        with self._lock:
            for line in str(message).splitlines() or [""]:
                self._logs.append((t, line))

    def metric(self, key: str, value: float, step: int | None = None) -> None:
        self.metrics({key: value}, step)

    def metrics(self, values: dict[str, float], step: int | None = None) -> None:
        t = time.time()
        with self._lock:
            for key, value in values.items():
                s = step if step is not None else self._steps.get(key, -1) + 1
                self._steps[key] = s
                self._metrics.append((key, s, float(value), t))

    def drain(self) -> tuple[list[tuple[float, str]], list[tuple[str, int, float, float]]]:
        """Take what was buffered since the last drain (the runner calls this)."""
        with self._lock:
            logs, metrics = self._logs, self._metrics
            self._logs, self._metrics = [], []
        return logs, metrics

    # --- lineage ----------------------------------------------------------------
    def add_input(self, ref: Ref | str) -> None:
        self.inputs.append(str(ref if isinstance(ref, Ref) else Ref.parse(ref)))

    def add_output(self, ref: Ref | str) -> None:
        self.outputs.append(str(ref if isinstance(ref, Ref) else Ref.parse(ref)))

    # --- cancellation -----------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def sleep(self, seconds: float) -> None:
        """Sleep that wakes up (and raises JobCancelled) the moment the job is cancelled."""
        if self._cancel.wait(seconds):
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def request_cancel(self, grace: float) -> None:
        """Stop the job's process tree: SIGTERM each group, SIGKILL after ``grace`` seconds."""
        self._cancel.set()
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.time() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(p, signal.SIGKILL)

    # --- subprocesses -----------------------------------------------------------
    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.Popen:
        """Start a subprocess whose output goes to the job's log and which dies with the job."""
        self.check_cancelled()
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            text=True,
            bufsize=1,
        )
        with self._lock:
            self._procs.append(proc)
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()
        return proc

    def run(self, argv: Sequence[str], **kwargs: Any) -> int:
        """Run a subprocess to completion; raise on a non-zero exit (JobCancelled if we killed it)."""
        proc = self.popen(argv, **kwargs)
        code = proc.wait()
        self.check_cancelled()
        if code != 0:
            raise RuntimeError(f"command {argv[0]!r} exited with status {code}")
        return code

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log(line.rstrip("\n"))


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is not None and sig != signal.SIGKILL:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
