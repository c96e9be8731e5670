#!/usr/bin/env python
"""Q1, job submit-to-running latency and throughput, llmforge vs raw Celery on the same broker.

Ours: a real ``llmforge api`` and ``llmforge worker --concurrency 1`` as
subprocesses over an isolated ``LLMFORGE_HOME`` (SQLite), once with the
embedded broker (kombu ``filesystem://``) and once with a private
``redis-server`` (optionally also PostgreSQL: ``--postgres``). A client
(``httpx.Client``, keep-alive) submits ``noop`` jobs with ``POST /api/v1/jobs``
N at a fixed 20 ms spacing, taking the wall clock just before each POST;
submit-to-running = the job's ``started_at`` (read back with
``GET /api/v1/jobs/{id}``) minus that time. Then M jobs back to back: jobs/s
= M / (last ``finished_at`` - first submit).

Peer: raw Celery with the same broker URL and the same app configuration
(copied from ``llmforge.platform.queue.get_celery``; for the embedded broker
that includes the transport options and ``polling_interval``), a ``noop`` task
that writes ``time.time()`` at its start, ``apply_async(args=(t_submit,))`` at
the same spacing, worker ``celery -A jobs worker -P prefork -c 1
--without-gossip --without-mingle --without-heartbeat`` (and ``-P solo``).

The embedded broker gets a second latency pass at 60 ms spacing (``*_sparse``
figures): kombu's virtual transports sleep ``polling_interval`` whenever the
channel cannot take a message, which with prefetch 1 is after every delivery,
so one worker drains at most ~1/poll-interval jobs/s (~49/s at 0.02 s) and the
20 ms pass sits right at that ceiling (its figures include queueing, on both
sides alike).

Ours and the peer run one after the other (A B A B), never at the same time,
per broker and repetition; every figure is the median over repetitions.
``overhead_vs_celery`` = our Redis p50 / raw Celery (prefork) Redis p50.

To say where our time goes, the run also reads the job rows (``created_at``,
``published_at``, ``started_at``, ``finished_at``) and a ``task_prerun`` probe in our worker
(this module, loaded through ``LLMFORGE_EXTRA_TASK_MODULES``; ``--no-probe``
leaves it out), and times the POST round trip on the client.

    python bench/jobs.py --quick --out /tmp/jobs_quick.json   # < 1 min
    python bench/jobs.py --out bench/results/jobs.json        # full: 200 jobs, 3 reps

This file is also the Celery app of the peer worker and the probe module of
our worker: both import it as ``jobs`` with ``bench/`` on ``PYTHONPATH``, and
only the environment variables below make it do anything on import.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

PEER_ENV = "BENCH_JOBS_PEER"  # JSON {"broker_url", "conf", "results"}: this module is the raw-Celery app
PROBE_ENV = "BENCH_JOBS_PROBE"  # file: our worker appends "<job id> <time>" at task_prerun
PEER_TASK = "bench.noop"
OUR_TASK = "llmforge.run_job"


# --- what runs inside the worker subprocesses ------------------------------------
def make_peer_app(cfg: dict):
    """The raw-Celery side: one app on the given broker, one task that records when it starts."""
    from celery import Celery

    app = Celery("bench_jobs_peer", broker=cfg["broker_url"])
    app.conf.update(cfg["conf"])
    results = cfg.get("results")

    @app.task(name=PEER_TASK, ignore_result=True)
    def noop(t_submit: float) -> None:
        t = time.time()
        with open(results, "a") as fh:
            fh.write(f"{t_submit!r} {t!r}\n")

    return app, noop


if os.environ.get(PEER_ENV):
    app, _peer_noop = make_peer_app(json.loads(os.environ[PEER_ENV]))

if os.environ.get(PROBE_ENV):
    from celery import signals

    @signals.task_prerun.connect(weak=False)
    def _probe(task=None, args=None, **_kw) -> None:  # noqa: ANN001
        if getattr(task, "name", "") == OUR_TASK and args:
            t = time.time()
            with open(os.environ[PROBE_ENV], "a") as fh:
                fh.write(f"{args[0]} {t!r}\n")


# --- the benchmark ----------------------------------------------------------------
import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime  # noqa: E402

import _common as C  # noqa: E402

ROOT = C.ROOT
TERMINAL = {"succeeded", "failed", "cancelled"}
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Keys of the platform's Celery configuration the peer copies (worker_hijack_root_logger is a
# logging choice of `llmforge worker`, which installs its own handler; the peer keeps Celery's).
PEER_CONF_KEYS = (
    "broker_transport_options", "broker_connection_retry_on_startup", "broker_connection_timeout",
    "task_ignore_result", "result_backend", "task_acks_late", "worker_prefetch_multiplier",
    "task_default_queue", "task_serializer", "accept_content", "worker_send_task_events",
    "worker_enable_remote_control", "broker_heartbeat",
)
TARGET_P50_MS = {"redis": 150.0, "embedded": 250.0, "redis_pg": 150.0}
TARGET_OVERHEAD = 1.5
WORKER_QUEUES = "cpu,gpu"  # what `llmforge worker` consumes by default; the peer consumes the same


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def iso_ts(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else float("nan")


@dataclass
class Phase:
    """Latency pass(es) and one throughput pass of one side on one broker, in one repetition."""

    side: str  # ours | celery | celery_solo
    broker: str
    rep: int
    lat_ms: dict[str, list[float]] = field(default_factory=dict)  # variant (main | sparse) -> submit->running
    spacing_ms: dict[str, float] = field(default_factory=dict)  # achieved spacing per variant
    parts_ms: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # ours: variant -> part -> values
    subs: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)  # ours: (id, t_submit, t_response)
    jobs_per_s: float = float("nan")
    submit_per_s: float = float("nan")  # how fast the client got the burst submitted
    start_gap_ms: float = float("nan")  # median gap between consecutive starts in the burst (the drain cadence)
    busy_ms: float = float("nan")  # ours: median started_at -> finished_at (the worker's own time per noop)
    load: float = float("nan")
    failed: int = 0
    attempts: int = 1


class WorkerDied(RuntimeError):
    """A worker process exited mid-phase (e.g. kombu's filesystem transport reading a half-written message)."""


def check_alive(proc, log_path: Path, what: str) -> None:  # noqa: ANN001
    if proc.poll() is not None:
        lines = [ln for ln in C.tail(log_path, 20000).splitlines() if "CRITICAL" in ln or "Unrecoverable" in ln]
        raise WorkerDied(f"{what} exited with {proc.returncode}: {lines[-1].strip() if lines else C.tail(log_path, 500)}")


def gap_p50(times: list[float]) -> float:
    ts = sorted(times)
    return C.percentile([(b - a) * 1000 for a, b in zip(ts, ts[1:])], 50)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="llmforge-bench-jobs-"))
        self.children = C.Children()
        self.redis_proc = None
        self.redis_url: str | None = None
        self.pg_name: str | None = None
        self.homes: dict[str, tuple[Path, dict[str, str], str, str]] = {}  # broker -> (home, env, admin key, db url)
        self.crashes: dict[tuple[str, str], int] = {}  # (broker, side) -> worker deaths (phase re-run)
        self.crash_notes: list[str] = []
        self.pythonpath = os.pathsep.join([str(BENCH_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)

    # --- services ---------------------------------------------------------------
    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed; run with --brokers embedded")
        port = C.free_port()
        self.redis_proc = self.children.start(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            env=dict(os.environ), log_path=self.tmp / "redis.log", cwd=self.tmp,
        )
        deadline = time.time() + 10
        while not C.port_open("127.0.0.1", port, 0.2):
            if time.time() > deadline or self.redis_proc.poll() is not None:
                raise SystemExit(f"private redis-server did not start:\n{C.tail(self.tmp / 'redis.log')}")
            time.sleep(0.05)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        log(f"private redis-server on port {port}")

    def create_pg(self) -> str:
        import psycopg

        self.pg_name = f"llmforge_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.pg_name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.pg_name}"

    def drop_pg(self) -> None:
        if not self.pg_name:
            return
        import psycopg

        from llmforge.platform.db import dispose_all

        dispose_all()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        self.pg_name = None

    def settings_for(self, home: Path, broker: str, database_url: str | None = None):
        from llmforge.settings import Settings

        kw = {"home": home, "broker_poll_interval": self.args.poll_interval} if self.args.poll_interval else {"home": home}
        if broker != "embedded":
            kw["broker_url"] = self.redis_url
        if database_url:
            kw["database_url"] = database_url
        return Settings(_env_file=None, **kw)

    def prepare_ours(self, broker: str) -> None:
        """A fresh LLMFORGE_HOME, migrated, with the admin key created in-process (what `llmforge up` does)."""
        from llmforge.platform import auth
        from llmforge.platform.db import dispose_all, session_scope
        from llmforge.platform.migrate import upgrade

        home = self.tmp / f"ours-{broker}"
        db_url = self.create_pg() if broker == "redis_pg" else None
        s = self.settings_for(home, broker, db_url)
        home.mkdir(parents=True, exist_ok=True)
        upgrade(s.database_url)
        with session_scope(s.database_url) as sess:
            key = auth.bootstrap(sess, s.admin_key_file) or s.admin_key_file.read_text().strip()
        dispose_all()
        env = C.clean_env(LLMFORGE_HOME=str(home), PYTHONUNBUFFERED="1", PYTHONPATH=self.pythonpath)
        if broker != "embedded":
            env["LLMFORGE_BROKER_URL"] = self.redis_url
        if db_url:
            env["LLMFORGE_DATABASE_URL"] = db_url
        if self.args.poll_interval:
            env["LLMFORGE_BROKER_POLL_INTERVAL"] = str(self.args.poll_interval)
        if not self.args.no_probe:
            env["LLMFORGE_EXTRA_TASK_MODULES"] = json.dumps(["jobs"])
        self.homes[broker] = (home, env, key, s.database_url)

    # --- ours ---------------------------------------------------------------------
    def run_ours(self, broker: str, rep: int, attempt: int = 0) -> Phase:
        import httpx

        home, base_env, key, db_url = self.homes[broker]
        run_dir = self.tmp / f"ours-{broker}-{rep}" / f"attempt-{attempt}"
        run_dir.mkdir(parents=True)
        env = dict(base_env)
        probe = run_dir / "probe.txt"
        if not self.args.no_probe:
            env[PROBE_ENV] = str(probe)
        port = C.free_port()
        api_log, worker_log = run_dir / "api.log", run_dir / "worker.log"
        api = self.children.start([sys.executable, "-m", "llmforge", "api", "--port", str(port), "--no-migrate"],
                                  env=env, log_path=api_log, cwd=run_dir)
        worker = self.children.start([sys.executable, "-m", "llmforge", "worker", "--concurrency", "1"],
                                     env=env, log_path=worker_log, cwd=run_dir)
        phase = Phase("ours", broker, rep)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while True:
                if api.poll() is not None:
                    raise RuntimeError(f"llmforge api exited:\n{C.tail(api_log)}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"llmforge api not ready:\n{C.tail(api_log)}")
                time.sleep(0.05)
            C.wait_for_log(worker, worker_log, b" ready.", 60)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
                self._ours_phases(client, phase, lambda: check_alive(worker, worker_log, "llmforge worker"))
        finally:
            self.children.stop(worker)
            self.children.stop(api)
        self._ours_breakdown(phase, db_url, probe)
        return phase

    def variants(self, broker: str) -> list[tuple[str, float, int]]:
        """(name, spacing ms, jobs) of the latency passes for this broker."""
        out = [("main", self.args.spacing_ms, self.args.jobs)]
        if broker in self.args.sparse_brokers:
            out.append(("sparse", self.args.sparse_spacing_ms, self.args.sparse_jobs))
        return out

    @staticmethod
    def paced(count: int, spacing_ms: float, submit) -> list:  # noqa: ANN001
        """Call ``submit()`` ``count`` times on a fixed schedule (late calls go at once, never bunched up later)."""
        out = []
        t0 = time.time() + 0.05
        for i in range(count):
            delay = t0 + i * spacing_ms / 1000.0 - time.time()
            if delay > 0:
                time.sleep(delay)
            out.append(submit())
        return out

    def _ours_phases(self, client, phase: Phase, alive) -> None:  # noqa: ANN001
        def post() -> str:
            r = client.post("/api/v1/jobs", json={"kind": "noop", "spec": {}})
            if r.status_code != 201:
                raise RuntimeError(f"submit failed: {r.status_code} {r.text}")
            return r.json()["id"]

        def timed_post() -> tuple[str, float, float]:
            ts = time.time()
            job_id = post()
            return job_id, ts, time.time()

        def wait_all(ids: list[str], poll: float) -> dict[str, dict]:
            deadline = time.time() + self.args.timeout
            while client.get(f"/api/v1/jobs/{ids[-1]}").json()["status"] not in TERMINAL:
                if time.time() > deadline:
                    raise RuntimeError(f"job {ids[-1]} not finished after {self.args.timeout}s")
                alive()
                time.sleep(poll)
            rows: dict[str, dict] = {}
            pending = list(ids)
            while pending:
                for job_id in pending:
                    job = client.get(f"/api/v1/jobs/{job_id}").json()
                    if job["status"] in TERMINAL:
                        rows[job_id] = job
                pending = [i for i in pending if i not in rows]
                if pending:
                    if time.time() > deadline:
                        raise RuntimeError(f"{len(pending)} jobs not finished after {self.args.timeout}s")
                    alive()
                    time.sleep(poll)
            return rows

        warm = [post() for _ in range(self.args.warmup)]
        wait_all(warm, 0.05)
        time.sleep(0.3)
        phase.load = C.load_average()

        busy = []
        for variant, spacing, count in self.variants(phase.broker):
            subs = self.paced(count, spacing, timed_post)
            phase.spacing_ms[variant] = (subs[-1][1] - subs[0][1]) / max(len(subs) - 1, 1) * 1000
            rows = wait_all([s[0] for s in subs], 0.1)
            phase.failed += sum(rows[j]["status"] != "succeeded" for j, _, _ in subs)
            phase.lat_ms[variant] = [(iso_ts(rows[j]["started_at"]) - ts) * 1000 for j, ts, _ in subs]
            phase.parts_ms[variant] = {"post_rtt": [(tr - ts) * 1000 for _, ts, tr in subs]}
            phase.subs[variant] = subs
            busy += [(iso_ts(r["finished_at"]) - iso_ts(r["started_at"])) * 1000 for r in rows.values()]
            time.sleep(0.3)
        phase.busy_ms = C.percentile(busy, 50)

        # throughput: M jobs back to back, until the last one finished
        t_first = time.time()
        burst = [post() for _ in range(self.args.burst)]
        phase.submit_per_s = len(burst) / (time.time() - t_first)
        rows = wait_all(burst, 0.25)
        phase.failed += sum(r["status"] != "succeeded" for r in rows.values())
        t_last = max(iso_ts(r["finished_at"]) for r in rows.values())
        phase.jobs_per_s = len(burst) / (t_last - t_first)
        phase.start_gap_ms = gap_p50([iso_ts(r["started_at"]) for r in rows.values()])

    def _ours_breakdown(self, phase: Phase, db_url: str, probe: Path) -> None:
        """Split submit→running into HTTP/API, publish, broker+worker dispatch and claim, from the job rows."""
        from sqlalchemy import select

        from llmforge.platform.db import dispose_all, session_scope
        from llmforge.platform.models import Job

        ids = [s[0] for subs in phase.subs.values() for s in subs]
        if not ids:
            return
        with session_scope(db_url) as s:
            found = {r.id: r for r in s.execute(
                select(Job.id, Job.created_at, Job.published_at, Job.started_at).where(Job.id.in_(ids)))}
        dispose_all()
        prerun: dict[str, float] = {}
        if probe.exists():
            for line in probe.read_text().splitlines():
                job_id, t = line.split()
                prerun.setdefault(job_id, float(t))
        for variant, subs in phase.subs.items():
            parts: dict[str, list[float]] = {k: [] for k in PARTS[1:]}
            unmarked = 0
            for job_id, ts, _tr in subs:
                r = found.get(job_id)
                if r is None or r.started_at is None:
                    continue
                parts["submit_to_created"].append((r.created_at - ts) * 1000)
                parts["created_to_started"].append((r.started_at - r.created_at) * 1000)
                # published_at is stamped after publish() returns, and only while the row is still queued:
                # when the worker claims first it stays empty, so this part covers the jobs that lost that race
                if r.published_at is not None:
                    parts["created_to_published"].append((r.published_at - r.created_at) * 1000)
                else:
                    unmarked += 1
                if job_id in prerun:
                    parts["created_to_prerun"].append((prerun[job_id] - r.created_at) * 1000)
                    parts["prerun_to_started"].append((r.started_at - prerun[job_id]) * 1000)
            phase.parts_ms[variant].update({k: v for k, v in parts.items() if v})
            phase.parts_ms[variant]["claimed_before_marked_published"] = [unmarked / max(len(subs), 1) * 100]
        phase.subs.clear()

    # --- raw Celery -----------------------------------------------------------------
    def peer_config(self, broker: str, run_dir: Path) -> dict:
        """Broker URL and app configuration exactly as the platform builds them, on a broker folder of its own."""
        from llmforge.platform.queue import get_celery

        s = self.settings_for(run_dir / "home", "embedded" if broker == "embedded" else "redis")
        conf = get_celery(s).conf
        return {"broker_url": s.broker_url, "conf": {k: conf[k] for k in PEER_CONF_KEYS},
                "results": str(run_dir / "results.txt")}

    def run_celery(self, broker: str, rep: int, pool: str, attempt: int = 0) -> Phase:
        side = "celery" if pool == "prefork" else f"celery_{pool}"
        run_dir = self.tmp / f"{side}-{broker}-{rep}" / f"attempt-{attempt}"
        run_dir.mkdir(parents=True)
        cfg = self.peer_config(broker, run_dir)
        results = Path(cfg["results"])
        results.touch()
        env = C.clean_env(PYTHONUNBUFFERED="1", PYTHONPATH=self.pythonpath, **{PEER_ENV: json.dumps(cfg)})
        worker_log = run_dir / "worker.log"
        worker = self.children.start(
            [sys.executable, "-m", "celery", "-A", "jobs", "worker", "-P", pool, "-c", "1", "-Q", WORKER_QUEUES,
             "-n", f"peer-{os.getpid()}@%h", "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=env, log_path=worker_log, cwd=run_dir,
        )
        client_app, noop = make_peer_app({**cfg, "results": None})
        phase = Phase(side, broker, rep)
        try:
            C.wait_for_log(worker, worker_log, b" ready.", 60)
            self._celery_phases(noop, results, phase, lambda: check_alive(worker, worker_log, f"celery -P {pool} worker"))
        finally:
            client_app.close()
            self.children.stop(worker)
        return phase

    def _celery_phases(self, noop, results: Path, phase: Phase, alive) -> None:  # noqa: ANN001
        def wait_all(keys: list[str]) -> dict[str, float]:
            want = set(keys)
            deadline = time.time() + self.args.timeout
            while True:
                started = {}
                for line in results.read_text().splitlines():
                    k, t = line.split()
                    if k in want:
                        started[k] = float(t)
                if len(started) == len(want):
                    return started
                if time.time() > deadline:
                    raise RuntimeError(f"{len(want) - len(started)} celery tasks not run after {self.args.timeout}s")
                alive()
                time.sleep(0.05)

        def submit() -> str:
            ts = time.time()
            noop.apply_async(args=(ts,))
            return repr(ts)

        wait_all([submit() for _ in range(self.args.warmup)])
        time.sleep(0.3)
        phase.load = C.load_average()

        for variant, spacing, count in self.variants(phase.broker):
            keys = self.paced(count, spacing, submit)
            phase.spacing_ms[variant] = (float(keys[-1]) - float(keys[0])) / max(len(keys) - 1, 1) * 1000
            started = wait_all(keys)
            phase.lat_ms[variant] = [(started[k] - float(k)) * 1000 for k in keys]
            time.sleep(0.3)

        t_first = time.time()
        burst = [submit() for _ in range(self.args.burst)]
        phase.submit_per_s = len(burst) / (time.time() - t_first)
        started = wait_all(burst)
        phase.jobs_per_s = len(burst) / (max(started.values()) - t_first)
        phase.start_gap_ms = gap_p50(list(started.values()))

    # --- orchestration ----------------------------------------------------------------
    def run(self) -> list[Phase]:
        brokers = list(self.args.brokers)
        if any(b != "embedded" for b in brokers):
            self.start_redis()
        for b in brokers:
            self.prepare_ours(b)
        pools = ["prefork"] + (["solo"] if self.args.solo else [])
        phases: list[Phase] = []
        for rep in range(self.args.reps):
            for broker in brokers:
                order = [("ours", None)] + ([] if broker == "redis_pg" else [("celery", p) for p in pools])
                for side, pool in order:  # A B A B: ours, then the peer, never both at once
                    label = f"rep {rep + 1}/{self.args.reps} {broker:9s} {'llmforge' if pool is None else 'celery -P ' + pool}"
                    t = time.time()
                    for attempt in range(self.args.attempts):
                        try:
                            ph = self.run_ours(broker, rep, attempt) if side == "ours" else self.run_celery(broker, rep, pool, attempt)
                            break
                        except WorkerDied as exc:
                            key = (broker, "ours" if side == "ours" else f"celery_{pool}")
                            self.crashes[key] = self.crashes.get(key, 0) + 1
                            self.crash_notes.append(f"{label.strip()}: {exc}")
                            log(f"{label}: {exc}; {'retrying' if attempt + 1 < self.args.attempts else 'giving up'}")
                    else:
                        raise RuntimeError(f"{label}: the worker died in all {self.args.attempts} attempts")
                    ph.attempts = attempt + 1
                    phases.append(ph)
                    lat = "  ".join(f"{v}: p50 {C.percentile(x, 50):6.1f} p99 {C.percentile(x, 99):6.1f} ms"
                                    for v, x in ph.lat_ms.items())
                    log(f"{label:36s} {lat}  {ph.jobs_per_s:6.1f} jobs/s  load {ph.load:.2f}  ({time.time() - t:.1f}s)")
        return phases

    def cleanup(self) -> None:
        self.children.stop_all()
        try:
            self.drop_pg()
        except Exception as exc:  # noqa: BLE001
            log(f"could not drop the benchmark database {self.pg_name}: {exc}")
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- figures and report -------------------------------------------------------------
PARTS = ("post_rtt", "submit_to_created", "created_to_published", "created_to_prerun", "prerun_to_started",
         "created_to_started")
SIDE_LABEL = {"ours": "llmforge", "celery": "raw Celery -P prefork", "celery_solo": "raw Celery -P solo"}


def peer_of(broker: str) -> str:
    return "redis" if broker == "redis_pg" else broker


def summarise(phases: list[Phase], args: argparse.Namespace) -> tuple[dict, list[list], list[list]]:
    """Median over repetitions of every per-repetition figure. Returns (figures, table rows, breakdown rows)."""
    fig: dict[str, object] = {}
    rows, parts_rows = [], []
    by: dict[tuple[str, str], list[Phase]] = {}
    for ph in phases:
        by.setdefault((ph.broker, ph.side), []).append(ph)
    for (broker, side), reps in by.items():
        prefix = "submit_to_running" if side == "ours" else side
        med = lambda f: C.median([f(p) for p in reps])  # noqa: E731
        for variant in reps[0].lat_ms:
            sfx = broker if variant == "main" else f"{broker}_{variant}"
            stats = {q: med(lambda p, q=q: C.percentile(p.lat_ms[variant], q)) for q in (50, 90, 99)}
            mean = med(lambda p: C.mean(p.lat_ms[variant]))
            for q, v in stats.items():
                fig[f"{prefix}_p{q}_ms_{sfx}"] = round(v, 2)
            fig[f"{prefix}_mean_ms_{sfx}"] = round(mean, 2)
            is_main = variant == "main"
            rows.append([broker, SIDE_LABEL[side], f"{med(lambda p: p.spacing_ms[variant]):.1f}", stats[50], stats[90],
                         stats[99], mean, med(lambda p: p.jobs_per_s) if is_main else "",
                         med(lambda p: p.start_gap_ms) if is_main else "",
                         med(lambda p: p.submit_per_s) if is_main else "",
                         " / ".join(f"{C.percentile(p.lat_ms[variant], 50):.1f}" for p in reps),
                         " / ".join(f"{p.load:.2f}" for p in reps)])
            if side == "ours":
                vals = {}
                for part in PARTS:
                    per_rep = [C.percentile(p.parts_ms[variant][part], 50) for p in reps if p.parts_ms[variant].get(part)]
                    if per_rep:
                        vals[part] = C.median(per_rep)
                        fig[f"{part}_p50_ms_{sfx}"] = round(vals[part], 2)
                unmarked = med(lambda p: p.parts_ms[variant].get("claimed_before_marked_published", [float("nan")])[0])
                fig[f"claimed_before_marked_published_pct_{sfx}"] = round(unmarked, 1)
                parts_rows.append([broker, f"{med(lambda p: p.spacing_ms[variant]):.0f}",
                                   *[vals.get(k, float("nan")) for k in PARTS], stats[50], unmarked])
        jobs_key = "jobs_per_s" if side == "ours" else f"{side}_jobs_per_s"
        fig[f"{jobs_key}_{broker}"] = round(med(lambda p: p.jobs_per_s), 1)
        fig[f"{'' if side == 'ours' else side + '_'}submit_per_s_{broker}"] = round(med(lambda p: p.submit_per_s), 1)
        fig[f"{'' if side == 'ours' else side + '_'}burst_start_gap_p50_ms_{broker}"] = round(med(lambda p: p.start_gap_ms), 2)
        if side == "ours":
            fig[f"worker_busy_p50_ms_{broker}"] = round(med(lambda p: p.busy_ms), 2)
        failed = sum(p.failed for p in reps)
        if failed:
            fig[f"failed_jobs_{side}_{broker}"] = failed
    for broker in ("redis", "embedded", "redis_pg"):
        for variant in ("", "_sparse"):
            ours = fig.get(f"submit_to_running_p50_ms_{broker}{variant}")
            celery = fig.get(f"celery_p50_ms_{peer_of(broker)}{variant}")
            if ours is None or not celery:
                continue
            key = "overhead_vs_celery" if broker == "redis" and not variant else f"overhead_vs_celery_{broker}{variant}"
            fig[key] = round(ours / celery, 2)
            if fig.get(f"celery_solo_p50_ms_{peer_of(broker)}{variant}"):
                fig[f"overhead_vs_celery_solo_{broker}{variant}"] = round(ours / fig[f"celery_solo_p50_ms_{peer_of(broker)}{variant}"], 2)
        if fig.get(f"celery_jobs_per_s_{peer_of(broker)}") and fig.get(f"jobs_per_s_{broker}"):
            fig[f"jobs_per_s_ratio_vs_celery_{broker}"] = round(fig[f"jobs_per_s_{broker}"] / fig[f"celery_jobs_per_s_{peer_of(broker)}"], 3)
        if f"submit_to_running_p50_ms_{broker}" in fig:
            fig[f"meets_p50_target_{broker}"] = fig[f"submit_to_running_p50_ms_{broker}"] < TARGET_P50_MS[broker]
    return fig, rows, parts_rows


HEADER = ["broker", "side", "spacing ms", "p50 ms", "p90 ms", "p99 ms", "mean ms", "jobs/s (burst)",
          "burst start gap ms", "submits/s (burst)", "p50 per rep", "load per rep"]
PARTS_HEADER = ["broker", "spacing ms", "POST round trip (client)", "submit → row created (HTTP, auth, validation)",
                "created → published (commit, publish; jobs not yet claimed)", "created → task start (commit, publish, broker, pool)",
                "task start → `started_at` (claim)", "created → started", "submit → running",
                "% claimed before `published_at` was set"]


def print_table(rows: list[list], parts_rows: list[list], fig: dict) -> None:
    widths = [9, 22, 8, 8, 8, 8, 8, 8, 10, 10]
    print()
    print("  ".join(h[:w].ljust(w) for h, w in zip(HEADER, widths)) + "  p50 per rep")
    for r in rows:
        cells = [r[0], r[1]] + [C.fmt(x) for x in r[2:10]]
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + f"  {r[10]}  (load {r[11]})")
    print()
    for k in sorted(k for k in fig if k.startswith(("overhead", "jobs_per_s_ratio", "meets"))):
        print(f"  {k:40s} {fig[k]}")
    if parts_rows:
        print("\n  where our submit->running goes (p50 of each part in ms, median of reps):")
        names = ["broker", "spacing", "POST rtt", "->created", "->published", "->task start", "->started_at",
                 "created->start", "total", "% unmarked"]
        print("  " + "  ".join(n.ljust(11) for n in names))
        for r in parts_rows:
            print("  " + "  ".join(C.fmt(c, 2).ljust(11) for c in r))
    print()


def docs_section(fig: dict, rows: list[list], parts_rows: list[list], args: argparse.Namespace, machine: dict,
                 load0: float, load1: float, elapsed: float, crash_notes: list[str]) -> tuple[str, str]:
    mode = "quick" if args.quick else "full"
    title = f"jobs: submit-to-running latency and throughput vs raw Celery ({C.utc_stamp()}, {mode})"
    sparse = (f" Embedded also at {args.sparse_spacing_ms:g} ms spacing ({args.sparse_jobs} jobs, `*_sparse` figures): "
              "at 20 ms the offered 50 jobs/s meets the embedded broker's per-worker ceiling (≈ 1 / poll interval), "
              "so the 20 ms figures there include queueing.") if args.sparse_brokers else ""
    lines = [
        f"Command: `{C.command_line()}`  ",
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}; "
        f"load average at start {C.load_note(load0)}, highest at a phase start {C.load_note(fig['load_avg_max'])}, "
        f"at end {C.load_note(load1)}; wall time {elapsed:.0f} s.",
        "",
        f"Method: per broker, `llmforge api` + `llmforge worker --concurrency 1` "
        f"(SQLite{'; PostgreSQL for redis_pg' if 'redis_pg' in args.brokers else ''}) vs raw Celery with the platform's "
        f"broker URL and app configuration (worker `-P prefork -c 1`{' and `-P solo`' if args.solo else ''}, "
        f"`--without-gossip --without-mingle --without-heartbeat`), one after the other (A B A B), {args.reps} "
        f"repetition(s), median of repetitions. Latency: {args.jobs} `noop` jobs {args.spacing_ms:g} ms apart, "
        "submit (client clock just before the POST / `apply_async`) → running (the job's `started_at` / the task's "
        f"first line).{sparse} Throughput: {args.burst} jobs back to back (one client), until the last one finished. "
        f"Embedded poll interval: {args.poll_interval or 'the Settings default (0.02 s)'}.",
        "",
        C.markdown_table(HEADER, rows),
        "",
        "Ratios (ours / raw Celery `-P prefork`, p50 submit→running; target ≤ 1.5×):",
        "",
    ]
    for broker in args.brokers:
        for variant in ("", "_sparse"):
            key = "overhead_vs_celery" if broker == "redis" and not variant else f"overhead_vs_celery_{broker}{variant}"
            if key not in fig:
                continue
            ours_p50 = fig[f"submit_to_running_p50_ms_{broker}{variant}"]
            peer_p50 = fig[f"celery_p50_ms_{peer_of(broker)}{variant}"]
            line = (f"- {broker}{' (' + format(args.sparse_spacing_ms, 'g') + ' ms spacing)' if variant else ''}: "
                    f"{ours_p50} ms vs {peer_p50} ms → **{fig[key]}×** (`{key}`: "
                    f"{'meets' if fig[key] <= TARGET_OVERHEAD else '**misses**'} 1.5×)")
            if not variant:
                line += (f"; p50 target < {TARGET_P50_MS[broker]:g} ms: "
                         f"{'meets' if fig.get(f'meets_p50_target_{broker}') else '**misses**'}")
                if f"jobs_per_s_ratio_vs_celery_{broker}" in fig:
                    line += f"; burst jobs/s {fig[f'jobs_per_s_ratio_vs_celery_{broker}']}× raw Celery"
            lines.append(line)
    lines.append("")
    if parts_rows:
        lines += [
            "Where our submit→running goes (p50 of each part, ms; from the job rows (`created_at`, `published_at`, "
            "`started_at`), a `task_prerun` probe in our worker and the client's POST round trip; separate medians, "
            "so the parts need not add up exactly):",
            "",
            C.markdown_table(PARTS_HEADER, parts_rows, digits=2),
            "",
        ]
    if crash_notes:
        lines += ["Workers that died mid-phase (the phase was run again; the deaths are figures of their own, "
                  "`worker_deaths_*`):", "", *[f"- {n}" for n in crash_notes], ""]
    lines += ["<details><summary>All figures (the <code>--out</code> object)</summary>", "",
              "```json", json.dumps({k: fig[k] for k in sorted(fig)}, indent=1), "```", "", "</details>"]
    return title, "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="40 jobs, burst of 50, 1 repetition, no -P solo (< 1 min)")
    p.add_argument("--out", help="write the figures as one flat JSON object to this file")
    p.add_argument("--jobs", "-n", type=int, help="jobs in the latency pass (default 200; quick 40)")
    p.add_argument("--burst", "-m", type=int, help="jobs in the throughput pass (default 200; quick 50)")
    p.add_argument("--reps", type=int, help="repetitions, median taken (default 3; quick 1)")
    p.add_argument("--spacing-ms", type=float, default=20.0, help="gap between submits in the latency pass")
    p.add_argument("--sparse-spacing-ms", type=float, default=60.0,
                   help="gap of the extra latency pass below the embedded broker's ceiling (default 60)")
    p.add_argument("--sparse-jobs", type=int, help="jobs in that pass (default 100; quick 20)")
    p.add_argument("--sparse-brokers", default="embedded",
                   help="brokers that get the sparse pass (comma-separated; '' for none; default embedded)")
    p.add_argument("--warmup", type=int, default=5, help="jobs run and discarded before each side's passes")
    p.add_argument("--brokers", default="embedded,redis",
                   help="comma-separated: embedded, redis, redis_pg (Redis + the local PostgreSQL, ours only)")
    p.add_argument("--postgres", action="store_true", help="shorthand for adding redis_pg to --brokers")
    p.add_argument("--solo", action=argparse.BooleanOptionalAction, default=None,
                   help="also run the peer worker with -P solo (default: on, off with --quick)")
    p.add_argument("--poll-interval", type=float, default=None,
                   help="embedded broker polling interval for both sides (default: the platform's Settings default)")
    p.add_argument("--no-probe", action="store_true", help="do not load the task_prerun probe into our worker")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a pass's jobs")
    p.add_argument("--attempts", type=int, default=3,
                   help="re-runs of a side's phase when its worker dies mid-phase (each death is reported)")
    p.add_argument("--no-docs", action="store_true", help="do not append a section to docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = p.parse_args(argv)
    args.jobs = args.jobs or (40 if args.quick else 200)
    args.burst = args.burst or (50 if args.quick else 200)
    args.reps = args.reps or (1 if args.quick else 3)
    args.sparse_jobs = args.sparse_jobs or (20 if args.quick else 100)
    args.solo = (not args.quick) if args.solo is None else args.solo
    known = {"embedded", "redis", "redis_pg"}
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if args.postgres and "redis_pg" not in brokers:
        brokers.append("redis_pg")
    bad = set(brokers) - known
    if bad or not brokers:
        p.error(f"unknown broker(s) {', '.join(sorted(bad)) or '(none)'}; choose from embedded, redis, redis_pg")
    if "redis_pg" in brokers and "redis" not in brokers:
        brokers.insert(brokers.index("redis_pg"), "redis")  # its peer is raw Celery on Redis
    if "redis_pg" in brokers and not C.port_open("127.0.0.1", 5432):
        p.error("redis_pg needs PostgreSQL on 127.0.0.1:5432")
    args.brokers = brokers
    args.sparse_brokers = [b.strip() for b in args.sparse_brokers.split(",") if b.strip() in known]
    if "redis" in args.sparse_brokers and "redis_pg" in brokers:
        args.sparse_brokers.append("redis_pg")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for k in [k for k in os.environ if k.startswith("LLMFORGE_")]:  # this run's settings come from the flags only
        os.environ.pop(k)
    machine = C.machine_info()
    load0 = C.load_average()
    log(f"jobs benchmark ({'quick' if args.quick else 'full'}): brokers {', '.join(args.brokers)}, {args.jobs} jobs "
        f"{args.spacing_ms:g} ms apart, burst {args.burst}, {args.reps} rep(s); {machine['cpu_model']}, "
        f"{machine['cores']} cores, load {C.load_note(load0)}")
    t_start = time.time()
    bench = Bench(args)
    try:
        phases = bench.run()
    except Exception:
        traceback.print_exc()
        log(f"failed; logs under {bench.tmp}" + ("" if args.keep else " (removed; rerun with --keep)"))
        return 1
    finally:
        bench.cleanup()
    load1 = C.load_average()
    fig, rows, parts_rows = summarise(phases, args)
    for (broker, side), n in sorted(bench.crashes.items()):
        fig[f"worker_deaths_{side}_{broker}"] = n
    fig.update({
        "jobs": args.jobs, "burst": args.burst, "reps": args.reps, "spacing_ms": args.spacing_ms,
        "sparse_spacing_ms": args.sparse_spacing_ms if args.sparse_brokers else None, "quick": args.quick,
        "load_avg_start": round(load0, 2), "load_avg_end": round(load1, 2), "load_flagged": load0 > C.LOAD_FLAG,
        "load_avg_max": round(max([load0, load1] + [p.load for p in phases]), 2),
        "cpu_model": machine["cpu_model"], "cores": machine["cores"],
    })
    print_table(rows, parts_rows, fig)
    C.write_out(args.out, fig)
    if args.out:
        log(f"figures written to {args.out}")
    if not args.no_docs:
        title, body = docs_section(fig, rows, parts_rows, args, machine, load0, load1, time.time() - t_start,
                                   bench.crash_notes)
        C.append_section(title, body)
        log(f"section appended to {C.DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
