"""Request parsing, the single DomainError → HTTP mapping, and the route decorators.

`user_route` is the one place where an authorizer for all user-facing routes
will be attached (`USER_AUTHORIZER`); worker callbacks use `callback_route`,
which authenticates with the run's bearer token instead.
"""
from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from chalice import Response

from chalicelib.errors import DomainError, InvalidInput, PayloadTooLarge, UnsupportedMediaType

log = logging.getLogger("ml_models.api")

JSON_HEADERS = {"Content-Type": "application/json"}
# Attach a chalice authorizer here (e.g. IAMAuthorizer() or CognitoUserPoolAuthorizer)
# and every user route gets it; the callbacks keep their token check.
USER_AUTHORIZER = None


def error_response(exc: DomainError) -> Response:
    return Response(body=exc.to_body(), status_code=exc.status, headers=dict(JSON_HEADERS))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(raw: bytes | None) -> Any:
    """The request body as JSON; None when empty. NaN/Infinity are refused like any malformed JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidInput("request body must be UTF-8 encoded JSON") from None
    except ValueError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None


_CHALICE_CODE = re.compile(r"(?<!^)(?=[A-Z])")


def guard_request(event: Any, get_response: Callable[[Any], Response], max_body_bytes: int) -> Response:
    """HTTP middleware: size and media-type checks before routing, JSON errors after.

    Chalice answers some errors itself ({"Code", "Message"}); they are reshaped to
    our {"code", "message"} form so that clients see one error format.
    """
    try:
        body = event.raw_body if event.method in ("POST", "PUT", "PATCH") else b""
        if body and len(body) > max_body_bytes:
            raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {max_body_bytes}")
        content_type = (event.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        if body and content_type != "application/json":
            raise UnsupportedMediaType(f"Content-Type must be application/json (got '{content_type}')",
                                       field="Content-Type")
    except DomainError as exc:
        return error_response(exc)
    response = get_response(event)
    if isinstance(response.body, dict) and set(response.body) == {"Code", "Message"}:
        code = _CHALICE_CODE.sub("_", response.body["Code"]).lower().removesuffix("_error")
        if response.status_code >= 500:
            response.body = {"code": "internal_error", "message": "An internal error occurred."}
        else:
            response.body = {"code": code, "message": response.body["Message"]}
    return response


def json_route(blueprint: Any, path: str, methods: tuple[str, ...] = ("GET",), status: int = 200,
               **route_kwargs: Any) -> Callable:
    """Register a view returning plain data; DomainErrors become JSON error responses."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def view(*args: Any, **kwargs: Any) -> Response:
            try:
                result = func(*args, **kwargs)
            except DomainError as exc:
                if exc.status >= 500:
                    log.warning("upstream failure: %s", exc.message)
                return error_response(exc)
            if isinstance(result, Response):
                return result
            if result is None:
                return Response(body="", status_code=status)
            return Response(body=result, status_code=status, headers=dict(JSON_HEADERS))

        blueprint.route(path, methods=list(methods), **route_kwargs)(view)
        return func

    return decorator


def user_route(blueprint: Any, path: str, methods: tuple[str, ...] = ("GET",), status: int = 200) -> Callable:
    return json_route(blueprint, path, methods, status, authorizer=USER_AUTHORIZER)


def callback_route(blueprint: Any, path: str, methods: tuple[str, ...] = ("POST",), status: int = 200) -> Callable:
    return json_route(blueprint, path, methods, status)


def request_body(blueprint: Any) -> Any:
    return parse_json_body(blueprint.current_request.raw_body)


def query_params(blueprint: Any) -> dict[str, str]:
    return blueprint.current_request.query_params or {}
