"""Process supervision for ``llmforge up``: start, watch, restart and stop child services.

``llmforge up`` runs the API server (uvicorn), a Celery worker and ``mlflow server``
as child processes.  Each of those spawns processes of its own (uvicorn workers,
Celery prefork children, mlflow's job runner), and signalling only the direct child
leaves those orphaned.  So every child is started in its own session / process
group (``start_new_session=True``) and stopped by signalling the whole group:
SIGTERM, a grace period, then SIGKILL.  Descendants are also captured with psutil
*before* signalling, because a process that re-parents to init (or calls setsid)
is no longer reachable through the tree, and any of those still alive are killed too.

What it does not do: it is not a general init system -- no dependency ordering
beyond start order, no log rotation, no resource limits, and no supervision of
processes started outside it.  Linux is the target; the non-POSIX fallback only
signals the child and its psutil-visible descendants.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Callable, Sequence

import psutil

logger = logging.getLogger(__name__)

_POSIX = os.name == "posix"
_RESET_AFTER_S = 60.0  # a child that stayed up this long gets its restart backoff reset
_SIGKILL: int = getattr(signal, "SIGKILL", signal.SIGTERM)


@dataclass
class ChildSpec:
    """How to run one supervised child process."""

    name: str
    """Short unique name, used in logs, errors, ``pids()`` and ``status()``."""
    argv: list[str]
    """Command line; ``argv[0]`` is looked up on ``PATH``."""
    env: dict[str, str] | None = None
    """Extra environment variables layered over ``os.environ`` (None: inherit as is)."""
    cwd: str | None = None
    """Working directory (None: the supervisor's)."""
    log_path: str | None = None
    """File that stdout and stderr are appended to (None: inherit the supervisor's)."""
    restart: bool = True
    """Restart the child, with exponential backoff, when it exits unexpectedly."""
    ready_check: Callable[[], bool] | None = None
    """Probe polled by ``Supervisor.wait_ready`` (e.g. an HTTP check); None: ready once started."""


class ChildFailed(RuntimeError):
    """A child exited or did not become ready; ``name`` says which one."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


class _Child:
    def __init__(self, spec: ChildSpec, backoff: float) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.backoff = backoff
        self.restart_at: float | None = None
        self.state = "not started"


def _log_tail(path: str | None, lines: int = 20) -> str:
    if not path:
        return "(output not captured: no log_path)"
    try:
        with open(path, "rb") as fh:
            tail = deque(fh, maxlen=lines)
    except OSError as exc:
        return f"(cannot read log {path}: {exc})"
    return b"".join(tail).decode("utf-8", "replace").rstrip() or "(log is empty)"


def _alive(procs: Sequence[psutil.Process]) -> list[psutil.Process]:
    """The processes that still run (zombies count as gone: they hold nothing)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def _group_members(pgid: int) -> list[psutil.Process]:
    if not _POSIX:
        return []
    try:
        os.killpg(pgid, 0)  # cheap test first: is anything left in the group at all?
    except (ProcessLookupError, PermissionError):
        return []
    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except OSError:
            pass
    return _alive(members)


def _signal_all(pgid: int, procs: Sequence[psutil.Process], sig: int) -> None:
    if _POSIX:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


class Supervisor:
    """Runs a set of ``ChildSpec`` as supervised process groups; see the module docstring."""

    def __init__(self, specs: Sequence[ChildSpec], *, stop_timeout: float = 10.0,
                 restart_backoff: tuple[float, float] = (0.5, 30.0)) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self.stop_timeout = stop_timeout
        self.restart_backoff = restart_backoff
        self._children = [_Child(s, restart_backoff[0]) for s in specs]
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._signalled = False  # set by signal handlers; a plain flag is async-signal safe
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        """Start every child in its own process group; on failure stop those already started."""
        with self._lock:
            self._stop_event.clear()
            self._signalled = self._stopped = False
            try:
                for child in self._children:
                    self._spawn(child)
            except BaseException:
                self.stop()
                raise

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        env = {**os.environ, **spec.env} if spec.env is not None else None
        log = open(spec.log_path, "ab") if spec.log_path else None
        try:
            child.proc = subprocess.Popen(
                spec.argv, env=env, cwd=spec.cwd, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT if log else None,
                start_new_session=_POSIX,
                creationflags=0 if _POSIX else subprocess.CREATE_NEW_PROCESS_GROUP,  # type: ignore[attr-defined]
            )
        finally:
            if log:
                log.close()  # the child holds its own descriptor
        child.started_at, child.restart_at, child.state = time.monotonic(), None, "running"
        logger.info("started %s (pid %d): %s", spec.name, child.proc.pid, " ".join(spec.argv))

    def wait_ready(self, timeout: float) -> None:
        """Poll each child's ``ready_check`` until True; raise ``ChildFailed`` on exit or timeout."""
        deadline = time.monotonic() + timeout
        for child in self._children:
            name, proc = child.spec.name, child.proc
            if proc is None:
                raise ChildFailed(name, f"not running ({child.state})")
            while True:
                code = proc.poll()
                if code is not None:
                    raise ChildFailed(name, f"exited with code {code} before becoming ready; "
                                            f"last log lines:\n{_log_tail(child.spec.log_path)}")
                try:
                    if child.spec.ready_check is None or child.spec.ready_check():
                        break
                except Exception as exc:  # a probe that raises just means "not yet"
                    logger.debug("ready check of %s raised %r", name, exc)
                if time.monotonic() >= deadline:
                    raise ChildFailed(name, f"not ready after {timeout:g}s; "
                                            f"last log lines:\n{_log_tail(child.spec.log_path)}")
                time.sleep(0.1)

    def run_forever(self, poll_interval: float = 0.2) -> None:
        """Monitor and restart children until ``stop()`` or SIGINT/SIGTERM; then stop them all."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            def handler(signum: int, frame: FrameType | None) -> None:
                self._signalled = True
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        try:
            while not (self._stop_event.is_set() or self._signalled):
                self._check_children()
                self._stop_event.wait(poll_interval)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            self.stop()

    def _check_children(self) -> None:
        with self._lock:
            now = time.monotonic()
            for child in self._children:
                if self._stop_event.is_set() or self._signalled:
                    return
                proc, spec = child.proc, child.spec
                if proc is not None and (code := proc.poll()) is not None:
                    child.proc = None
                    # a crashed leader can leave its workers behind (holding ports): clear them
                    _signal_all(proc.pid, _group_members(proc.pid), _SIGKILL)
                    if not spec.restart:
                        child.state = f"exited ({code})"
                        logger.warning("%s (pid %d) exited with code %s; not restarting",
                                       spec.name, proc.pid, code)
                        continue
                    if now - child.started_at >= _RESET_AFTER_S:
                        child.backoff = self.restart_backoff[0]
                    child.restart_at = now + child.backoff
                    child.state = "restarting"
                    logger.warning("%s (pid %d) exited with code %s; restarting in %.1fs",
                                   spec.name, proc.pid, code, child.backoff)
                    child.backoff = min(child.backoff * 2, self.restart_backoff[1])
                if child.proc is None and child.restart_at is not None and now >= child.restart_at:
                    try:
                        self._spawn(child)
                    except OSError as exc:
                        child.restart_at = now + child.backoff
                        logger.error("restarting %s failed: %s", spec.name, exc)

    def stop(self) -> None:
        """Stop every child (reverse start order) and all its descendants; idempotent."""
        self._stop_event.set()
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            for child in reversed(self._children):
                child.restart_at = None
                if child.proc is not None:
                    self._stop_child(child, child.proc)
                    child.proc, child.state = None, "stopped"

    def _stop_child(self, child: _Child, proc: subprocess.Popen[bytes]) -> None:
        pgid = proc.pid  # == pid, thanks to start_new_session
        try:
            tracked = psutil.Process(proc.pid).children(recursive=True)  # before signalling
        except psutil.Error:
            tracked = []
        logger.info("stopping %s (pid %d, %d descendants)", child.spec.name, proc.pid, len(tracked))
        in_group = set(_group_members(pgid))
        outside = [p for p in tracked if p not in in_group]  # setsid'd: killpg misses them
        if not _POSIX:
            outside.append(psutil.Process(proc.pid))
        _signal_all(pgid, outside, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _alive(tracked) and not _group_members(pgid):
                return
            time.sleep(0.05)
        logger.warning("%s did not stop within %gs; sending SIGKILL", child.spec.name, self.stop_timeout)
        _signal_all(pgid, _alive(tracked) + _group_members(pgid), _SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("%s (pid %d) survived SIGKILL", child.spec.name, proc.pid)
        psutil.wait_procs(_alive(tracked), timeout=2)

    # -- introspection -------------------------------------------------------------
    def pids(self) -> dict[str, int]:
        """PIDs of the children currently running (or exited but not yet noticed)."""
        return {c.spec.name: c.proc.pid for c in self._children if c.proc is not None}

    def status(self) -> dict[str, str]:
        """Per child: "not started", "running", "restarting", "exited (<code>)" or "stopped"."""
        return {c.spec.name: c.state for c in self._children}

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def port_is_free(host: str, port: int) -> bool:
    """True if a server could bind (host, port) now. Uses SO_REUSEADDR like uvicorn does, so a
    port held only by TIME_WAIT connections of a stopped server reads as free (a restart works)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_http(url: str, timeout: float) -> bool:
    """Poll ``url`` until it answers with a 2xx/3xx status; False once ``timeout`` passes.

    At least one attempt is made, so ``wait_for_http(url, 0)`` is a one-shot ready_check.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(0.5, min(5.0, deadline - time.monotonic()))):
                return True
        except (OSError, http.client.HTTPException):  # URLError/HTTPError are OSErrors
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
