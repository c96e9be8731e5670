"""`llmforge up` as a user runs it: a real subprocess with MLflow, the API and a worker.

It starts and prints the admin key once, serves /healthz, runs a job that logs
to MLflow, stops cleanly on SIGTERM leaving no process behind, keeps jobs,
keys and MLflow runs across a restart, and refuses a port that is taken.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from services import free_port

pytestmark = pytest.mark.slow


class Up:
    def __init__(self, home: Path, port: int, mlflow_port: int, log: Path) -> None:
        self.log_path = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFORGE_")}
        env.update(LLMFORGE_HOME=str(home), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmforge", "up", "--port", str(port), "--mlflow-port", str(mlflow_port)],
            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_up(self, timeout: float = 180) -> str:
        deadline = time.time() + timeout
        while "Press Ctrl-C to stop." not in self.output():
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"llmforge up did not come up:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        return self.output()

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def terminate(self, timeout: float = 40) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            for p in self.descendants():
                p.kill()
            self.proc.kill()
            self.proc.wait(5)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_up_serves_runs_jobs_restarts_and_stops_cleanly(tmp_path: Path) -> None:
    home, port, mlflow_port = tmp_path / "home", free_port(), free_port()
    up = Up(home, port, mlflow_port, tmp_path / "up1.log")
    try:
        out = up.wait_up()
        keys = re.findall(r"\blf_[A-Za-z0-9_-]{40}\b", out)
        assert len(keys) == 1, out
        key = keys[0]
        key_file = home / "admin.key"
        assert key_file.read_text().strip() == key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert f"http://127.0.0.1:{port}/" in out

        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
            job = c.post("/api/v1/jobs", json={"kind": "noop", "spec": {"log_to_mlflow": True}}).json()
            deadline = time.time() + 60
            while (done := c.get(f"/api/v1/jobs/{job['id']}").json())["status"] in ("queued", "running"):
                assert time.time() < deadline, done
                time.sleep(0.2)
            assert done["status"] == "succeeded", done
            run_id = done["result"]["mlflow_run_id"]
            assert done["outputs"] == [f"mlflow_run:{run_id}"]

        import mlflow

        assert mlflow.MlflowClient(f"http://127.0.0.1:{mlflow_port}").get_run(run_id).info.status == "FINISHED"

        # every listener is on loopback
        family = psutil.Process(up.proc.pid)
        procs = [family] + up.descendants()
        for p in procs:
            for conn in p.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    assert conn.laddr.ip in ("127.0.0.1", "::1"), (p.cmdline(), conn)

        before = up.descendants()
        assert len(before) >= 3  # mlflow (+ its workers), api, worker (+ pool)
        assert up.terminate() == 0
        time.sleep(0.5)
        survivors = [p for p in before if _alive(p)]
        assert not survivors, [p.cmdline() for p in survivors]
    finally:
        up.cleanup()

    # restart: same data dir, same key, same job, same MLflow run; no new key printed
    up2 = Up(home, port, mlflow_port, tmp_path / "up2.log")
    try:
        out2 = up2.wait_up()
        assert not re.findall(r"\blf_[A-Za-z0-9_-]{40}\b", out2)
        assert "admin key: in" in out2
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as c:
            again = c.get(f"/api/v1/jobs/{job['id']}").json()
            assert again["status"] == "succeeded" and again["result"]["mlflow_run_id"] == run_id
        assert mlflow.MlflowClient(f"http://127.0.0.1:{mlflow_port}").get_run(run_id).info.run_id == run_id
        before = up2.descendants()
        assert up2.terminate() == 0
        time.sleep(0.5)
        assert not [p for p in before if _alive(p)]
    finally:
        up2.cleanup()


def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFORGE_")}
        env["LLMFORGE_HOME"] = str(tmp_path / "home")
        r = subprocess.run([sys.executable, "-m", "llmforge", "up", "--port", str(port), "--mlflow-port", str(free_port())],
                           env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr + r.stdout
    assert not (tmp_path / "home" / "admin.key").exists()  # refused before touching anything
