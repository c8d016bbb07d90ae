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

from chalicelib.errors import DomainError, InvalidInput, PayloadTooLarge, TooManyRequests, UnsupportedMediaType
from chalicelib.observability import bind_request
from chalicelib.services.access import RequestView, Rule

log = logging.getLogger("ml_models.api")

JSON_HEADERS = {"Content-Type": "application/json"}
CALLBACK = "trainer callback (run token)"
# (path, method) → the route's Rule, or CALLBACK for the trainer's token-authenticated routes.
ROUTE_ACCESS: dict[tuple[str, str], Rule | str] = {}


# How long a client should wait before retrying after a 503 (a dependency unreachable, throttling or
# timing out): about one retry budget of an AWS call (chalicelib/adapters/aws_faults.py).
RETRY_AFTER_SECONDS = 5


def error_response(exc: DomainError) -> Response:
    headers = dict(JSON_HEADERS)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="ml-models"'
    if exc.status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(body=exc.to_body(), status_code=exc.status, headers=headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Limits on a request body's JSON, checked before any service sees it (the body's size is
# limited before this, by guard_request: config.MAX_BODY_BYTES).
# Objects and arrays nest at most this deep; the body itself is the first level. Deeper bodies are
# refused before parsing, so neither the parser nor any code walking the result can exhaust the stack.
MAX_JSON_DEPTH = 32
# A number literal is at most this many characters: Python's int-from-text is quadratic (and refuses
# more than 4,300 digits), and DynamoDB stores no number this long anyway (38 significant digits,
# magnitude up to 1E+125: services.validation.storable_number).
MAX_NUMBER_CHARS = 200

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# A \uD800-\uDFFF escape: the only way a lone surrogate gets into a string that json.loads accepts.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _too_deep(text: str) -> bool:
    """Whether brackets outside strings nest deeper than MAX_JSON_DEPTH (without parsing)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth = depth + 1 if bracket in "[{" else depth - 1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


class _LongNumber(str):
    """A number literal over MAX_NUMBER_CHARS, kept as text until its path is known."""


def _number(convert: Callable[[str], Any], seen: list[str]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            seen.append(text)
            return _LongNumber(text)
        return convert(text)

    return parse


def _not_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_values(node: Any, path: str) -> None:
    """Refuse lone surrogates (in keys and strings) and over-long numbers, naming their path."""
    where = path or "request body"
    if isinstance(node, _LongNumber):
        raise InvalidInput(f"{where} is a number of {len(node)} characters; the limit is {MAX_NUMBER_CHARS}",
                           field=path or None)
    if isinstance(node, str) and _not_unicode(node):
        raise InvalidInput(f"{where} is not valid Unicode (it holds a lone surrogate escape such as \\ud800)",
                           field=path or None)
    if isinstance(node, dict):
        for key, child in node.items():
            if _not_unicode(key):
                raise InvalidInput(f"a key in {where} is not valid Unicode (it holds a lone surrogate escape "
                                   "such as \\ud800)", field=path or None)
            _check_values(child, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _check_values(child, f"{path}[{i}]")


def parse_json_body(raw: bytes | None) -> Any:
    """The request body as JSON; None when empty.

    Refused with InvalidInput (400), never another exception: bytes that are not UTF-8, malformed
    JSON (NaN/Infinity included), nesting deeper than MAX_JSON_DEPTH, number literals longer than
    MAX_NUMBER_CHARS, and strings or keys holding a lone surrogate (valid JSON, but not Unicode text
    anyone can store); the last two name the field's path (`metadata.tags[1]`).
    """
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("request body must be UTF-8 encoded JSON") from None
    if _too_deep(text):
        raise InvalidInput(f"request body nests objects or arrays deeper than {MAX_JSON_DEPTH} levels")
    long_numbers: list[str] = []
    try:
        body = json.loads(text, parse_constant=_reject_constant, parse_int=_number(int, long_numbers),
                          parse_float=_number(float, long_numbers))
    except RecursionError:  # not reached past _too_deep; kept so no body can ever surface one
        raise InvalidInput(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if long_numbers or _SURROGATE_ESCAPE.search(text):
        _check_values(body, "")
    return body


_CHALICE_CODE = re.compile(r"(?<!^)(?=[A-Z])")


def guard_request(event: Any, get_response: Callable[[Any], Response], max_body_bytes: int) -> Response:
    """HTTP middleware: size and media-type checks before routing, JSON errors after.

    Chalice answers some errors itself ({"Code", "Message"}); they are reshaped to
    our {"code", "message"} form so that clients see one error format. Every line logged
    while the request is handled carries its id, and every error body returns it
    (`request_id`), so a caller's report leads to the log line with the details.
    """
    params = event.uri_params or {}
    rid = bind_request(event.context, event.lambda_context, model_id=params.get("model_id"),
                       run_id=params.get("run_id") or event.headers.get("x-training-run-id"))
    try:
        body = event.raw_body if event.method in ("POST", "PUT", "PATCH") else b""
        if body and len(body) > max_body_bytes:
            raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {max_body_bytes}")
        content_type = (event.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        if body and content_type != "application/json":
            raise UnsupportedMediaType(f"Content-Type must be application/json (got '{content_type}')",
                                       field="Content-Type")
    except DomainError as exc:
        return with_request_id(error_response(exc), rid)
    response = get_response(event)
    if isinstance(response.body, dict) and set(response.body) == {"Code", "Message"}:
        code = _CHALICE_CODE.sub("_", response.body["Code"]).lower().removesuffix("_error")
        if response.status_code >= 500:
            response.body = {"code": "internal_error", "message": "An internal error occurred."}
        else:
            response.body = {"code": code, "message": response.body["Message"]}
    return with_request_id(response, rid)


def with_request_id(response: Response, rid: str) -> Response:
    """An error response names the request (`request_id`); its log line has the same id."""
    if response.status_code >= 400 and isinstance(response.body, dict) and "code" in response.body:
        response.body = {**response.body, "request_id": rid}
        log.info("request_refused", extra={"status": response.status_code, "code": response.body["code"],
                                           "reason": response.body.get("message")})
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
                if exc.status >= 500:  # the cause (a botocore or Kubernetes error) goes to the log only
                    log.warning("upstream_failure", extra={"status": exc.status, "reason": exc.message},
                                exc_info=exc)
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
