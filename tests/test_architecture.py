"""Invariant 2 of ARCHITECTURE.md: library first, and dependencies point one way.

From the bottom up: base modules (settings, errors, artifacts, lineage) <- the
platform and the service cores <- the service edges (``router.py``/``tasks.py``,
which may use the platform) <- the composition root ``llmforge/app.py`` <- the CLI.

Two checks. At run time: importing every core in a fresh interpreter leaves the
platform, the app, the CLI, FastAPI and Celery out of ``sys.modules`` (a
notebook user gets no server). Statically: the import statements of every file,
discovered from the tree (so services added later are covered), point only
downwards. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "llmforge"
NOT_SERVICES = {"platform", "cli"}
# The service packages the design names; more may be added (they are discovered below).
NAMED_SERVICES = {"data_pipeline", "training", "registry", "serving", "rag", "web", "sdk"}
EDGE_NAMES = {"router", "tasks"}
BASE_MODULES = ("llmforge.settings", "llmforge.errors", "llmforge.artifacts", "llmforge.lineage")
# Packages whose cores are imported at run time. `web` is the console: edges only.
CORE_PACKAGES = ("llmforge.data_pipeline", "llmforge.training", "llmforge.registry", "llmforge.serving",
                 "llmforge.rag", "llmforge.sdk")
FORBIDDEN_IN_CORES = ("llmforge.platform", "llmforge.app", "llmforge.cli", "fastapi", "celery")


# --- discovery ---------------------------------------------------------------------------


def service_packages() -> list[str]:
    return sorted(p.name for p in PKG.iterdir()
                  if p.is_dir() and (p / "__init__.py").exists() and p.name not in NOT_SERVICES)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def py_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def is_edge(path: Path) -> bool:
    """router.py / tasks.py, or anything under a router/ or tasks/ package, of a service package."""
    rel = path.relative_to(PKG).with_suffix("").parts[1:]  # drop the service package itself
    return any(part in EDGE_NAMES for part in rel)


def is_edge_module(name: str) -> bool:
    """True for `llmforge.<service>.router...` / `llmforge.<service>.tasks...` (and deeper)."""
    parts = name.split(".")
    return len(parts) >= 3 and parts[0] == "llmforge" and parts[1] not in NOT_SERVICES and any(
        p in EDGE_NAMES for p in parts[2:])


def core_modules() -> list[str]:
    mods = ["llmforge", *BASE_MODULES]
    for pkg in CORE_PACKAGES:
        directory = ROOT / pkg.replace(".", "/")
        for path in py_files(directory):
            if not is_edge(path) and path.name != "__main__.py" and (path.parent / "__init__.py").exists():
                mods.append(module_name(path))
    return mods


# --- static imports ----------------------------------------------------------------------


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names imported by `module`'s source: `import x`, `from x import y` (x and x.y),
    relative imports resolved, and `importlib.import_module("x")` / `__import__("x")` with a literal."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname in ("import_module", "__import__"):
                names.add(node.args[0].value)
    return names


def file_imports(path: Path) -> set[str]:
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def under(name: str, prefixes: tuple[str, ...] | list[str] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(files: list[Path], forbidden: tuple[str, ...], *, no_edges: bool = False) -> list[str]:
    found = []
    for path in files:
        for name in sorted(file_imports(path)):
            if under(name, forbidden) or (no_edges and is_edge_module(name)):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


# --- tests -------------------------------------------------------------------------------


def test_the_named_service_packages_exist() -> None:
    found = set(service_packages())
    assert NAMED_SERVICES <= found, f"missing service packages: {sorted(NAMED_SERVICES - found)}"
    for pkg in CORE_PACKAGES:
        assert pkg.split(".")[1] in found


def test_importing_every_core_pulls_in_no_server(tmp_path: Path) -> None:
    mods = core_modules()
    code = (
        "import importlib, json, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        f"forbidden = {FORBIDDEN_IN_CORES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in forbidden))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFORGE_")}
    env["LLMFORGE_HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                       timeout=240)
    assert r.returncode == 0, f"importing the cores failed:\n{r.stderr}"
    leaked = json.loads(r.stdout.strip().splitlines()[-1])
    assert not leaked, (f"importing the cores {mods} loaded {leaked}: a core reaches the platform, "
                        "a service edge, the app or the CLI (move that import into router.py/tasks.py)")


def test_platform_imports_no_service_app_or_cli() -> None:
    files = list(py_files(PKG / "platform"))
    assert files, "no platform files found"
    forbidden = ("llmforge.app", "llmforge.cli", *(f"llmforge.{s}" for s in service_packages()))
    bad = violations(files, forbidden)
    assert not bad, "the platform must never import a service, the app or the CLI:\n" + "\n".join(bad)


def test_service_cores_import_no_platform_and_no_edges() -> None:
    cores = [p for s in service_packages() for p in py_files(PKG / s) if not is_edge(p)]
    assert cores  # at least each package's __init__.py
    bad = violations(cores, ("llmforge.platform", "llmforge.app", "llmforge.cli"), no_edges=True)
    assert not bad, ("a service core (anything but router.py/tasks.py) may not import the platform, "
                     "a service's edges, the app or the CLI:\n" + "\n".join(bad))


def test_service_edges_do_not_import_upwards() -> None:
    edges = [p for s in service_packages() for p in py_files(PKG / s) if is_edge(p)]
    bad = violations(edges, ("llmforge.app", "llmforge.cli"))
    assert not bad, "service edges may use the platform, but never the app or the CLI:\n" + "\n".join(bad)


def test_base_modules_import_only_base_modules() -> None:
    files = [PKG / (m.rpartition(".")[2] + ".py") for m in BASE_MODULES]
    bad = []
    for path in files:
        for name in sorted(file_imports(path)):
            if under(name, ("llmforge",)) and not under(name, BASE_MODULES) and name != "llmforge":
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "base modules sit at the bottom: they import no other part of llmforge:\n" + "\n".join(bad)


def test_only_the_cli_imports_the_composition_root() -> None:
    allowed = {PKG / "app.py", PKG / "__main__.py"}
    files = [p for p in py_files(PKG) if p not in allowed and "cli" != p.relative_to(PKG).parts[0]]
    bad = violations(files, ("llmforge.app", "llmforge.cli"))
    assert not bad, "only the CLI may import llmforge.app, and nothing imports the CLI:\n" + "\n".join(bad)


# --- the checker checks what it claims to ------------------------------------------------


@pytest.mark.parametrize(("source", "module", "is_package", "expected"), [
    ("import llmforge.platform.db", "llmforge.rag.index", False, "llmforge.platform.db"),
    ("from llmforge.platform import auth", "llmforge.rag.index", False, "llmforge.platform.auth"),
    ("from ..platform import auth", "llmforge.rag.index", False, "llmforge.platform.auth"),
    ("from . import router", "llmforge.rag", True, "llmforge.rag.router"),
    ("from .jobs.router import router", "llmforge.platform.app_part", False, "llmforge.platform.jobs.router"),
    ("def f():\n    from llmforge.app import create_app", "llmforge.training.x", False, "llmforge.app"),
    ("import importlib\nimportlib.import_module('llmforge.serving')", "llmforge.platform.x", False, "llmforge.serving"),
])
def test_import_resolution(source: str, module: str, is_package: bool, expected: str) -> None:
    assert expected in imported_modules(source, module, is_package)


def test_edge_detection() -> None:
    assert is_edge(PKG / "rag" / "router.py")
    assert is_edge(PKG / "training" / "tasks" / "finetune.py")
    assert not is_edge(PKG / "rag" / "index.py")
    assert not is_edge(PKG / "rag" / "__init__.py")
    assert is_edge_module("llmforge.rag.router") and is_edge_module("llmforge.training.tasks.finetune")
    assert not is_edge_module("llmforge.platform.jobs.router") and not is_edge_module("llmforge.rag.index")
