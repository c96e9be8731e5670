"""Projects, API keys and "who am I" — the access-control surface."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from llmforge.platform import auth
from llmforge.platform.deps import PrincipalDep, SessionDep, SuperuserDep

router = APIRouter(tags=["access"])
Role = auth.ROLES


def _iso(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc) if ts is not None else None


class ProjectRole(BaseModel):
    name: str
    role: str


class Me(BaseModel):
    key_id: str
    name: str
    is_superuser: bool
    projects: list[ProjectRole]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, examples=["research"])


class ProjectPublic(BaseModel):
    id: str
    name: str
    role: str


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    projects: dict[str, str] = Field(default_factory=dict, description="{project name: viewer|editor|admin}")
    superuser: bool = False


class KeyPublic(BaseModel):
    id: str
    name: str
    prefix: str
    is_superuser: bool
    projects: dict[str, str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(KeyPublic):
    secret: str = Field(description="Shown once; only its hash is stored.")


@router.get("/me", response_model=Me)
def me(principal: PrincipalDep) -> Me:
    names = {pid: name for name, pid in principal.project_names.items()}
    return Me(key_id=principal.key_id, name=principal.name, is_superuser=principal.is_superuser,
              projects=[ProjectRole(name=names[pid], role=role) for pid, role in sorted(principal.roles.items())])


@router.get("/projects", response_model=list[ProjectPublic])
def list_projects(principal: PrincipalDep) -> list[ProjectPublic]:
    return [ProjectPublic(id=pid, name=name, role=principal.roles[pid])
            for name, pid in sorted(principal.project_names.items())]


@router.post("/projects", status_code=status.HTTP_201_CREATED, response_model=ProjectPublic)
def create_project(body: ProjectCreate, session: SessionDep, principal: SuperuserDep) -> ProjectPublic:
    """Superuser only; the creating key becomes the project's admin."""
    project = auth.create_project(session, body.name)
    session.add(auth.Membership(key_id=principal.key_id, project_id=project.id, role="admin"))
    return ProjectPublic(id=project.id, name=project.name, role="admin")


def _key_public(key: auth.ApiKey, projects: dict[str, str]) -> dict:
    return dict(id=key.id, name=key.name, prefix=key.prefix, is_superuser=key.is_superuser, projects=projects,
                created_at=_iso(key.created_at), revoked_at=_iso(key.revoked_at), last_used_at=_iso(key.last_used_at))


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyCreate, session: SessionDep, _principal: SuperuserDep) -> KeyCreated:
    """Superuser only. The secret is in this response and nowhere else."""
    key, secret = auth.create_key(session, name=body.name, projects=body.projects, is_superuser=body.superuser)
    return KeyCreated(secret=secret, **_key_public(key, body.projects))


@router.get("/keys", response_model=list[KeyPublic])
def list_keys(session: SessionDep, _principal: SuperuserDep) -> list[KeyPublic]:
    return [KeyPublic(**_key_public(k, p)) for k, p in auth.list_keys(session)]


@router.post("/keys/{key_id}/revoke", response_model=KeyPublic)
def revoke_key(key_id: str, session: SessionDep, _principal: SuperuserDep) -> KeyPublic:
    key = auth.revoke_key(session, key_id)
    projects = dict(next((p for k, p in auth.list_keys(session) if k.id == key.id), {}))
    return KeyPublic(**_key_public(key, projects))
