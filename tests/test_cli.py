"""The ``llmforge`` command line, in process (typer's CliRunner) over an isolated LLMFORGE_HOME.

Covers the help of every command (discovered from the click tree, so new
commands are checked without editing this file), the local administration
commands that work without an API (db, projects, keys), and the clear errors
of the commands that start or reach servers.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from llmforge.cli.main import app


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command, as argv prefixes; () is the root."""
    paths: list[tuple[str, ...]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):  # typer vendors click: duck-type groups
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


def _lookup(path: tuple[str, ...]) -> Any:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def flat(text: str) -> str:
    """Rich wraps long lines at the console width: compare messages with whitespace collapsed."""
    return " ".join(text.split())


@pytest.fixture
def cli(lf_env: dict[str, str]) -> Iterator[Any]:
    """Runs `llmforge ARGS...` in process; every engine it opened is disposed afterwards."""
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), env={"COLUMNS": "200"})

    yield run
    from llmforge.platform.db import dispose_all

    dispose_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- help ----------------------------------------------------------------------------------


def test_the_tree_has_the_expected_commands() -> None:
    paths = set(_command_paths())
    for expected in [("up",), ("api",), ("worker",), ("openapi",), ("db", "upgrade"), ("projects", "create"),
                     ("projects", "list"), ("keys", "create"), ("keys", "list"), ("keys", "revoke"),
                     ("jobs", "list"), ("jobs", "show"), ("jobs", "submit"), ("jobs", "logs"), ("jobs", "cancel")]:
        assert expected in paths, f"'llmforge {' '.join(expected)}' is missing"


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "llmforge")
def test_help(cli: Any, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    command = _lookup(path)
    assert (command.help or "").strip(), f"'llmforge {' '.join(path)}' has no help text (add a docstring)"
    assert flat(command.help.splitlines()[0]) in flat(result.output)


def test_no_arguments_shows_help(cli: Any) -> None:
    result = cli()
    assert "Usage" in result.output
    assert "keys" in result.output and "jobs" in result.output


# --- local administration ------------------------------------------------------------------


def test_db_upgrade_creates_the_tables(cli: Any) -> None:
    from sqlalchemy import create_engine, inspect

    from llmforge.settings import get_settings

    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "head" in result.output
    engine = create_engine(get_settings().database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "projects", "api_keys", "memberships", "jobs"} <= tables, tables
    assert cli("db", "upgrade").exit_code == 0  # idempotent


def test_projects_and_keys_lifecycle(cli: Any) -> None:
    r = cli("projects", "create", "research")
    assert r.exit_code == 0, r.output
    r = cli("projects", "list", "--json")
    assert r.exit_code == 0, r.output
    assert "research" in [p["name"] for p in json.loads(r.stdout)]

    r = cli("keys", "create", "--name", "ci", "--project", "research:editor", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    secret = created["secret"]
    assert secret.startswith("lf_") and len(secret) > 20
    assert created["name"] == "ci" and created["projects"] == {"research": "editor"}
    assert secret.startswith(created["prefix"])

    r = cli("keys", "list", "--json")
    assert r.exit_code == 0, r.output
    assert secret not in r.output and "secret" not in r.stdout and "hash" not in r.stdout
    rows = {k["id"]: k for k in json.loads(r.stdout)}
    assert rows[created["id"]]["revoked"] is False
    assert rows[created["id"]]["projects"] == "research:editor"

    r = cli("keys", "revoke", created["id"])
    assert r.exit_code == 0, r.output
    assert created["id"] in r.output
    r = cli("keys", "list", "--json")
    assert {k["id"]: k for k in json.loads(r.stdout)}[created["id"]]["revoked"] is True
    assert secret not in r.output

    # the human table never shows the secret either
    r = cli("keys", "list")
    assert r.exit_code == 0, r.output
    assert "ci" in r.output and secret not in r.output


def test_revoke_by_prefix(cli: Any) -> None:
    created = json.loads(cli("keys", "create", "--name", "bot", "--json").stdout)
    r = cli("keys", "revoke", created["prefix"])
    assert r.exit_code == 0, r.output
    rows = {k["id"]: k for k in json.loads(cli("keys", "list", "--json").stdout)}
    assert rows[created["id"]]["revoked"] is True


def _key_count(cli: Any) -> int:
    r = cli("keys", "list", "--json")
    assert r.exit_code == 0, r.output
    return len(json.loads(r.stdout))


@pytest.mark.parametrize(("project", "message"), [
    ("research", "must be PROJECT:ROLE"),           # no role
    ("research:owner", "role 'owner' is not one of"),  # unknown role
    ("nope:editor", "project 'nope' not found"),     # unknown project: the key must not be half-created
])
def test_bad_project_membership_is_refused_and_changes_nothing(cli: Any, project: str, message: str) -> None:
    assert cli("projects", "create", "research").exit_code == 0
    before = _key_count(cli)
    r = cli("keys", "create", "--name", "ci", "--project", project)
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    assert message in flat(r.output), r.output
    assert _key_count(cli) == before


def test_revoke_unknown_key_points_to_keys_list(cli: Any) -> None:
    r = cli("keys", "revoke", "nope")
    assert r.exit_code == 1, r.output
    assert "nope" in r.output
    assert "llmforge keys list" in flat(r.output)


def test_duplicate_project_is_refused(cli: Any) -> None:
    assert cli("projects", "create", "research").exit_code == 0
    r = cli("projects", "create", "research")
    assert r.exit_code == 1
    assert "already exists" in flat(r.output)


def test_user_text_is_not_rich_markup(cli: Any) -> None:
    r = cli("keys", "revoke", "[/x]")
    assert r.exit_code == 1 and "[/x]" in r.output, r.output
    r = cli("keys", "create", "--name", "ci [/x]")
    assert r.exit_code == 0 and "lf_" in r.output, r.output
    r = cli("keys", "list")
    assert r.exit_code == 0 and "ci [/x]" in r.output, r.output


# --- commands that start or reach servers --------------------------------------------------


def test_worker_rejects_an_unknown_queue(cli: Any) -> None:
    r = cli("worker", "--queues", "bogus")
    assert r.exit_code != 0
    text = flat(r.output)
    assert "bogus" in text and "cpu" in text and "gpu" in text, r.output


def test_worker_rejects_an_empty_queue_list(cli: Any) -> None:
    r = cli("worker", "--queues", ",")
    assert r.exit_code != 0
    assert "queue" in r.output


def test_api_refuses_a_port_in_use(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # `api --port` exports LLMFORGE_PORT into this process (for its children): let monkeypatch undo it
    monkeypatch.setenv("LLMFORGE_PORT", "8000")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = cli("api", "--port", str(port), "--no-migrate")
    assert r.exit_code != 0
    text = flat(r.output)
    assert "already in use" in text and str(port) in text, r.output


def test_jobs_list_without_an_api_says_so(cli: Any) -> None:
    port = free_port()
    r = cli("jobs", "list", "--url", f"http://127.0.0.1:{port}", "--key", "x")
    assert r.exit_code == 1, r.output
    text = flat(r.output)
    assert "cannot reach" in text and f"127.0.0.1:{port}" in text, r.output
    assert "Traceback" not in r.output


def test_jobs_without_a_key_says_how_to_get_one(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMFORGE_API_KEY", raising=False)
    r = cli("jobs", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert r.exit_code == 1, r.output
    assert "no API key" in flat(r.output)
