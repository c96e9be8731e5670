"""API keys, roles and project membership.

A key is ``lf_`` plus 40 random URL-safe characters; only its SHA-256 is stored
(a fast hash is right here: the secret has ~240 bits of entropy, so there is
nothing to brute-force, and every request pays for the lookup). A key is a
member of projects with a role — ``viewer`` reads, ``editor`` also submits and
cancels, ``admin`` also manages the project. A superuser key additionally
manages projects and keys. A key never sees a project it is not a member of:
such resources answer 404, exactly like missing ones (invariant 8).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from llmforge.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from llmforge.platform.models import ApiKey, Membership, Project, now

ROLES = ("viewer", "editor", "admin")
_RANK = {r: i for i, r in enumerate(ROLES)}
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DEFAULT_PROJECT = "default"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class Principal:
    """Who is calling: the key, and its role in each project it belongs to (by project id)."""

    key_id: str
    name: str
    is_superuser: bool
    roles: dict[str, str] = field(default_factory=dict)
    project_names: dict[str, str] = field(default_factory=dict)  # name -> id

    def role_in(self, project_id: str) -> str | None:
        return self.roles.get(project_id)

    def can_see(self, project_id: str) -> bool:
        return project_id in self.roles

    def require(self, project_id: str, role: str) -> None:
        """404 when the project is invisible to this key, 403 when visible but the role is too low."""
        have = self.roles.get(project_id)
        if have is None:
            raise NotFound("project not found")
        if _RANK[have] < _RANK[role]:
            raise Forbidden(f"this key is a {have} in the project; {role} or higher is needed")

    def resolve_project(self, name: str | None) -> str:
        """The project id a request means: the named one, else the key's only (or 'default') project."""
        if name:
            pid = self.project_names.get(name)
            if pid is None:
                raise NotFound(f"project {name!r} not found (or this key is not a member of it)")
            return pid
        if len(self.project_names) == 1:
            return next(iter(self.project_names.values()))
        if DEFAULT_PROJECT in self.project_names:
            return self.project_names[DEFAULT_PROJECT]
        raise InvalidInput(
            "this key belongs to several projects; name one with the 'project' field or ?project=",
            param="project",
        )


def validate_project_name(name: str) -> str:
    if not _PROJECT_NAME.match(name):
        raise InvalidInput(
            f"project name {name!r} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
            param="name",
        )
    return name


def create_project(session: Session, name: str) -> Project:
    validate_project_name(name)
    if session.scalar(select(Project).where(Project.name == name)):
        raise Conflict(f"project {name!r} already exists")
    project = Project(name=name)
    session.add(project)
    session.flush()
    return project


def get_project_by_name(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"project {name!r} not found")
    return project


def create_key(
    session: Session, *, name: str, projects: dict[str, str], is_superuser: bool = False
) -> tuple[ApiKey, str]:
    """Create a key with ``{project_name: role}`` memberships; returns the row and the secret (shown once)."""
    for role in projects.values():
        if role not in ROLES:
            raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", param="role")
    secret = "lf_" + secrets.token_urlsafe(30)
    key = ApiKey(name=name, prefix=secret[:10], key_hash=hash_key(secret), is_superuser=is_superuser)
    session.add(key)
    session.flush()
    for project_name, role in projects.items():
        project = get_project_by_name(session, project_name)
        session.add(Membership(key_id=key.id, project_id=project.id, role=role))
    session.flush()
    return key, secret


def authenticate(session: Session, secret: str | None) -> Principal:
    if not secret:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' (create one with 'llmforge keys create')")
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    if key is None:
        raise Unauthorized("invalid API key")
    if key.revoked_at is not None:
        raise Unauthorized("this API key was revoked; ask an admin for a new one")
    rows = session.execute(
        select(Membership.project_id, Membership.role, Project.name).join(Project, Project.id == Membership.project_id)
        .where(Membership.key_id == key.id)
    ).all()
    # last_used_at is advisory; update at most once a minute to keep reads cheap.
    t = now()
    if key.last_used_at is None or t - key.last_used_at > 60:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=t))
    return Principal(
        key_id=key.id,
        name=key.name,
        is_superuser=key.is_superuser,
        roles={pid: role for pid, role, _ in rows},
        project_names={pname: pid for pid, _, pname in rows},
    )


def revoke_key(session: Session, key_id_or_prefix: str) -> ApiKey:
    key = session.get(ApiKey, key_id_or_prefix) or session.scalar(
        select(ApiKey).where(ApiKey.prefix == key_id_or_prefix)
    )
    if key is None:
        raise NotFound(f"API key {key_id_or_prefix!r} not found; 'llmforge keys list' shows ids")
    if key.revoked_at is None:
        key.revoked_at = now()
    return key


def list_keys(session: Session) -> list[tuple[ApiKey, dict[str, str]]]:
    keys = session.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()
    rows = session.execute(
        select(Membership.key_id, Project.name, Membership.role).join(Project, Project.id == Membership.project_id)
    ).all()
    by_key: dict[str, dict[str, str]] = {}
    for key_id, pname, role in rows:
        by_key.setdefault(key_id, {})[pname] = role
    return [(k, by_key.get(k.id, {})) for k in keys]


def bootstrap(session: Session, key_file: Path) -> str | None:
    """On first start, create the 'default' project and a superuser admin key.

    Returns the new secret (to print once) or None when a superuser key already
    exists. The secret is also written to ``key_file`` with mode 0600.
    """
    if session.scalar(select(ApiKey).where(ApiKey.is_superuser.is_(True), ApiKey.revoked_at.is_(None))):
        return None
    if not session.scalar(select(Project).where(Project.name == DEFAULT_PROJECT)):
        create_project(session, DEFAULT_PROJECT)
    _, secret = create_key(session, name="admin", projects={DEFAULT_PROJECT: "admin"}, is_superuser=True)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.replace(tmp, key_file)
    return secret
