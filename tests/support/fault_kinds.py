"""Job kinds that only tests load (LLMFORGE_EXTRA_TASK_MODULES='["fault_kinds"]'): they misbehave on purpose."""

from __future__ import annotations

import os
import signal
import sys
import time

from pydantic import BaseModel

from llmforge.platform.jobs import JobContext, job_kind


class KillSpec(BaseModel):
    pass


@job_kind("test.kill_worker", spec=KillSpec)
def kill_worker(ctx: JobContext, spec: KillSpec) -> None:
    """SIGKILLs the pool process running it, every time (an OOM-killed job, say)."""
    ctx.log("about to die")
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


class TreeSpec(BaseModel):
    pid_file: str
    seconds: float = 60


@job_kind("test.process_tree", spec=TreeSpec)
def process_tree(ctx: JobContext, spec: TreeSpec) -> dict:
    """Starts a child that starts a grandchild, writes both PIDs, then waits for them."""
    code = (
        "import subprocess, sys, time\n"
        f"g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep({spec.seconds})'])\n"
        f"open({spec.pid_file!r}, 'w').write(f'{{__import__(\"os\").getpid()}} {{g.pid}}')\n"
        "print('tree started', flush=True)\n"
        f"time.sleep({spec.seconds})\n"
    )
    ctx.run([sys.executable, "-c", code])
    return {"done": True}


class SlowSpec(BaseModel):
    seconds: float = 5


@job_kind("test.uncooperative", spec=SlowSpec)
def uncooperative(ctx: JobContext, spec: SlowSpec) -> dict:
    """Busy-loops without checking for cancellation."""
    end = time.time() + spec.seconds
    while time.time() < end:
        sum(range(1000))
    return {"finished": True}
