"""The HTTP guard (content types, cross-origin refusal, body limits), error rendering, CORS, paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import Stack, make_stack

JOBS = "/api/v1/jobs"
LIMIT = 4096


def assert_error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in r.text and "/work/" not in r.text and ".py" not in r.text, r.text
    return err


def _stack_with(monkeypatch: pytest.MonkeyPatch, lf_env: dict[str, str], tmp_path: Path,
                **env: str) -> Iterator[Stack]:
    from llmforge.settings import get_settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    yield from make_stack({**lf_env, **env}, tmp_path)


@pytest.fixture
def small_stack(lf_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield from _stack_with(monkeypatch, lf_env, tmp_path, LLMFORGE_MAX_BODY_BYTES=str(LIMIT))


@pytest.fixture
def cors_stack(lf_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield from _stack_with(monkeypatch, lf_env, tmp_path,
                           LLMFORGE_CORS_ORIGINS=json.dumps(["https://console.example"]))


def json_headers(stack: Stack, **extra: str) -> dict[str, str]:
    return {**stack.headers(), "content-type": "application/json", **extra}


# --- content types and origins ---------------------------------------------------
@pytest.mark.parametrize("ctype,body", [
    ("text/plain", '{"kind": "noop"}'),
    ("text/plain;charset=UTF-8", '{"kind": "noop"}'),
    ("application/x-www-form-urlencoded", "kind=noop"),
])
def test_simple_cross_site_content_types_are_415(stack: Stack, ctype: str, body: str) -> None:
    r = stack.client.post(JOBS, content=body, headers={**stack.headers(), "content-type": ctype})
    err = assert_error(r, 415)
    assert "application/json" in err["message"]
    listed = stack.client.get(JOBS, headers=stack.headers()).json()
    assert listed["items"] == []  # nothing was created


def test_body_without_content_type_is_415(stack: Stack) -> None:
    r = stack.client.post(JOBS, content=b'{"kind": "noop"}', headers=stack.headers())
    assert_error(r, 415)


def test_foreign_origin_is_403_even_with_key_and_json(stack: Stack) -> None:
    r = stack.client.post(JOBS, json={"kind": "noop"}, headers={**stack.headers(), "Origin": "https://evil.example"})
    err = assert_error(r, 403)
    assert "https://evil.example" in err["message"]
    cancel = stack.client.post(f"{JOBS}/x/cancel", headers={**stack.headers(), "Origin": "https://evil.example"})
    assert_error(cancel, 403)
    assert stack.client.get(JOBS, headers=stack.headers()).json()["items"] == []


def test_same_origin_is_allowed(stack: Stack) -> None:
    r = stack.client.post(JOBS, json={"kind": "noop"}, headers={**stack.headers(), "Origin": "http://testserver"})
    assert r.status_code == 201, r.text


# --- body limits --------------------------------------------------------------------
def _padded_job(size: int) -> bytes:
    head = b'{"kind": "noop", "spec": {"result": {"pad": "'
    tail = b'"}}}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


def test_body_over_limit_with_content_length_is_413(small_stack: Stack) -> None:
    stack = small_stack
    assert stack.settings.max_body_bytes == LIMIT
    r = stack.client.post(JOBS, content=_padded_job(LIMIT + 1), headers=json_headers(stack))
    err = assert_error(r, 413)
    assert str(LIMIT) in err["message"]
    ok = stack.client.post(JOBS, content=_padded_job(LIMIT), headers=json_headers(stack))
    assert ok.status_code == 201, ok.text
    assert len(stack.client.get(JOBS, headers=stack.headers()).json()["items"]) == 1


def test_body_over_limit_streamed_chunked_is_413(small_stack: Stack) -> None:
    stack = small_stack
    body = _padded_job(LIMIT * 3)

    def gen() -> Iterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    r = stack.client.post(JOBS, content=gen(), headers=json_headers(stack))
    err = assert_error(r, 413)
    assert str(LIMIT) in err["message"]
    assert stack.client.get(JOBS, headers=stack.headers()).json()["items"] == []

    small = _padded_job(LIMIT // 2)
    r = stack.client.post(JOBS, content=iter([small[:100], small[100:]]), headers=json_headers(stack))
    assert r.status_code == 201, r.text


def test_default_limit_is_one_mebibyte(stack: Stack) -> None:
    assert stack.settings.max_body_bytes == 1_048_576
    r = stack.client.post(JOBS, content=_padded_job(1_048_577), headers=json_headers(stack))
    assert_error(r, 413)


# --- error rendering -----------------------------------------------------------------
def test_unknown_route_is_404(stack: Stack) -> None:
    err = assert_error(stack.client.get("/api/v1/nope", headers=stack.headers()), 404)
    assert err["type"] == "not_found_error" and "/api/v1/nope" in err["message"]
    assert_error(stack.client.get("/nope"), 404)


def test_wrong_method_is_405(stack: Stack) -> None:
    err = assert_error(stack.client.delete(JOBS, headers=stack.headers()), 405)
    assert "DELETE" in err["message"]
    assert_error(stack.client.put("/healthz", json={}), 405)


def test_invalid_json_is_422(stack: Stack) -> None:
    r = stack.client.post(JOBS, content=b'{"kind": "noop",', headers=json_headers(stack))
    err = assert_error(r, 422)
    assert err["type"] == "invalid_request_error"


def test_missing_body_is_422(stack: Stack) -> None:
    assert_error(stack.client.post(JOBS, headers=stack.headers()), 422)


def test_unknown_kind_is_404_listing_known_kinds(stack: Stack) -> None:
    err = assert_error(stack.client.post(JOBS, json={"kind": "bogus"}, headers=stack.headers()), 404)
    assert "'bogus'" in err["message"]
    assert "noop" in err["message"] and "sleep" in err["message"]


def test_invalid_spec_is_422_naming_the_field(stack: Stack) -> None:
    r = stack.client.post(JOBS, json={"kind": "sleep", "spec": {"seconds": -1}}, headers=stack.headers())
    err = assert_error(r, 422)
    assert err["param"] == "spec.seconds"
    assert "sleep" in err["message"]
    r = stack.client.post(JOBS, json={"kind": "sleep", "spec": {"seconds": 1, "nope": 2}}, headers=stack.headers())
    assert assert_error(r, 422)["param"] == "spec.nope"


def test_extra_field_in_job_create_is_422(stack: Stack) -> None:
    r = stack.client.post(JOBS, json={"kind": "noop", "priority": 9}, headers=stack.headers())
    err = assert_error(r, 422)
    assert err["param"] == "priority"
    r = stack.client.post(JOBS, json={"kind": "noop", "queue": "tpu"}, headers=stack.headers())
    assert assert_error(r, 422)["param"] == "queue"


def test_bad_query_parameters_are_422(stack: Stack) -> None:
    assert assert_error(stack.client.get(f"{JOBS}?limit=0", headers=stack.headers()), 422)["param"] == "query.limit"
    assert_error(stack.client.get(f"{JOBS}?status=bogus", headers=stack.headers()), 422)


# --- CORS ----------------------------------------------------------------------------
def test_wildcard_cors_origin_is_refused() -> None:
    from llmforge.settings import Settings

    with pytest.raises(ValidationError, match="may not contain"):
        Settings(cors_origins=["*"])
    with pytest.raises(ValidationError):
        Settings(cors_origins=["https://ok.example", "*"])


def test_cors_preflight_from_allowed_origin(cors_stack: Stack) -> None:
    stack = cors_stack
    origin = "https://console.example"
    assert stack.settings.cors_origins == [origin]
    r = stack.client.options(JOBS, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    })
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == origin
    assert r.headers.get("access-control-allow-credentials") == "true"
    assert "*" not in r.headers["access-control-allow-origin"]

    # the real request from that origin passes the guard and is answered with the same origin
    r = stack.client.post(JOBS, json={"kind": "noop"}, headers={**stack.headers(), "Origin": origin})
    assert r.status_code == 201, r.text
    assert r.headers["access-control-allow-origin"] == origin
    r = stack.client.get(JOBS, headers={**stack.headers(), "Origin": origin})
    assert r.headers["access-control-allow-origin"] == origin

    # a foreign origin gets no allow-origin at all, and its POST is refused
    r = stack.client.options(JOBS, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert r.headers.get("access-control-allow-origin") in (None, "")
    r = stack.client.get(JOBS, headers={**stack.headers(), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = stack.client.post(JOBS, json={"kind": "noop"}, headers={**stack.headers(), "Origin": "https://evil.example"})
    assert_error(r, 403)


def test_no_cors_headers_without_configured_origins(stack: Stack) -> None:
    r = stack.client.options(JOBS, headers={"Origin": "https://console.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers


# --- paging ---------------------------------------------------------------------------
def test_jobs_paging_filters_and_cursor(stack: Stack) -> None:
    ids = [stack.submit("noop", {"result": {"i": i}})["id"] for i in range(5)]
    newest_first = list(reversed(ids))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        url = f"{JOBS}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = stack.client.get(url, headers=stack.headers())
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [j["id"] for j in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "cursor never ends"
    assert pages == 3
    assert seen == newest_first
    assert len(set(seen)) == 5

    # a page boundary that lands exactly on the end gives no cursor
    page = stack.client.get(f"{JOBS}?limit=5", headers=stack.headers()).json()
    assert [j["id"] for j in page["items"]] == newest_first and page["next_cursor"] is None

    # new jobs arriving mid-paging do not shift later pages
    first = stack.client.get(f"{JOBS}?limit=2", headers=stack.headers()).json()
    stack.submit("sleep", {"seconds": 1})
    rest = stack.client.get(f"{JOBS}?limit=10&cursor={first['next_cursor']}", headers=stack.headers()).json()
    assert [j["id"] for j in rest["items"]] == newest_first[2:]

    for garbage in ("garbage", "!!!", base64.urlsafe_b64encode(b'{"a": 1}').decode(), base64.urlsafe_b64encode(b"[1]").decode()):
        r = stack.client.get(f"{JOBS}?cursor={garbage}", headers=stack.headers())
        assert assert_error(r, 422)["param"] == "cursor"

    queued = stack.client.get(f"{JOBS}?status=queued", headers=stack.headers()).json()["items"]
    assert len(queued) == 6 and all(j["status"] == "queued" for j in queued)
    noops = stack.client.get(f"{JOBS}?kind=noop", headers=stack.headers()).json()["items"]
    assert [j["id"] for j in noops] == newest_first
    sleeps = stack.client.get(f"{JOBS}?kind=sleep&status=queued", headers=stack.headers()).json()["items"]
    assert [j["kind"] for j in sleeps] == ["sleep"]
    assert stack.client.get(f"{JOBS}?status=succeeded", headers=stack.headers()).json()["items"] == []
