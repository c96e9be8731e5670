"""The embedded broker survives what kombu's filesystem transport does not: half-written and corrupt
message files. The worker keeps running, the bad file is set aside, and jobs still run."""

from __future__ import annotations

import time

import pytest

from conftest import Stack

pytestmark = pytest.mark.slow


def test_partial_and_corrupt_messages_do_not_kill_the_worker(stack: Stack, start_worker) -> None:
    folder = stack.settings.broker_dir / "queue"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".123_abc.cpu.msg.tmp").write_bytes(b'{"half": ')  # a publish in progress: never consumed
    (folder / "1_corrupt.cpu.msg").write_bytes(b'{"this is not": json')  # a torn file from an older writer
    worker = start_worker(stack.env)
    job = stack.submit("noop", {"result": {"ok": True}})
    assert stack.wait(job["id"], {"succeeded", "failed"}, timeout=30)["result"] == {"ok": True}
    time.sleep(0.5)
    assert worker.proc.poll() is None, "the worker died"
    assert (folder / ".123_abc.cpu.msg.tmp").exists()
    assert [p.name for p in (stack.settings.broker_dir / "bad").iterdir()] == ["1_corrupt.cpu.msg"]
    assert "unreadable broker message 1_corrupt.cpu.msg" in worker.log_path.read_text()


def test_published_messages_appear_atomically(stack: Stack) -> None:
    from llmforge.platform import queue

    for _ in range(20):
        queue.publish(stack.settings, "0" * 32, "cpu")
    files = list((stack.settings.broker_dir / "queue").iterdir())
    assert len(files) == 20 and all(f.name.endswith(".cpu.msg") and f.stat().st_size > 0 for f in files)
