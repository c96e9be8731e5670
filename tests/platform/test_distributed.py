"""Distributed mode against the machine's own services: PostgreSQL (a database made for the test)
and the shared Redis on 127.0.0.1:6379 (its own logical database, never flushed or faulted —
fault tests use a private redis-server, see ``test_jobs_e2e.py``).

Two workers share the queue, as two machines would.
"""

from __future__ import annotations

import pytest

from conftest import make_stack, skip_or_fail
from services import SHARED_REDIS, PgDatabase, reachable

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def test_jobs_on_postgres_and_shared_redis_with_two_workers(lf_env, tmp_path, monkeypatch, start_worker) -> None:
    if not reachable("127.0.0.1", 5432):
        skip_or_fail("PostgreSQL is not reachable at 127.0.0.1:5432")
    if not reachable(*SHARED_REDIS):
        skip_or_fail("Redis is not reachable at 127.0.0.1:6379")
    db = PgDatabase()
    env = {**lf_env, "LLMFORGE_DATABASE_URL": db.url, "LLMFORGE_BROKER_URL": "redis://127.0.0.1:6379/13"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from llmforge.settings import get_settings

    get_settings.cache_clear()
    try:
        for stack in make_stack(env, tmp_path):
            workers = [start_worker(env, name="a"), start_worker(env, name="b")]
            jobs = [stack.submit("sleep", {"seconds": 1, "steps": 2}) for _ in range(4)]
            done = [stack.wait(j["id"], {"succeeded", "failed"}, timeout=60) for j in jobs]
            assert all(d["status"] == "succeeded" and d["attempt"] == 1 for d in done)
            ran_on = {d["worker"] for d in done}
            assert len(ran_on) == 2, f"both workers should have taken jobs: {ran_on}"
            assert len(workers) == 2
    finally:
        db.drop()
