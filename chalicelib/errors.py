"""Domain errors. Services raise these; `api/http.py` is the one place that maps them to HTTP."""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.details)
        return body


class InvalidInput(DomainError):
    status = 400
    code = "invalid_input"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    """The caller is known but its role does not allow this (a viewer writing)."""

    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(DomainError):
    """A per-project limit is reached (concurrent training runs); retry after `retry_after` seconds."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.retry_after = retry_after


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class UpstreamFailed(DomainError):
    """A system we depend on (Kubernetes API, ...) refused or failed our request."""

    status = 502
    code = "upstream_failed"


class UpstreamUnavailable(DomainError):
    """A system we depend on could not be reached; retrying later may succeed."""

    status = 503
    code = "upstream_unavailable"


class StaleRecord(Exception):
    """A record changed since it was read; the caller may re-read and retry (not an HTTP error)."""
