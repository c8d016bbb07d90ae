"""Which AWS failures are 'unavailable' (503), and the time budget every AWS client gets."""
from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from pynamodb.exceptions import GetError, PutError, QueryError
from urllib3.exceptions import ProtocolError

from chalicelib.adapters.aws_faults import unavailable
from chalicelib.adapters.dynamo import dynamo_call
from chalicelib.config import Settings
from chalicelib.errors import UpstreamUnavailable


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetItem")


UNAVAILABLE = [
    ConnectionClosedError(endpoint_url="http://db"),  # dropped mid-request: no response at all
    ReadTimeoutError(endpoint_url="http://db"),
    ConnectTimeoutError(endpoint_url="http://db"),
    EndpointConnectionError(endpoint_url="http://db"),
    ResponseStreamingError(error="reset"),
    ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
    ConnectionResetError(104, "reset"),
    client_error("ProvisionedThroughputExceededException"),
    client_error("ThrottlingException"),
    client_error("SlowDown", 503),
    client_error("InternalError", 500),
    client_error("Whatever", 502),
]
OURS = [
    client_error("ConditionalCheckFailedException"),
    client_error("ValidationException"),
    client_error("ResourceNotFoundException"),
    client_error("AccessDenied", 403),
    ValueError("not an AWS error"),
]


@pytest.mark.parametrize("error", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_unreachable_throttled_or_timed_out_is_unavailable(error):
    assert unavailable(error)
    assert unavailable(GetError("Failed to get item", error))  # as PynamoDB wraps it


@pytest.mark.parametrize("error", OURS, ids=lambda e: getattr(e, "response", {}).get("Error", {}).get("Code", "x"))
def test_errors_of_our_request_are_not_unavailable(error):
    assert not unavailable(error)
    assert not unavailable(PutError("Failed to put item", error))


@pytest.mark.parametrize("error", [ConnectionClosedError(endpoint_url="u"), ReadTimeoutError(endpoint_url="u"),
                                   client_error("ThrottlingException")], ids=lambda e: type(e).__name__)
def test_dynamo_call_maps_connection_errors_to_503_without_raising_on_a_missing_response(error):
    @dynamo_call
    def read():
        raise QueryError("Failed to query items", error)

    with pytest.raises(UpstreamUnavailable, match="temporarily unavailable"):
        read()


def test_dynamo_call_leaves_errors_of_ours_alone():
    @dynamo_call
    def write():
        raise PutError("Failed to put item", client_error("ValidationException"))

    with pytest.raises(PutError):
        write()


def test_the_budget_comes_from_the_environment_and_ends_well_inside_the_lambda_timeout():
    defaults = Settings()
    worst = defaults.aws_max_attempts * (defaults.aws_connect_timeout_seconds + defaults.aws_read_timeout_seconds)
    assert worst + 1 < 20  # one call, backoff included, leaves room in a 30 s Lambda
    settings = Settings.from_environ({"AWS_CONNECT_TIMEOUT_SECONDS": "0.5", "AWS_READ_TIMEOUT_SECONDS": "1.5",
                                      "AWS_CALL_MAX_ATTEMPTS": "3"})
    assert (settings.aws_connect_timeout_seconds, settings.aws_read_timeout_seconds,
            settings.aws_max_attempts) == (0.5, 1.5, 3)


def test_every_client_and_table_gets_the_budget(monkeypatch):
    from chalicelib import wiring
    from chalicelib.adapters.tables import ALL_TABLES, bind_tables

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(aws_endpoint_url="http://127.0.0.1:9", aws_connect_timeout_seconds=1.5,
                        aws_read_timeout_seconds=4.0, aws_max_attempts=2)
    config = wiring.aws_client(settings, "s3").meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.5, 4.0)
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
    sts = wiring.aws_client(settings, "sts").meta.config
    assert (sts.connect_timeout, sts.read_timeout) == (1.5, 4.0)
    management = wiring.management_client(settings, "http://127.0.0.1:9").meta.config
    assert (management.connect_timeout, management.read_timeout) == (1.5, 4.0)

    for table in ALL_TABLES.values():
        for name in ("table_name", "region", "host", "connect_timeout_seconds", "read_timeout_seconds",
                     "max_retry_attempts"):
            monkeypatch.setattr(table.Meta, name, getattr(table.Meta, name, None), raising=False)
        monkeypatch.setattr(table, "_connection", None)
    bind_tables(settings)
    for table in ALL_TABLES.values():
        client = table._get_connection().connection.client
        assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (1.5, 4.0)
        # PynamoDB counts retries, botocore attempts: 1 retry is 2 attempts.
        assert client.meta.config.retries["total_max_attempts"] == 2
