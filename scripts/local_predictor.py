"""The local twin of the predictor function: `trainer.predictor.handler` behind the Lambda Invoke API.

    python -m scripts.local_predictor --port 8084          # port 0 picks a free one

The API reaches it exactly as it reaches the function in AWS, with boto3
`lambda.invoke(FunctionName=..., InvocationType="RequestResponse", Payload=...)`, only with the
Lambda client's `endpoint_url` set to this server. What Lambda does, this does too:

- `POST /2015-03-31/functions/{FunctionName}/invocations`; the name, or an ARN ending in
  `:function:<name>` (a qualifier is ignored). Another name: 404 `ResourceNotFoundException`.
- A request payload over 6 MB (6,291,456 bytes): 413 `RequestEntityTooLargeException`; one that
  is not JSON (NaN and Infinity included): 400 `InvalidRequestContentException`. Empty means `{}`.
- The handler's result: 200 with its JSON. If the handler raises: 200, `X-Amz-Function-Error:
  Unhandled` and `{"errorMessage", "errorType", "stackTrace"}`; a result that is not JSON or is
  over 6 MB is a function error too (`Runtime.MarshalError`, `Function.ResponseSizeTooLarge`).
- `X-Amz-Invocation-Type`: RequestResponse (the default) and DryRun (204). Event (asynchronous)
  is refused with 400 `InvalidParameterValueException`: the API never uses it.

S3 access comes from this process's environment (AWS_ENDPOINT_URL, credentials), as the function's
comes from its role. The first line on stdout is `{"url": ..., "function_name": ...}`.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 8084
DEFAULT_FUNCTION_NAME = "ml-models-predictor-local"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # synchronous Invoke: request and response
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
FAKE_ACCOUNT = "000000000000"
FAKE_REGION = "us-east-1"
_DRAIN_CHUNK = 1 << 16

log = logging.getLogger("local_predictor")

Handler = Callable[[Any, Any], Any]


class LocalPredictorServer:
    """The Invoke API on a loopback port, served from a daemon thread (one thread per request)."""

    def __init__(self, port: int = DEFAULT_PORT, function_name: str = DEFAULT_FUNCTION_NAME,
                 handler: Handler | None = None, host: str = "127.0.0.1") -> None:
        if handler is None:
            from trainer.predictor import handler
        self.function_name = function_name
        self.handler = handler
        self._httpd = _InvokeHTTPServer((host, port), self)
        self.host, self.port = host, self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-predictor", daemon=True)
        self._thread.start()

    def arn(self) -> str:
        return f"arn:aws:lambda:{FAKE_REGION}:{FAKE_ACCOUNT}:function:{self.function_name}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LocalPredictorServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(port: int = DEFAULT_PORT, function_name: str = DEFAULT_FUNCTION_NAME, handler: Handler | None = None,
          host: str = "127.0.0.1") -> LocalPredictorServer:
    """Start the twin (port 0 picks a free one); `.port`, `.url`, `.stop()`. `handler` defaults to
    `trainer.predictor.handler`."""
    return LocalPredictorServer(port, function_name, handler, host)


def named_function(path_name: str) -> str:
    """The function name in an Invoke path: a name or a (partial) ARN, with or without a qualifier."""
    name = unquote(path_name)
    if ":function:" in name:
        name = name.split(":function:", 1)[1]
    return name.split(":", 1)[0]


def invoke(handler: Handler, body: bytes) -> tuple[bytes, str | None]:
    """(answer payload, function error or None) of one synchronous invocation of `handler`."""
    event = json.loads(body, parse_constant=_refuse_constant) if body.strip() else {}
    try:
        result = handler(event, None)
    except Exception as exc:  # noqa: BLE001 - any exception is a function error, as in Lambda
        log.exception("the handler raised")
        return _function_error(str(exc), type(exc).__name__, traceback.format_exception(exc)), "Unhandled"
    try:
        payload = json.dumps(result).encode()
    except (TypeError, ValueError) as exc:
        return _function_error(f"Unable to marshal response: {exc}", "Runtime.MarshalError"), "Unhandled"
    if len(payload) > MAX_PAYLOAD_BYTES:
        message = f"Response payload size ({len(payload)} bytes) exceeded maximum allowed payload size " \
                  f"({MAX_PAYLOAD_BYTES} bytes)."
        return _function_error(message, "Function.ResponseSizeTooLarge"), "Unhandled"
    return payload, None


def _function_error(message: str, error_type: str, stack: list[str] | None = None) -> bytes:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if stack is not None:
        body["stackTrace"] = [line.rstrip("\n") for line in stack]
    return json.dumps(body).encode()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class _ServiceError(Exception):
    """An answer of the Lambda service itself (not of the function)."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def _refusal(path: str, length: int, function_name: str) -> _ServiceError | None:
    """What the Lambda service answers instead of invoking (unknown route or function, payload too large)."""
    match = INVOKE_PATH.match(urlsplit(path).path)
    if not match:
        return _ServiceError(404, "UnknownOperationException", f"Unknown operation: POST {path}")
    name = named_function(match["name"])
    if name != function_name:
        arn = f"arn:aws:lambda:{FAKE_REGION}:{FAKE_ACCOUNT}:function:{name}"
        return _ServiceError(404, "ResourceNotFoundException", f"Function not found: {arn}")
    if length > MAX_PAYLOAD_BYTES:
        return _ServiceError(413, "RequestEntityTooLargeException",
                             f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction operation")
    return None


class _RequestHandler(BaseHTTPRequestHandler):
    server: _InvokeHTTPServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        try:
            self._invoke()
        except _ServiceError as error:
            body = json.dumps({"Type": "User", "message": error.message}).encode()
            self._answer(error.status, body, {"x-amzn-ErrorType": error.error_type})

    def _invoke(self) -> None:
        predictor = self.server.predictor
        length = int(self.headers.get("Content-Length") or 0)
        refusal = _refusal(self.path, length, predictor.function_name)
        if refusal is not None:
            self._drain(length)  # so the client reads the answer rather than a reset connection
            raise refusal
        body = self.rfile.read(length)
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "DryRun":
            return self._answer(204, b"")
        if kind != "RequestResponse":
            raise _ServiceError(400, "InvalidParameterValueException",
                                f"the local predictor supports RequestResponse and DryRun, not {kind}")
        try:
            payload, function_error = invoke(predictor.handler, body)
        except ValueError as exc:
            raise _ServiceError(400, "InvalidRequestContentException",
                                f"Could not parse request body into json: {exc}") from exc
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if function_error:
            headers["X-Amz-Function-Error"] = function_error
        self._answer(200, payload, headers)

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, _DRAIN_CHUNK))
            if not chunk:
                break
            length -= len(chunk)

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its read timeout)
            log.info("the client left before the answer", extra={"path": self.path})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s " + format, self.address_string(), *args)


class _InvokeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], predictor: LocalPredictorServer) -> None:
        self.predictor = predictor
        super().__init__(address, _RequestHandler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The predictor function behind a local Lambda Invoke API.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--function-name", default=DEFAULT_FUNCTION_NAME)
    args = parser.parse_args(argv)

    from trainer.logs import configure

    configure({"component": "local_predictor"})
    logging.getLogger("local_predictor").setLevel(logging.INFO)
    server = serve(args.port, args.function_name)
    print(json.dumps({"url": server.url, "function_name": server.function_name}), flush=True)
    log.info("serving the predictor", extra={"url": server.url, "function_name": server.function_name})
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
