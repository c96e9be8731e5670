"""A minimal HTTP client for CLI commands that talk to a running control plane.

URL and key come from ``--url``/``--key``, then ``LLMFORGE_URL`` /
``LLMFORGE_API_KEY``, then the local defaults (``http://127.0.0.1:8000`` and
the admin key file that ``llmforge up`` wrote).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from llmforge.cli.output import fail
from llmforge.settings import get_settings


def base_url(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    if os.environ.get("LLMFORGE_URL"):
        return os.environ["LLMFORGE_URL"].rstrip("/")
    s = get_settings()
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host
    return f"http://{host}:{s.port}"


def api_key(key: str | None) -> str:
    if key:
        return key
    if os.environ.get("LLMFORGE_API_KEY"):
        return os.environ["LLMFORGE_API_KEY"]
    path = get_settings().admin_key_file
    if path.exists():
        return path.read_text().strip()
    fail("no API key: pass --key, set LLMFORGE_API_KEY, or run 'llmforge up' once to create the admin key")


def client(url: str | None, key: str | None, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(base_url=base_url(url), headers={"Authorization": f"Bearer {api_key(key)}"}, timeout=timeout)


def unreachable(c: httpx.Client, exc: Exception) -> None:
    fail(f"cannot reach the llmforge API at {c.base_url} ({type(exc).__name__}); "
         "is 'llmforge up' running? (or set LLMFORGE_URL)")


def call(c: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        r = c.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        unreachable(c, exc)
    if r.status_code >= 400:
        try:
            message = r.json()["error"]["message"]
        except Exception:  # noqa: BLE001
            message = r.text[:500]
        fail(f"{r.status_code}: {message}")
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
