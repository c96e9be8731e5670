"""Shared fixtures: a fresh LLMFORGE_HOME per test, a migrated database, keys, an in-process API,
and real Celery workers started as subprocesses (never eager mode).

Backends: ``embedded`` (SQLite + kombu filesystem transport) always; the
distributed tests (``tests/platform/test_distributed.py``) use the local
PostgreSQL and Redis, skipping with a reason when they are unreachable unless
``LLMFORGE_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which turns that skip into
a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = Path(__file__).resolve().parent / "support"
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(SUPPORT))

FAST_JOB_ENV = {
    "LLMFORGE_LEASE_SECONDS": "3",
    "LLMFORGE_HEARTBEAT_SECONDS": "0.5",
    "LLMFORGE_REAPER_INTERVAL": "0.5",
    "LLMFORGE_REDISPATCH_AFTER": "5",
    "LLMFORGE_CANCEL_GRACE_SECONDS": "2",
    "LLMFORGE_EXTRA_TASK_MODULES": json.dumps(["fault_kinds"]),
}


def require_services() -> bool:
    return os.environ.get("LLMFORGE_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if require_services():
        pytest.fail(f"{reason} (LLMFORGE_REQUIRE_SERVICES=1, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture
def lf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for an isolated embedded stack under tmp_path; also applied to this process."""
    env = {"LLMFORGE_HOME": str(tmp_path / "home"), **FAST_JOB_ENV}
    for k in [k for k in os.environ if k.startswith("LLMFORGE_") and k != "LLMFORGE_REQUIRE_SERVICES"]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from llmforge.settings import get_settings

    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


@dataclass
class Stack:
    """An in-process API (TestClient) over a migrated database, plus handles to start workers."""

    settings: object
    env: dict[str, str]
    client: object
    admin_key: str
    tmp: Path

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def submit(self, kind: str, spec: dict | None = None, key: str | None = None, **extra) -> dict:
        r = self.client.post("/api/v1/jobs", json={"kind": kind, "spec": spec or {}, **extra}, headers=self.headers(key))
        assert r.status_code == 201, r.text
        return r.json()

    def job(self, job_id: str) -> dict:
        r = self.client.get(f"/api/v1/jobs/{job_id}", headers=self.headers())
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, statuses: set[str] | str, timeout: float = 30.0) -> dict:
        want = {statuses} if isinstance(statuses, str) else statuses
        deadline = time.time() + timeout
        job = self.job(job_id)
        while job["status"] not in want:
            if time.time() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s, wanted {want}: {job}")
            time.sleep(0.1)
            job = self.job(job_id)
        return job

    def create_key(self, name: str, projects: dict[str, str]) -> str:
        r = self.client.post("/api/v1/keys", json={"name": name, "projects": projects}, headers=self.headers())
        assert r.status_code == 201, r.text
        return r.json()["secret"]


def make_stack(env: dict[str, str], tmp: Path) -> Iterator[Stack]:
    from fastapi.testclient import TestClient

    from llmforge.app import create_app
    from llmforge.platform import auth
    from llmforge.platform.db import dispose_all, session_scope
    from llmforge.platform.migrate import upgrade
    from llmforge.settings import Settings

    settings = Settings()
    upgrade(settings.database_url)
    with session_scope(settings.database_url) as s:
        key = auth.bootstrap(s, settings.admin_key_file) or settings.admin_key_file.read_text().strip()
    with TestClient(create_app(settings)) as client:
        yield Stack(settings=settings, env=env, client=client, admin_key=key, tmp=tmp)
    dispose_all()


@pytest.fixture
def stack(lf_env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    yield from make_stack(lf_env, tmp_path)


class Worker:
    """A real `llmforge worker` subprocess in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 1) -> None:
        self.log_path = log_path
        full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")])}
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmforge", "worker", "--concurrency", str(concurrency), "--loglevel", "INFO"],
            env=full_env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=str(ROOT),
        )

    def wait_ready(self, timeout: float = 60.0) -> "Worker":
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            if b" ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def pool_children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        # pool children die with their parent (PR_SET_PDEATHSIG); reap any straggler in our group
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(env: dict[str, str], concurrency: int = 1, name: str | None = None) -> Worker:
        w = Worker(env, tmp_path / f"{name or 'worker'}-{len(workers)}.log", concurrency)
        workers.append(w)
        return w.wait_ready()

    yield start
    for w in workers:
        w.stop()


@pytest.fixture(scope="session")
def xquad() -> list[dict]:
    """XQuAD paragraphs as [{title, context, questions}]; skips when ../shared/data is absent."""
    path = SHARED_DATA / "xquad_en_dev.json"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data is absent)")
    try:  # FAISS, like torch, must not start more threads than the 2 cores here
        import faiss

        faiss.omp_set_num_threads(2)
    except ImportError:
        pass
    data = json.loads(path.read_text())
    return [{"title": art["title"], "context": p["context"], "questions": [q["question"] for q in p["qas"]]}
            for art in data["data"] for p in art["paragraphs"]]


def wait_until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    redis: object | None = None  # PrivateRedis when distributed


@pytest.fixture(params=["embedded", pytest.param("distributed", marks=pytest.mark.distributed)])
def backend(request: pytest.FixtureRequest, lf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """Each job test runs twice: SQLite + filesystem broker, and PostgreSQL + a private Redis."""
    if request.param == "embedded":
        yield Backend("embedded", lf_env)
        return
    from services import PgDatabase, PrivateRedis, reachable

    if not reachable("127.0.0.1", 5432):
        skip_or_fail("PostgreSQL is not reachable at 127.0.0.1:5432")
    try:
        redis = PrivateRedis()
    except RuntimeError as exc:
        skip_or_fail(str(exc))
    db = PgDatabase()
    env = {**lf_env, "LLMFORGE_DATABASE_URL": db.url, "LLMFORGE_BROKER_URL": redis.url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from llmforge.settings import get_settings

    get_settings.cache_clear()
    try:
        yield Backend("distributed", env, redis)
    finally:
        redis.stop()
        db.drop()


@pytest.fixture
def bstack(backend: Backend, tmp_path: Path) -> Iterator[Stack]:
    yield from make_stack(backend.env, tmp_path)
