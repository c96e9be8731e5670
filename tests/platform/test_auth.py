"""The auth matrix: exact status codes for missing, malformed, wrong and revoked keys, roles, and
cross-project isolation (a project a key cannot see answers 404, like a missing one)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import Stack

JOBS = "/api/v1/jobs"


def assert_error(r, status: int) -> dict:
    """The one error shape, with the exact status; returns the inner error object."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    return err


def make_project(stack: Stack, name: str) -> dict:
    r = stack.client.post("/api/v1/projects", json={"name": name}, headers=stack.headers())
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def two_projects(stack: Stack) -> Stack:
    make_project(stack, "a")
    make_project(stack, "b")
    return stack


# --- authentication -------------------------------------------------------------
def test_no_key_is_401_with_bearer_challenge(stack: Stack) -> None:
    r = stack.client.get(JOBS)
    err = assert_error(r, 401)
    assert err["type"] == "authentication_error"
    assert r.headers["www-authenticate"] == "Bearer"
    assert "missing API key" in err["message"]


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz",   # another scheme
    "Bearer",               # scheme without credentials
    "lf_notascheme",        # no scheme at all
    "Bearer  ",             # blank credentials
])
def test_malformed_authorization_header_is_401(stack: Stack, header: str) -> None:
    r = stack.client.get(JOBS, headers={"Authorization": header})
    assert_error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"


def test_wrong_key_is_401(stack: Stack) -> None:
    r = stack.client.get(JOBS, headers=stack.headers("lf_" + "x" * 40))
    err = assert_error(r, 401)
    assert err["message"] == "invalid API key"
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401_saying_revoked(stack: Stack) -> None:
    r = stack.client.post("/api/v1/keys", json={"name": "temp", "projects": {"default": "editor"}},
                          headers=stack.headers())
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert stack.client.get(JOBS, headers=stack.headers(secret)).status_code == 200

    r = stack.client.post(f"/api/v1/keys/{created['id']}/revoke", headers=stack.headers())
    assert r.status_code == 200, r.text
    assert r.json()["revoked_at"] is not None
    assert "secret" not in r.json()

    r = stack.client.get(JOBS, headers=stack.headers(secret))
    err = assert_error(r, 401)
    assert "revoked" in err["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    # the revoked key can no longer submit either
    assert_error(stack.client.post(JOBS, json={"kind": "noop"}, headers=stack.headers(secret)), 401)


def test_revoking_unknown_key_is_404(stack: Stack) -> None:
    assert_error(stack.client.post("/api/v1/keys/nope/revoke", headers=stack.headers()), 404)


# --- roles ----------------------------------------------------------------------
def test_viewer_reads_but_cannot_submit_or_cancel(two_projects: Stack) -> None:
    stack = two_projects
    job = stack.submit("noop", project="a")
    viewer = stack.create_key("viewer", {"a": "viewer"})

    err = assert_error(stack.client.post(JOBS, json={"kind": "noop"}, headers=stack.headers(viewer)), 403)
    assert err["type"] == "permission_error" and "viewer" in err["message"]
    err = assert_error(stack.client.post(f"{JOBS}/{job['id']}/cancel", headers=stack.headers(viewer)), 403)
    assert err["type"] == "permission_error"
    assert stack.job(job["id"])["status"] == "queued"  # the refused cancel changed nothing

    r = stack.client.get(JOBS, headers=stack.headers(viewer))
    assert r.status_code == 200, r.text
    assert [j["id"] for j in r.json()["items"]] == [job["id"]]
    r = stack.client.get(f"{JOBS}/{job['id']}", headers=stack.headers(viewer))
    assert r.status_code == 200 and r.json()["project"] == "a"
    assert stack.client.get(f"{JOBS}/{job['id']}/logs", headers=stack.headers(viewer)).status_code == 200
    assert stack.client.get(f"{JOBS}/{job['id']}/metrics", headers=stack.headers(viewer)).status_code == 200


def test_editor_can_submit_and_cancel(two_projects: Stack) -> None:
    stack = two_projects
    editor = stack.create_key("editor", {"a": "editor"})
    job = stack.submit("noop", key=editor)
    assert job["project"] == "a"
    r = stack.client.post(f"{JOBS}/{job['id']}/cancel", headers=stack.headers(editor))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


def test_other_projects_jobs_are_404_and_never_listed(two_projects: Stack) -> None:
    stack = two_projects
    b_job = stack.submit("noop", project="b")
    a_job = stack.submit("noop", project="a")
    key_a = stack.create_key("a-admin", {"a": "admin"})
    h = stack.headers(key_a)

    for method, path in [("GET", f"{JOBS}/{b_job['id']}"), ("GET", f"{JOBS}/{b_job['id']}/logs"),
                         ("GET", f"{JOBS}/{b_job['id']}/metrics"), ("POST", f"{JOBS}/{b_job['id']}/cancel")]:
        r = stack.client.request(method, path, headers=h)
        err = assert_error(r, 404)
        assert err["type"] == "not_found_error"
        # exactly the answer a job that does not exist gets
        missing = stack.client.request(method, path.replace(b_job["id"], "0" * 32), headers=h)
        assert_error(missing, 404)
    assert stack.job(b_job["id"])["status"] == "queued"  # the refused cancel changed nothing

    listed = stack.client.get(JOBS, headers=h).json()
    assert [j["id"] for j in listed["items"]] == [a_job["id"]]
    for q in ("?project=b", "?status=queued", "?kind=noop"):
        r = stack.client.get(JOBS + q, headers=h)
        if q == "?project=b":
            assert_error(r, 404)
        else:
            assert b_job["id"] not in [j["id"] for j in r.json()["items"]]

    err = assert_error(stack.client.post(JOBS, json={"kind": "noop", "project": "b"}, headers=h), 404)
    assert err["type"] == "not_found_error"
    # a project that does not exist at all answers the same
    assert_error(stack.client.post(JOBS, json={"kind": "noop", "project": "zzz"}, headers=h), 404)


def test_key_in_two_projects_must_name_one(two_projects: Stack) -> None:
    stack = two_projects
    key = stack.create_key("both", {"a": "editor", "b": "editor"})
    err = assert_error(stack.client.post(JOBS, json={"kind": "noop"}, headers=stack.headers(key)), 422)
    assert err["param"] == "project"
    assert "project" in err["message"]
    assert stack.submit("noop", key=key, project="b")["project"] == "b"


# --- unauthenticated surface ---------------------------------------------------------
def test_healthz_needs_no_key_but_metrics_and_openapi_do(stack: Stack) -> None:
    r = stack.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}

    for path in ("/metrics", "/api/v1/openapi.json"):
        r = stack.client.get(path)
        assert_error(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"
        assert_error(stack.client.get(path, headers=stack.headers("lf_wrong")), 401)

    r = stack.client.get("/metrics", headers=stack.headers())
    assert r.status_code == 200 and "llmforge_http_request_seconds" in r.text
    r = stack.client.get("/api/v1/openapi.json", headers=stack.headers())
    assert r.status_code == 200 and "/api/v1/jobs" in r.json()["paths"]
    # the default doc routes are off
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert stack.client.get(path).status_code in (401, 404)


# --- superuser-only routes ---------------------------------------------------------
def test_non_superuser_cannot_manage_keys_or_projects(stack: Stack) -> None:
    # even a project admin is not a superuser
    admin = stack.create_key("project-admin", {"default": "admin"})
    h = stack.headers(admin)
    for method, path, body in [
        ("POST", "/api/v1/keys", {"name": "x", "projects": {"default": "viewer"}}),
        ("GET", "/api/v1/keys", None),
        ("POST", "/api/v1/projects", {"name": "newproj"}),
    ]:
        r = stack.client.request(method, path, json=body, headers=h)
        err = assert_error(r, 403)
        assert err["type"] == "permission_error"
    r = stack.client.get("/api/v1/projects", headers=stack.headers())
    assert "newproj" not in [p["name"] for p in r.json()]
    # a key cannot be smuggled in as a superuser either: the admin's revoke route is refused too
    me = stack.client.get("/api/v1/me", headers=h).json()
    assert me["is_superuser"] is False
    assert_error(stack.client.post(f"/api/v1/keys/{me['key_id']}/revoke", headers=h), 403)


# --- storage --------------------------------------------------------------------
def test_keys_are_stored_hashed(stack: Stack) -> None:
    from llmforge.platform.db import session_scope
    from llmforge.platform.models import ApiKey

    secret = stack.create_key("hashed", {"default": "viewer"})
    secrets = {secret, stack.admin_key}
    with session_scope(stack.settings.database_url) as s:
        rows = s.execute(select(ApiKey.__table__)).mappings().all()
    assert len(rows) == 2
    for row in rows:
        for column, value in row.items():
            for sec in secrets:
                assert sec not in str(value), f"secret found in api_keys.{column}"
    by_hash = {row["key_hash"]: row for row in rows}
    for sec in secrets:
        digest = hashlib.sha256(sec.encode()).hexdigest()
        assert digest in by_hash
        assert by_hash[digest]["prefix"] == sec[:10]
    # the list route shows no secret or hash either
    listing = stack.client.get("/api/v1/keys", headers=stack.headers()).text
    for sec in secrets:
        assert sec not in listing
        assert hashlib.sha256(sec.encode()).hexdigest() not in listing


def test_bootstrap_writes_0600_key_file_once(lf_env: dict[str, str], tmp_path: Path) -> None:
    from llmforge.platform import auth
    from llmforge.platform.db import dispose_all, session_scope
    from llmforge.platform.migrate import upgrade
    from llmforge.platform.models import ApiKey

    url = f"sqlite:///{tmp_path / 'boot.db'}"
    key_file = tmp_path / "keys" / "admin.key"
    try:
        upgrade(url)
        with session_scope(url) as s:
            secret = auth.bootstrap(s, key_file)
        assert secret and secret.startswith("lf_")
        assert key_file.read_text().strip() == secret
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert not key_file.with_suffix(".tmp").exists()
        with session_scope(url) as s:
            assert auth.bootstrap(s, key_file) is None
            assert len(s.scalars(select(ApiKey)).all()) == 1
            assert auth.authenticate(s, secret).is_superuser
        assert key_file.read_text().strip() == secret  # not rewritten
    finally:
        dispose_all()
