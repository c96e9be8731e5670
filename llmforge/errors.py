"""The one error tree. Every error a person can cause maps to a status and a message that says what to do.

    LlmforgeError (500)
    ├── InvalidInput (422)      bad spec, bad parameter, malformed file
    ├── Unauthorized (401)      no key, wrong key, revoked key
    ├── Forbidden (403)         the key may see the resource but its role may not do this
    ├── NotFound (404)          missing, or in a project the key cannot see (invariant 8)
    ├── Conflict (409)          state forbids the change (cancel a finished job, delete a used version)
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    └── Unavailable (503)       a dependency (broker, MLflow) is down; retry later

The FastAPI app renders all of them in OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, so the gateway and the
control plane fail the same way. Cores raise these; they never import FastAPI.
"""

from __future__ import annotations


class LlmforgeError(Exception):
    status_code: int = 500
    type: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidInput(LlmforgeError):
    status_code = 422
    type = "invalid_request_error"


class Unauthorized(LlmforgeError):
    status_code = 401
    type = "authentication_error"


class Forbidden(LlmforgeError):
    status_code = 403
    type = "permission_error"


class NotFound(LlmforgeError):
    status_code = 404
    type = "not_found_error"


class Conflict(LlmforgeError):
    status_code = 409
    type = "conflict_error"


class PayloadTooLarge(LlmforgeError):
    status_code = 413
    type = "invalid_request_error"


class UnsupportedMediaType(LlmforgeError):
    status_code = 415
    type = "invalid_request_error"


class Unavailable(LlmforgeError):
    status_code = 503
    type = "service_unavailable"
