"""Local administration that works without a running API: database migrations, projects and keys.

These talk to the metadata database directly (``LLMFORGE_DATABASE_URL``), so an
operator can recover access even when every key is lost.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rich.markup import escape

from llmforge.cli.output import console, emit, fail
from llmforge.errors import LlmforgeError
from llmforge.settings import get_settings

db_app = typer.Typer(help="Metadata database.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed; a secret is shown once).", no_args_is_help=True)
projects_app = typer.Typer(help="Projects (every resource belongs to one).", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations to LLMFORGE_DATABASE_URL (idempotent)."""
    from llmforge.platform.migrate import upgrade

    s = get_settings()
    upgrade(s.database_url, revision)
    console.print(f"database at {_redact(s.database_url)} is at revision {revision}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _session():  # noqa: ANN202
    from llmforge.platform.db import session_scope
    from llmforge.platform.migrate import upgrade

    s = get_settings()
    upgrade(s.database_url)
    return session_scope(s.database_url)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key (who or what uses it).")],
    project: Annotated[list[str], typer.Option(help="PROJECT:ROLE, repeatable; role is viewer, editor or admin.")] = [],  # noqa: B006
    superuser: Annotated[bool, typer.Option(help="May manage projects and keys.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print its secret once."""
    from llmforge.platform import auth

    memberships = {}
    for item in project:
        pname, _, role = item.partition(":")
        if not role:
            fail(f"--project {item!r} must be PROJECT:ROLE, e.g. default:editor")
        memberships[pname] = role
    try:
        with _session() as session:
            key, secret = auth.create_key(session, name=name, projects=memberships, is_superuser=superuser)
            row = {"id": key.id, "name": key.name, "prefix": key.prefix, "projects": memberships, "secret": secret}
    except LlmforgeError as exc:
        fail(exc.message)
    if as_json:
        emit(row, as_json=True)
    else:
        console.print(f"created key {row['id']} ({escape(name)}). Secret, shown once:\n[bold]{secret}[/bold]")


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List keys (never their secrets)."""
    from llmforge.platform import auth

    with _session() as session:
        rows = [{"id": k.id, "name": k.name, "prefix": k.prefix, "superuser": k.is_superuser,
                 "projects": ",".join(f"{p}:{r}" for p, r in sorted(m.items())),
                 "revoked": k.revoked_at is not None} for k, m in auth.list_keys(session)]
    emit(rows, as_json=as_json, title="API keys")


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke a key; requests with it get 401 from now on."""
    from llmforge.platform import auth

    try:
        with _session() as session:
            row = auth.revoke_key(session, key)
            ident, name = row.id, row.name
    except LlmforgeError as exc:
        fail(exc.message)
    console.print(f"revoked key {ident} ({escape(name)})")


@projects_app.command("create")
def projects_create(name: Annotated[str, typer.Argument(help="Lower-case name, e.g. research.")]) -> None:
    """Create a project (add members with 'llmforge keys create --project NAME:ROLE')."""
    from llmforge.platform import auth

    try:
        with _session() as session:
            auth.create_project(session, name)
    except LlmforgeError as exc:
        fail(exc.message)
    console.print(f"created project {escape(name)}")


@projects_app.command("list")
def projects_list(as_json: JsonOpt = False) -> None:
    """List every project."""
    from sqlalchemy import select

    from llmforge.platform.models import Project

    with _session() as session:
        rows = [{"id": p.id, "name": p.name} for p in session.scalars(select(Project).order_by(Project.name))]
    emit(rows, as_json=as_json, title="projects")
