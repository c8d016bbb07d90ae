"""The predictor adapter: online predictions run in a separate function, reached with Lambda Invoke.

The API's package stays free of torch, scikit-learn and numpy: the predictor function (a container
image built from the trainer image, `trainer.predictor.handler`; locally `scripts/local_predictor.py`
behind the same Invoke API) loads the model and predicts. This module hides the Lambda client, the
invoke response (`Payload` stream, `FunctionError`) and botocore's exceptions; callers get the
handler's result dict, or a domain error:

- unreachable, timed out, throttled, Lambda-side failure, storage busy -> `UpstreamUnavailable` (503)
- the function failed (`FunctionError`: an exception, timeout, out of memory), an unreadable
  answer, an artifact that cannot be loaded, any other refusal            -> `UpstreamFailed` (502)
- the handler's `invalid_input`                                           -> `InvalidInput` (400, field)
- a request over Lambda's 6 MB payload limit                              -> `PayloadTooLarge` (413)

Messages never carry the function's error message or stack trace (they stay in its logs).
`result_from_invoke` is shared with the in-process twin (`tests/fakes/predictor.py`), so both map
the same answers to the same errors. boto3/botocore are imported where they are used.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.aws_faults import TRANSIENT_CODES, error_code, unavailable
from chalicelib.errors import DomainError, InvalidInput, PayloadTooLarge, UpstreamFailed, UpstreamUnavailable

log = logging.getLogger("ml_models.predictor")

# Lambda Invoke errors that say "not now" rather than "no" (TooManyRequestsException is in TRANSIENT_CODES).
LAMBDA_TRANSIENT_CODES = frozenset({
    "ServiceException", "ResourceNotReadyException", "EC2ThrottledException", "ENINotReadyException",
    "SnapStartNotReadyException", "SnapStartTimeoutException",
})
# What Lambda answers (413) to a request payload over 6 MB; botocore's model names the last two.
TOO_LARGE_CODES = frozenset({
    "RequestEntityTooLargeException", "RequestTooLargeException", "SerializedRequestEntityTooLargeException",
})
_MESSAGE_CHARS = 1000  # the handler's messages are short; a longer one is cut, not passed on whole


class LambdaPredictor:
    """Invokes the predictor function synchronously (RequestResponse). The client is created on first use.

    The client's read timeout should exceed the function's timeout (a cold load of a large model
    takes a while), and its retries should stay few: a retried invoke runs the predictions again.
    """

    def __init__(self, client_factory: Callable[[], Any], function_name: str) -> None:
        self._client_factory = client_factory
        self._client = None
        self.function_name = function_name

    def predict(self, payload: dict) -> dict:
        """The handler's result for `payload` (see `trainer.predictor`), or a domain error."""
        from botocore.exceptions import BotoCoreError, ClientError

        body = request_body(payload)
        try:
            if self._client is None:
                self._client = self._client_factory()
            response = self._client.invoke(FunctionName=self.function_name, InvocationType="RequestResponse",
                                           Payload=body)
            raw = response["Payload"].read()  # streamed: a dropped connection shows up here
        except (ClientError, BotoCoreError) as exc:
            raise invoke_error(exc, self.function_name) from exc
        return result_from_invoke(raw, response.get("FunctionError"), self.function_name)


def request_body(payload: dict) -> bytes:
    """The Invoke payload: strict JSON (Lambda refuses NaN and Infinity, which Python's json writes)."""
    try:
        return json.dumps(payload, allow_nan=False).encode()
    except ValueError as exc:
        raise InvalidInput("instances hold a NaN or infinite number, which JSON cannot carry",
                           field="instances") from exc


def invoke_error(exc: Exception, function_name: str) -> DomainError:
    """The domain error for a failed Invoke call (the function never answered)."""
    code = error_code(exc)
    if code in TOO_LARGE_CODES:
        return PayloadTooLarge("the prediction request is over the predictor's 6 MB limit; send fewer instances",
                               field="instances")
    if code in LAMBDA_TRANSIENT_CODES or code in TRANSIENT_CODES or (not code and unavailable(exc)):
        log.warning("predictor unavailable", extra={"function": function_name, "cause": code or type(exc).__name__})
        return UpstreamUnavailable(
            f"the predictor function '{function_name}' cannot be reached right now ({code or type(exc).__name__})")
    if code == "ResourceNotFoundException":
        return UpstreamFailed(f"the predictor function '{function_name}' does not exist")
    cause = code or type(exc).__name__
    log.error("predictor invoke refused", extra={"function": function_name, "cause": cause})
    return UpstreamFailed(f"the predictor function '{function_name}' refused the request ({cause})")


def result_from_invoke(raw: bytes, function_error: str | None, function_name: str) -> dict:
    """The handler's success result from an Invoke answer, else the matching domain error (raised)."""
    try:
        result = json.loads(raw) if raw else None
    except ValueError:
        result = None
    if function_error:
        error_type = result.get("errorType") if isinstance(result, dict) else None
        log.error("predictor function error", extra={"function": function_name, "function_error": function_error,
                                                     "error_type": error_type})
        kind = f" ({error_type})" if isinstance(error_type, str) and error_type.isprintable() else ""
        raise UpstreamFailed(f"the predictor function '{function_name}' failed{kind}")
    if not isinstance(result, dict):
        raise UpstreamFailed(f"the predictor function '{function_name}' returned an unreadable answer")
    if "error" in result:
        raise handler_error(result["error"], function_name)
    if not isinstance(result.get("predictions"), list):
        raise UpstreamFailed(f"the predictor function '{function_name}' returned no predictions")
    return result


def handler_error(error: Any, function_name: str) -> DomainError:
    """The domain error for a result `{"error": {"code", "message", "field"?}}` of the handler."""
    error = error if isinstance(error, dict) else {}
    code, message, field = error.get("code"), _text(error.get("message")), error.get("field")
    if code == "invalid_input" and message:
        return InvalidInput(message, field=field if isinstance(field, str) else None)
    if code == "artifact_error":
        return UpstreamFailed(f"the model version cannot be used: {message or 'its artifact cannot be loaded'}")
    if code == "storage_unavailable":
        return UpstreamUnavailable(f"the model version cannot be read right now: {message or 'storage unavailable'}")
    return UpstreamFailed(f"the predictor function '{function_name}' answered an unknown error")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return value if len(value) <= _MESSAGE_CHARS else value[: _MESSAGE_CHARS - 1] + "…"
