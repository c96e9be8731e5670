"""docker-compose.yml (the distributed mode) checked without Docker.

Docker does not run on the project's machines, so the file is checked for what
can go wrong without it: it must follow the Compose specification, every
command it runs must be a real command of our CLI (or of MLflow's), nothing but
the API may be published and only on loopback, and every ``LLMFORGE_*``
variable it sets must be a setting that exists (a misspelt one is silently
ignored by pydantic-settings and the service falls back to its embedded default).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
LLMFORGE_SERVICES = ("api", "worker", "migrate")
INFRA_SERVICES = ("mlflow", "postgres", "redis")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFORGE_")}
    env["LLMFORGE_HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env["COLUMNS"] = "200"
    return env


def test_compose_file_follows_the_compose_spec() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    assert checker.exists(), f"{checker} missing: pip install -e '.[dev]'"
    r = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"docker-compose.yml is not valid Compose:\n{r.stdout}\n{r.stderr}"


def test_every_expected_service_is_defined(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(LLMFORGE_SERVICES + INFRA_SERVICES) <= set(services), sorted(services)
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # the image every llmforge service and MLflow share
    images = {services[name].get("image") for name in (*LLMFORGE_SERVICES, "mlflow")}
    assert len(images) == 1, images


@pytest.mark.parametrize("name", LLMFORGE_SERVICES)
def test_llmforge_service_command_is_a_real_cli_command(compose: dict[str, Any], name: str, tmp_path: Path) -> None:
    argv = _command(compose["services"][name])
    assert argv[0] == "llmforge", f"{name}: command should start with the llmforge entry point: {argv}"
    # 1. The installed entry point, as the container runs it: `--help` after the flags exits 0 only
    #    when the sub-command and every flag name exist (an unknown option is a usage error, exit 2).
    r = subprocess.run([sys.executable, "-m", "llmforge", *argv[1:], "--help"], capture_output=True, text=True,
                       env=_clean_env(tmp_path), cwd=str(ROOT), timeout=120)
    assert r.returncode == 0, f"{name}: 'llmforge {' '.join(argv[1:])}' is not a valid command:\n{r.stdout}\n{r.stderr}"
    assert "Usage" in r.stdout
    # 2. `--help` is eager, so it does not check values or extra arguments: parse the exact argv too.
    from llmforge.cli.main import app

    cmd = typer.main.get_command(app)  # typer vendors click (typer._click): duck-type groups by .commands
    ctx = cmd.make_context("llmforge", list(argv[1:]))
    args = list(argv[1:])
    path = []
    while hasattr(cmd, "commands"):
        sub_name, cmd, args = cmd.resolve_command(ctx, args)
        path.append(sub_name)
        ctx = cmd.make_context(sub_name, list(args), parent=ctx)  # raises a usage error on bad values
    assert path and ctx.command is cmd and not hasattr(cmd, "commands"), path


def test_mlflow_service_flags_exist(compose: dict[str, Any], tmp_path: Path) -> None:
    service = compose["services"]["mlflow"]
    argv = _command(service)
    assert argv[:2] == ["mlflow", "server"], argv
    r = subprocess.run([sys.executable, "-m", "mlflow", "server", "--help"], capture_output=True, text=True,
                       env=_clean_env(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr
    flags = [a.split("=", 1)[0] for a in argv[2:] if a.startswith("--")]
    assert flags
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", r.stdout), f"mlflow server has no {flag}"
    # values parse too (e.g. --workers takes one argument)
    from mlflow.cli import cli

    cli.commands["server"].make_context("server", argv[2:])
    # the settings ARCHITECTURE.md found necessary for a clean stop, and the Host header the
    # api and workers send (MLflow answers 403 to Host headers other than localhost/private IPs)
    assert service["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert argv[argv.index("--workers") + 1] == "1"
    allowed = argv[argv.index("--allowed-hosts") + 1].split(",")
    llmforge_env = compose["services"]["api"]["environment"]
    mlflow_host = llmforge_env["LLMFORGE_MLFLOW_URI"].split("://", 1)[1].rstrip("/")
    assert mlflow_host in allowed, f"{mlflow_host} is not in mlflow --allowed-hosts {allowed}"


def _published(port: Any) -> tuple[str | None, str]:
    """(host ip, spec) of a ports: entry in short ("[IP:]HOST:CONTAINER[/proto]") or long syntax."""
    if isinstance(port, dict):
        return port.get("host_ip"), repr(port)
    spec = str(port)
    body = spec.split("/", 1)[0]
    if body.startswith("["):  # [::1]:8000:8000
        ip, _, rest = body[1:].partition("]")
        return ip, spec
    parts = body.split(":")
    return (parts[0] if len(parts) == 3 else None), spec


def test_only_loopback_ports_are_published(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in INFRA_SERVICES:
        assert not services[name].get("ports"), f"{name} must not publish ports (reach it on the compose network)"
    published = 0
    for name, service in services.items():
        for port in service.get("ports") or []:
            ip, spec = _published(port)
            assert ip == "127.0.0.1", f"{name} publishes {spec} beyond loopback: write 127.0.0.1:HOST:CONTAINER"
            published += 1
    assert services["api"].get("ports"), "the API should be published on 127.0.0.1"
    assert published == len(services["api"]["ports"])


def _env_names(node: Any) -> set[str]:
    """Every LLMFORGE_* name set anywhere in the file (map or list syntax, extension blocks included)."""
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("LLMFORGE_"):
                names.add(key)
            names |= _env_names(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str) and re.match(r"LLMFORGE_\w+=", item):
                names.add(item.split("=", 1)[0])
            else:
                names |= _env_names(item)
    return names


def test_every_llmforge_variable_is_a_setting(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from llmforge.settings import Settings, get_settings

    fields = set(Settings.model_fields)
    names = _env_names(compose)
    names |= set(re.findall(r"\b(LLMFORGE_[A-Z0-9_]+)=", DOCKERFILE.read_text()))
    assert {"LLMFORGE_DATABASE_URL", "LLMFORGE_BROKER_URL", "LLMFORGE_MLFLOW_URI", "LLMFORGE_ARTIFACT_URL"} <= names
    unknown = sorted(n for n in names if n.removeprefix("LLMFORGE_").lower() not in fields)
    assert not unknown, f"not settings of llmforge.settings.Settings (typo?): {unknown}"
    # and each service's values are accepted by Settings (types, validators)
    for name in LLMFORGE_SERVICES:
        for k in [k for k in os.environ if k.startswith("LLMFORGE_")]:
            monkeypatch.delenv(k)
        env = compose["services"][name]["environment"]
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for k, v in items:
            monkeypatch.setenv(k, str(v))
        s = Settings(_env_file=None)
        assert s.database_url.startswith("postgresql+psycopg://"), name
        assert not s.embedded_broker, name
    get_settings.cache_clear()


def test_api_service_binds_all_interfaces_only_inside_the_container(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["api"]["environment"].get("LLMFORGE_HOST") == "0.0.0.0"
    for name in ("worker", "migrate"):
        env = services[name]["environment"]
        assert "LLMFORGE_HOST" not in env, f"{name} serves nothing; LLMFORGE_HOST belongs to the api only"
