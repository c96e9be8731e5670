"""Helpers shared by the ``bench/`` scripts: machine facts, load, percentiles, child processes, reporting.

Every benchmark prints a table, writes its figures as one flat JSON object
(``--out``) and appends a dated section to ``docs/benchmarks.md`` with the
machine, the load average at start (flagged above ``LOAD_FLAG``) and the exact
command, so a claim can be re-measured with one command
(see ``../shared/BENCHMARKS.md``, "Read this first").

Import it from a script in this folder with ``sys.path.insert(0, <bench dir>)``
then ``import _common`` (``bench`` is not a package).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DOCS = ROOT / "docs" / "benchmarks.md"
LOAD_FLAG = 1.2  # BENCHMARKS.md: flag runs that start with a 1-minute load average above this

DOCS_HEADER = """# Benchmarks

Figures measured by the scripts in `bench/`, newest section last. Each section
names the exact command, the machine and the load average when the run
started; runs that started with load > 1.2 are flagged (the box is shared, so
treat those as noisy). Method and peers: `../shared/BENCHMARKS.md`.
"""


# --- the machine ----------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, object]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def load_average() -> float:
    """1-minute load average (0.0 where the OS does not report one)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def load_note(load: float) -> str:
    return f"{load:.2f}" + (f" **(> {LOAD_FLAG}: noisy run)**" if load > LOAD_FLAG else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- statistics -----------------------------------------------------------------
def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return math.nan
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: Iterable[float]) -> float:
    return percentile([v for v in values if v == v], 50)  # NaNs (missing reps) are skipped


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


# --- child processes ------------------------------------------------------------
class Children:
    """Subprocesses started in their own process group, all stopped on exit (even on Ctrl-C or SIGTERM)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[int, object] = {}
        atexit.register(self.stop_all)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass

    @staticmethod
    def _on_signal(signum, _frame) -> None:  # noqa: ANN001
        raise SystemExit(128 + signum)

    def start(self, argv: Sequence[str], *, env: dict[str, str], log_path: Path, cwd: Path | None = None) -> subprocess.Popen:
        log = open(log_path, "ab")
        proc = subprocess.Popen(list(argv), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(cwd) if cwd else None)
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout`` (and any straggler in the group)."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        log = self.logs.pop(proc.pid, None)
        if log is not None:
            log.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def wait_for_log(proc: subprocess.Popen, log_path: Path, needle: bytes, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}:\n{tail(log_path)}")
        if needle in log_path.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args[:4]} not ready after {timeout}s:\n{tail(log_path)}")


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any LLMFORGE_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFORGE_")}
    env.update(extra)
    return env


# --- reporting ------------------------------------------------------------------
def command_line() -> str:
    """The command that reproduces this run, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_s = str(script.relative_to(ROOT))
    except ValueError:
        script_s = str(script)
    return shlex.join(["python", script_s, *sys.argv[1:]])


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def fmt(x: object, digits: int = 1) -> str:
    if isinstance(x, float):
        if x != x:
            return "n/a"
        return f"{x:,.{digits}f}"
    return str(x)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], digits: int = 1) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(fmt(c, digits) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def append_section(title: str, body: str, path: Path = DOCS) -> None:
    """Append ``## title`` + body to docs/benchmarks.md (created with a short header if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or not path.read_text().strip()
    with open(path, "a") as fh:
        if new:
            fh.write(DOCS_HEADER)
        fh.write(f"\n## {title}\n\n{body.rstrip()}\n")


def write_out(path: str | os.PathLike | None, figures: dict[str, object]) -> None:
    """Write ``figures`` as one flat JSON object (NaN becomes null)."""
    if not path:
        return
    flat = {}
    for k, v in figures.items():
        if isinstance(v, (dict, list, tuple, set)):
            raise TypeError(f"--out is one flat object; {k!r} is a {type(v).__name__}")
        flat[k] = None if isinstance(v, float) and v != v else v
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(flat, indent=2, sort_keys=True) + "\n")
