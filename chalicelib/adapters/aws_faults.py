"""Which AWS failures mean "the dependency is unavailable right now" (503, retry later).

Every adapter asks `unavailable(exc)` at its boundary, so an unreachable, throttled or timed-out
DynamoDB, S3, STS or WebSocket management API becomes `UpstreamUnavailable` the same way
everywhere. `client_config(settings)` gives each boto3 client the stage's connect/read timeouts
and retry budget (`Settings.aws_*`), which together bound how long one call can take.
"""
from __future__ import annotations

from typing import Any

# Error codes AWS services answer when the caller should slow down or try again shortly.
TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "RequestLimitExceeded",
    "TooManyRequestsException", "InternalServerError", "InternalFailure", "InternalError", "ServiceUnavailable",
    "ServiceUnavailableException", "SlowDown", "RequestTimeout", "RequestTimeoutException",
    "LimitExceededException",
})


def client_config(settings: Any) -> Any:
    """botocore Config with the stage's timeouts and retry budget ("standard" mode retries throttling,
    5xx and connection errors with jittered exponential backoff)."""
    from botocore.config import Config

    return Config(connect_timeout=settings.aws_connect_timeout_seconds,
                  read_timeout=settings.aws_read_timeout_seconds,
                  retries={"total_max_attempts": settings.aws_max_attempts, "mode": "standard"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else, including errors without a response)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    error = response.get("Error")
    return str(error.get("Code", "")) if isinstance(error, dict) else ""


def _http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    metadata = response.get("ResponseMetadata") if isinstance(response, dict) else None
    status = metadata.get("HTTPStatusCode") if isinstance(metadata, dict) else None
    return status if isinstance(status, int) else 0


def unavailable(exc: BaseException | None) -> bool:
    """True when `exc` (or what it wraps) says the service could not be reached, timed out,
    dropped the connection or asked us to back off; False for errors in our request."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, IncompleteReadError
    from urllib3.exceptions import HTTPError as Urllib3Error

    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, ClientError):
            return error_code(exc) in TRANSIENT_CODES or _http_status(exc) >= 500 or _http_status(exc) == 429
        # ConnectionError: EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError;
        # HTTPClientError: ReadTimeoutError, ConnectionClosedError, ResponseStreamingError.
        if isinstance(exc, (ConnectionError, HTTPClientError, IncompleteReadError, Urllib3Error, OSError)):
            return True
        # PynamoDB keeps the botocore error as `.cause`; others chain it.
        exc = getattr(exc, "cause", None) or exc.__cause__
        seen += 1
    return False
