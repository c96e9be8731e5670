"""HTTP plumbing shared by every router: the one error shape, body limits, cross-origin refusal.

Errors render as OpenAI's ``{"error": {"message", "type", "param", "code"}}``
for every status, including FastAPI's own 404/405/422, and never include a
stack trace. Browsers can only forge "simple" cross-origin requests
(``text/plain``, form posts); state-changing routes refuse those, and refuse any
request whose ``Origin`` is not allowed.
"""

from __future__ import annotations

import logging
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmforge.errors import LlmforgeError

log = logging.getLogger(__name__)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ACCEPTED_BODY_TYPES = ("application/json", "multipart/form-data")
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
          415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": param, "code": code}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LlmforgeError)
    async def _ours(_request: Request, exc: LlmforgeError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            return JSONResponse(error_body(422, f"request body is not valid JSON ({detail})".replace(" ()", "")),
                                status_code=422)
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc) or "body"
        msg = f"{where}: {first.get('msg')}"
        if len(errors) > 1:
            msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        return JSONResponse(error_body(422, msg, param=where), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /api/v1/openapi.json for the API"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse(error_body(exc.status_code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", ref, request.method, request.url.path)
        return JSONResponse(
            error_body(500, f"internal error (reference {ref}); the server log has the details", code=ref),
            status_code=500,
        )


class GuardMiddleware:
    """Pure ASGI: body size limit (413), cross-origin and content-type checks on unsafe methods (403/415).

    ``limits`` maps path regexes to byte limits (first match wins), so an upload
    route can accept more than the JSON default without lifting it everywhere.
    """

    def __init__(self, app: ASGIApp, *, default_limit: int, limits: dict[str, int] | None = None,
                 allowed_origins: list[str] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = [(re.compile(pattern), limit) for pattern, limit in (limits or {}).items()]
        self.allowed_origins = set(allowed_origins or [])

    def _limit_for(self, path: str) -> int:
        for pattern, limit in self.limits:
            if pattern.match(path):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        if method in UNSAFE_METHODS:
            origin = headers.get("origin")
            if origin and origin != _own_origin(scope, headers) and origin not in self.allowed_origins:
                await _reject(send, 403, f"cross-origin request from {origin} refused; add it to LLMFORGE_CORS_ORIGINS to allow it")
                return
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            if (ctype or has_body) and ctype not in ACCEPTED_BODY_TYPES:
                await _reject(send, 415, f"content type {ctype or 'none'!r} is not accepted; send application/json")
                return
        limit = self._limit_for(scope["path"])
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(send, 413, f"request body of {declared} bytes exceeds the {limit}-byte limit for this route")
            return
        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise _BodyTooLarge()
            return message

        started = False
        replaced = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return  # the app's own answer to an oversized body was swapped for a 413; drop its body
            if message["type"] == "http.response.start":
                if too_large:
                    # The app caught our error itself (FastAPI turns a failed body read into a 400): answer 413.
                    replaced = started = True
                    await _reject(send, 413, f"request body exceeds the {limit}-byte limit for this route")
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _reject(send, 413, f"request body exceeds the {limit}-byte limit for this route")
        except Exception:
            if too_large and not started:
                await _reject(send, 413, f"request body exceeds the {limit}-byte limit for this route")
            else:
                raise


class _BodyTooLarge(Exception):
    pass


def _own_origin(scope: Scope, headers: dict[str, str]) -> str:
    return f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"


async def _reject(send: Send, status: int, message: str) -> None:
    import json

    body = json.dumps(error_body(status, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
