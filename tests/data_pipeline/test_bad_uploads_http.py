"""An upload that stops half-way, over a real socket to a real uvicorn server: no version, no
staging file left behind, and the server keeps serving."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from conftest import Stack
from services import free_port


@pytest.fixture
def server(stack: Stack):  # noqa: ANN201
    port = free_port()
    config = uvicorn.Config(stack.client.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", port
    srv.should_exit = True
    thread.join(10)


def test_upload_cut_off_midway_creates_nothing(stack: Stack, server) -> None:  # noqa: ANN001
    base, port = server
    h = stack.headers()
    ds = httpx.post(f"{base}/api/v1/datasets", json={"name": "cut"}, headers=h).json()
    boundary = "llmforgeboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jsonl\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    partial = b'{"text": "row"}\n' * 20_000  # ~320 kB of the promised 5 MB
    request = (f"POST /api/v1/datasets/{ds['id']}/versions/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Authorization: {h['Authorization']}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {5_000_000}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request + head + partial)
        time.sleep(0.3)
    # the client vanished; the server must have finished with the request (it shows in the request metrics)
    deadline = time.time() + 10
    while 'route="/datasets/{dataset_id}/versions/upload"' not in httpx.get(f"{base}/metrics", headers=h).text:
        assert time.time() < deadline, "the server is still holding the cut-off upload"
        time.sleep(0.1)
    versions = httpx.get(f"{base}/api/v1/datasets/{ds['id']}/versions", headers=h)
    assert versions.status_code == 200 and versions.json() == []
    uploads = stack.settings.home / "uploads"
    assert not uploads.exists() or not list(uploads.iterdir())
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    # and a complete upload right after works
    ok = httpx.post(f"{base}/api/v1/datasets/{ds['id']}/versions/upload", headers=h,
                    files={"file": ("ok.jsonl", b'{"text": "fine"}\n', "application/octet-stream")})
    assert ok.status_code == 201 and ok.json()["rows"] == 1
