"""Request parsing, the single DomainError → HTTP mapping, and the route decorators.

`user_route` is the one door of every user-facing route: it authenticates the
caller's bearer token (`Services.authenticator`) and asks the access guard
(`chalicelib/services/access.py`) whether the caller may do what the route's
`Rule` says, before the route's own code runs. Worker callbacks use
`callback_route`, which authenticates with the run's bearer token instead.
`ROUTE_ACCESS` records every route's rule, so a test can hold each route to it.
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
from chalicelib.services.access import RequestView, Rule

log = logging.getLogger("ml_models.api")

JSON_HEADERS = {"Content-Type": "application/json"}
CALLBACK = "trainer callback (run token)"
# (path, method) → the route's Rule, or CALLBACK for the trainer's token-authenticated routes.
ROUTE_ACCESS: dict[tuple[str, str], Rule | str] = {}


def error_response(exc: DomainError) -> Response:
    headers = dict(JSON_HEADERS)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="ml-models"'
    return Response(body=exc.to_body(), status_code=exc.status, headers=headers)


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


def authorize(blueprint: Any, rule: Rule, path_params: dict[str, str]) -> None:
    """Authenticate the caller and check `rule` (raises 401/403/404 as DomainErrors)."""
    from chalicelib.wiring import services

    graph = services()
    request = blueprint.current_request
    principal = graph.authenticator.authenticate(request.headers.get("authorization"))
    view = RequestView(path=path_params, query=request.query_params or {},
                       body=lambda: parse_json_body(request.raw_body))
    graph.access.authorize(principal, rule, view)


def json_route(blueprint: Any, path: str, methods: tuple[str, ...] = ("GET",), status: int = 200,
               access: Rule | None = None) -> Callable:
    """Register a view returning plain data; DomainErrors become JSON error responses."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def view(*args: Any, **kwargs: Any) -> Response:
            try:
                if access is not None:
                    authorize(blueprint, access, kwargs)
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

        blueprint.route(path, methods=list(methods))(view)
        for method in methods:
            ROUTE_ACCESS[(path, method)] = access if access is not None else CALLBACK
        return func

    return decorator


def user_route(blueprint: Any, path: str, methods: tuple[str, ...] = ("GET",), status: int = 200, *,
               access: Rule) -> Callable:
    """A route for API users: a verified bearer token and `access` are required before it runs."""
    if not isinstance(access, Rule):
        raise TypeError(f"user route {path} needs an access Rule")
    return json_route(blueprint, path, methods, status, access=access)


def callback_route(blueprint: Any, path: str, methods: tuple[str, ...] = ("POST",), status: int = 200) -> Callable:
    return json_route(blueprint, path, methods, status)


def request_body(blueprint: Any) -> Any:
    return parse_json_body(blueprint.current_request.raw_body)


def query_params(blueprint: Any) -> dict[str, str]:
    return blueprint.current_request.query_params or {}
