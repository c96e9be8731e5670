"""Tests for llmforge.platform.supervisor, using real child processes."""

from __future__ import annotations

import http.server
import logging
import os
import signal
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest

from llmforge.platform.supervisor import (
    ChildFailed,
    ChildSpec,
    Supervisor,
    port_is_free,
    wait_for_http,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX-only")

PY = sys.executable


def gone(pid: int) -> bool:
    """True if ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def read_pid(path: Path, timeout: float = 5.0) -> int:
    assert wait_until(lambda: path.exists() and path.read_text().strip() != "", timeout), path
    return int(path.read_text())


class Started(list[int]):
    """PIDs a test started, with psutil handles taken at once (so teardown is PID-reuse safe)."""

    def __init__(self) -> None:
        super().__init__()
        self.procs: list[psutil.Process] = []

    def add(self, *pids: int) -> None:
        for pid in pids:
            self.append(pid)
            try:
                self.procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def started() -> Iterator[Started]:
    """Processes a test started; any still alive at teardown are SIGKILLed (and only those)."""
    tracked = Started()
    yield tracked
    for p in tracked.procs:
        try:
            p.kill()  # psutil refuses if the PID now belongs to another process
        except psutil.Error:
            pass


@pytest.fixture
def supervisors() -> Iterator[list[Supervisor]]:
    """Supervisors created by a test; stopped at teardown whatever happened."""
    sups: list[Supervisor] = []
    yield sups
    for sup in sups:
        sup.stop()


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def write_pid_and_sleep(path: Path) -> str:
    return f"import os, time; open({str(path)!r}, 'w').write(str(os.getpid())); time.sleep(60)"


def run_in_thread(sup: Supervisor) -> threading.Thread:
    t = threading.Thread(target=sup.run_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return t


def test_stop_kills_children_and_grandchildren(tmp_path: Path, started: Started,
                                               supervisors: list[Supervisor]) -> None:
    gc_pid, escapee_pid = tmp_path / "gc.pid", tmp_path / "escapee.pid"
    parent = py(f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {write_pid_and_sleep(gc_pid)!r}])
        # a grandchild in its own session is outside the group: only psutil capture finds it
        subprocess.Popen([sys.executable, "-c", {write_pid_and_sleep(escapee_pid)!r}],
                         start_new_session=True)
        time.sleep(60)
    """)
    sup = Supervisor([ChildSpec("sleeper", py("import time; time.sleep(60)")),
                      ChildSpec("parent", parent)], stop_timeout=5)
    supervisors.append(sup)
    sup.start()
    pids = list(sup.pids().values())
    started.add(*pids)
    started.add(read_pid(gc_pid), read_pid(escapee_pid))
    assert sup.status() == {"sleeper": "running", "parent": "running"}
    t0 = time.monotonic()
    sup.stop()
    assert time.monotonic() - t0 < 4  # all of them honour SIGTERM: no waiting for SIGKILL
    assert wait_until(lambda: all(gone(pid) for pid in started), 3), \
        {pid: gone(pid) for pid in started}
    assert sup.pids() == {}
    assert sup.status() == {"sleeper": "stopped", "parent": "stopped"}
    sup.stop()  # idempotent


def test_child_ignoring_sigterm_is_killed_after_timeout(tmp_path: Path, started: Started,
                                                        supervisors: list[Supervisor]) -> None:
    ready = tmp_path / "ready"
    code = f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """
    sup = Supervisor([ChildSpec("stubborn", py(code), ready_check=ready.exists)], stop_timeout=1)
    supervisors.append(sup)
    sup.start()
    started.add(*sup.pids().values())
    sup.wait_ready(5)
    t0 = time.monotonic()
    sup.stop()
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 4, elapsed
    assert all(gone(pid) for pid in started)


def test_exited_child_is_restarted(tmp_path: Path, started: Started,
                                   supervisors: list[Supervisor],
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llmforge.platform.supervisor")
    sup = Supervisor([ChildSpec("flaky", py("import sys, time; time.sleep(0.2); sys.exit(3)"))],
                     restart_backoff=(0.05, 0.2), stop_timeout=2)
    supervisors.append(sup)
    sup.start()
    first = sup.pids()["flaky"]
    started.add(first)
    thread = run_in_thread(sup)
    assert wait_until(lambda: sup.pids().get("flaky", first) != first, 5)
    started.add(sup.pids()["flaky"])
    assert any("flaky" in r.getMessage() and "restarting" in r.getMessage() for r in caplog.records)
    sup.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_exited_child_is_not_restarted_without_restart(supervisors: list[Supervisor],
                                                       started: Started) -> None:
    sup = Supervisor([ChildSpec("oneshot", py("import sys; sys.exit(4)"), restart=False),
                      ChildSpec("steady", py("import time; time.sleep(60)"))],
                     restart_backoff=(0.05, 0.2), stop_timeout=2)
    supervisors.append(sup)
    sup.start()
    started.add(*sup.pids().values())
    thread = run_in_thread(sup)
    assert wait_until(lambda: sup.status()["oneshot"] == "exited (4)", 5), sup.status()
    time.sleep(0.5)  # several monitor rounds: still no restart
    assert sup.status()["oneshot"] == "exited (4)"
    assert "oneshot" not in sup.pids() and sup.status()["steady"] == "running"
    sup.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_wait_ready_reports_failed_child_with_log_tail(tmp_path: Path, started: Started,
                                                       supervisors: list[Supervisor]) -> None:
    log = tmp_path / "broken.log"
    code = "import sys; print('starting up'); sys.exit('boom: database unreachable')"
    sup = Supervisor([ChildSpec("broken", py(code), log_path=str(log), restart=False,
                                ready_check=lambda: False)])
    supervisors.append(sup)
    sup.start()
    started.add(*sup.pids().values())
    with pytest.raises(ChildFailed) as info:
        sup.wait_ready(10)
    assert info.value.name == "broken"
    assert "broken" in str(info.value) and "code 1" in str(info.value)
    assert "boom: database unreachable" in str(info.value)
    assert "starting up" in str(info.value)


def test_wait_ready_times_out_and_succeeds(tmp_path: Path, started: Started,
                                           supervisors: list[Supervisor]) -> None:
    flag = tmp_path / "flag"
    sup = Supervisor([ChildSpec("slow", py("import time; time.sleep(60)"), ready_check=flag.exists)],
                     stop_timeout=2)
    supervisors.append(sup)
    sup.start()
    started.add(*sup.pids().values())
    with pytest.raises(ChildFailed, match=r"slow: not ready after 0.3s"):
        sup.wait_ready(0.3)
    flag.touch()
    sup.wait_ready(2)


def test_run_forever_returns_promptly_on_stop(started: Started) -> None:
    with Supervisor([ChildSpec("idle", py("import time; time.sleep(60)"))], stop_timeout=2) as sup:
        started.add(*sup.pids().values())
        thread = run_in_thread(sup)
        time.sleep(0.2)
        t0 = time.monotonic()
        sup.stop()
        thread.join(5)
        assert not thread.is_alive() and time.monotonic() - t0 < 2
    assert all(gone(pid) for pid in started)


def test_run_forever_stops_on_sigterm_and_restores_handler(started: Started,
                                                           supervisors: list[Supervisor]) -> None:
    sup = Supervisor([ChildSpec("idle", py("import time; time.sleep(60)"))], stop_timeout=2)
    supervisors.append(sup)
    sup.start()
    started.add(*sup.pids().values())
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    t0 = time.monotonic()
    sup.run_forever(poll_interval=0.05)  # main thread: installs (and then restores) handlers
    timer.join()
    assert time.monotonic() - t0 < 3
    assert signal.getsignal(signal.SIGTERM) is before
    assert all(gone(pid) for pid in started)


def test_port_is_free() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    assert not port_is_free("127.0.0.1", port)
    sock.close()
    assert port_is_free("127.0.0.1", port)


def test_wait_for_http() -> None:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert wait_for_http(f"{base}/health", 2)
        assert not wait_for_http(f"{base}/down", 0.3)
    finally:
        server.shutdown()
        server.server_close()
    assert not wait_for_http(f"{base}/health", 0.3)
