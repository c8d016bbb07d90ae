"""The API's predictor adapter over the wire: `LambdaPredictor` with a real boto3 Lambda client, against
the local twin of the function (`scripts/local_predictor.py`) serving stand-in handlers, and against a
stub that answers as the Lambda service does when it refuses. The in-process twin used by the API's
tests (`tests/fakes/predictor.py`) must map every answer the same way.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from fakes.predictor import InProcessPredictor

from chalicelib.adapters.predictor import LambdaPredictor, invoke_error, result_from_invoke
from chalicelib.errors import InvalidInput, PayloadTooLarge, UpstreamFailed, UpstreamUnavailable
from scripts.local_predictor import DEFAULT_FUNCTION_NAME, MAX_PAYLOAD_BYTES, serve

FUNCTION = DEFAULT_FUNCTION_NAME
PAYLOAD = {"model_id": "model-1", "version": 2, "artifact_uri": "s3://b/models/model-1/v2/",
           "instances": [{"temperature": 21.5}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lambda_client(url: str, read_timeout: float = 10):
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=read_timeout))


# Stand-ins for `trainer.predictor.handler`, one per kind of answer.
def succeeds(event, context):
    return {"model_id": event["model_id"], "version": event["version"], "predictions": ["warm"],
            "probabilities": [[0.25, 0.75]], "classes": ["cold", "warm"]}


def refuses_input(event, context):
    return {"error": {"code": "invalid_input", "message": 'instances[0].temperature must be a number, got "hot"',
                      "field": "instances[0].temperature"}}


def raises(event, context):
    raise RuntimeError("boom in /opt/secret/internal.py with token=abc")


def artifact_broken(event, context):
    return {"error": {"code": "artifact_error",
                      "message": "model artifact s3://b/models/model-1/v2/ cannot be loaded: sha256 mismatch"}}


def storage_busy(event, context):
    return {"error": {"code": "storage_unavailable", "message": "model artifact s3://b/m/v2/ cannot be read right now"}}


def not_json(event, context):
    return {"predictions": {1, 2}}


def no_predictions(event, context):
    return {"model_id": "model-1"}


def unknown_error(event, context):
    return {"error": {"code": "something_new", "message": "internal detail"}}


HANDLERS = [succeeds, refuses_input, raises, artifact_broken, storage_busy, not_json, no_predictions, unknown_error]


@pytest.fixture
def twin(request):
    """The local predictor serving `request.param` (a handler); the handler sees every event."""
    events: list = []
    handler = request.param

    def recording(event, context):
        events.append(event)
        return handler(event, context)

    server = serve(0, handler=recording)
    server.events = events
    yield server
    server.stop()


def outcome(predictor, payload=PAYLOAD):
    """(result, None) or (None, the domain error raised)."""
    try:
        return predictor.predict(payload), None
    except (InvalidInput, PayloadTooLarge, UpstreamFailed, UpstreamUnavailable) as exc:
        return None, exc


@pytest.mark.parametrize("twin", [succeeds], indirect=True)
def test_a_prediction_goes_through_and_comes_back(twin):
    predictor = LambdaPredictor(lambda: lambda_client(twin.url), FUNCTION)
    assert predictor.predict(PAYLOAD) == succeeds(PAYLOAD, None)
    assert twin.events == [PAYLOAD]


@pytest.mark.parametrize("twin", [raises], indirect=True)
def test_a_plain_boto3_client_reads_payload_and_function_error(twin):
    client = boto3.client("lambda", endpoint_url=twin.url, region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    response = client.invoke(FunctionName=FUNCTION, InvocationType="RequestResponse", Payload=json.dumps(PAYLOAD))
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    body = json.loads(response["Payload"].read())
    assert body["errorType"] == "RuntimeError" and "boom" in body["errorMessage"] and body["stackTrace"]
    by_arn = client.invoke(FunctionName=twin.arn(), Payload=json.dumps(PAYLOAD))
    assert by_arn["FunctionError"] == "Unhandled"


@pytest.mark.parametrize("twin", [refuses_input], indirect=True)
def test_invalid_input_is_a_400_naming_the_field(twin):
    with pytest.raises(InvalidInput) as raised:
        LambdaPredictor(lambda: lambda_client(twin.url), FUNCTION).predict(PAYLOAD)
    assert raised.value.field == "instances[0].temperature"
    assert raised.value.message == 'instances[0].temperature must be a number, got "hot"'


@pytest.mark.parametrize("twin", [raises], indirect=True)
def test_a_handler_that_raises_is_a_502_without_its_message_or_trace(twin):
    with pytest.raises(UpstreamFailed) as raised:
        LambdaPredictor(lambda: lambda_client(twin.url), FUNCTION).predict(PAYLOAD)
    message = raised.value.message
    assert message == f"the predictor function '{FUNCTION}' failed (RuntimeError)"
    assert raised.value.to_body() == {"code": "upstream_failed", "message": message}


@pytest.mark.parametrize("twin", [artifact_broken], indirect=True)
def test_an_artifact_error_is_a_502_naming_the_artifact_problem(twin):
    with pytest.raises(UpstreamFailed, match=r"cannot be used: model artifact s3://b/models/model-1/v2/ .*sha256"):
        LambdaPredictor(lambda: lambda_client(twin.url), FUNCTION).predict(PAYLOAD)


@pytest.mark.parametrize("twin", [succeeds], indirect=True)
def test_an_unknown_function_is_a_502(twin):
    with pytest.raises(UpstreamFailed, match="'ml-models-predictor-other' does not exist"):
        LambdaPredictor(lambda: lambda_client(twin.url), "ml-models-predictor-other").predict(PAYLOAD)
    assert twin.events == []


@pytest.mark.parametrize("twin", [succeeds], indirect=True)
def test_a_stopped_or_absent_function_is_a_503(twin):
    predictor = LambdaPredictor(lambda: lambda_client(twin.url), FUNCTION)
    predictor.predict(PAYLOAD)
    twin.stop()
    with pytest.raises(UpstreamUnavailable, match=r"cannot be reached right now \(EndpointConnectionError\)"):
        predictor.predict(PAYLOAD)
    nobody = LambdaPredictor(lambda: lambda_client(f"http://127.0.0.1:{free_port()}"), FUNCTION)
    with pytest.raises(UpstreamUnavailable):
        nobody.predict(PAYLOAD)


@pytest.mark.parametrize("twin", [succeeds], indirect=True)
def test_a_slow_function_is_a_503_after_the_read_timeout(twin):
    def slow(event, context):
        time.sleep(1.5)
        return succeeds(event, context)

    twin.handler = slow
    with pytest.raises(UpstreamUnavailable, match="ReadTimeoutError"):
        LambdaPredictor(lambda: lambda_client(twin.url, read_timeout=0.3), FUNCTION).predict(PAYLOAD)


@pytest.mark.parametrize("twin", [succeeds], indirect=True)
def test_a_payload_over_6_mb_is_a_413_before_the_handler(twin):
    big = {**PAYLOAD, "instances": [{"text": "x" * 1000}] * (MAX_PAYLOAD_BYTES // 1000 + 1)}
    with pytest.raises(PayloadTooLarge) as raised:
        LambdaPredictor(lambda: lambda_client(twin.url), FUNCTION).predict(big)
    assert raised.value.field == "instances" and twin.events == []


@pytest.mark.parametrize("twin", [succeeds], indirect=True)
def test_nan_never_leaves_the_api(twin):
    with pytest.raises(InvalidInput) as raised:
        LambdaPredictor(lambda: lambda_client(twin.url), FUNCTION).predict(
            {**PAYLOAD, "instances": [{"temperature": float("nan")}]})
    assert raised.value.field == "instances" and twin.events == []


@pytest.mark.parametrize("twin", HANDLERS, indirect=True)
def test_the_in_process_twin_maps_every_answer_the_same_way(twin):
    remote_result, remote_error = outcome(LambdaPredictor(lambda: lambda_client(twin.url), FUNCTION))
    local_result, local_error = outcome(InProcessPredictor(twin.handler, function_name=FUNCTION))
    assert local_result == remote_result
    assert type(local_error) is type(remote_error)
    if remote_error is not None:
        assert local_error.to_body() == remote_error.to_body()
        assert "internal detail" not in remote_error.message and "secret" not in remote_error.message


EXPECTED = {
    succeeds: None, refuses_input: InvalidInput, raises: UpstreamFailed, artifact_broken: UpstreamFailed,
    storage_busy: UpstreamUnavailable, not_json: UpstreamFailed, no_predictions: UpstreamFailed,
    unknown_error: UpstreamFailed,
}


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_answer_maps_to_its_error(handler):
    _, error = outcome(InProcessPredictor(handler))
    assert (type(error) if error else None) is EXPECTED[handler]


# ---- refusals of the Lambda service itself ----------------------------------------------------


class RefusingLambda:
    """Answers every Invoke with one status and Lambda-style error (x-amzn-ErrorType header, JSON body)."""

    def __init__(self, status: int, error_type: str) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.requests += 1
                body = json.dumps({"Type": "Service", "message": "refused"}).encode()
                self.send_response(status)
                self.send_header("x-amzn-ErrorType", error_type)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize(("status", "error_type", "expected"), [
    (429, "TooManyRequestsException", UpstreamUnavailable),
    (500, "ServiceException", UpstreamUnavailable),
    (502, "ResourceNotReadyException", UpstreamUnavailable),
    (502, "KMSAccessDeniedException", UpstreamFailed),  # a configuration problem: retrying will not help
    (400, "InvalidRequestContentException", UpstreamFailed),
    (403, "AccessDeniedException", UpstreamFailed),
    (413, "RequestEntityTooLargeException", PayloadTooLarge),
])
def test_service_refusals_map_to_retryable_or_not(status, error_type, expected):
    stub = RefusingLambda(status, error_type)
    try:
        _, error = outcome(LambdaPredictor(lambda: lambda_client(stub.url), FUNCTION))
    finally:
        stub.stop()
    assert type(error) is expected and stub.requests == 1
    if expected is UpstreamFailed:
        assert error_type in error.message


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="http://lambda"),
    ConnectTimeoutError(endpoint_url="http://lambda"),
    ReadTimeoutError(endpoint_url="http://lambda"),
    ClientError({"Error": {"Code": "TooManyRequestsException"}}, "Invoke"),
    ClientError({"Error": {"Code": "EC2ThrottledException"}, "ResponseMetadata": {"HTTPStatusCode": 502}}, "Invoke"),
])
def test_connection_trouble_and_throttling_are_retryable(exc):
    assert type(invoke_error(exc, FUNCTION)) is UpstreamUnavailable


@pytest.mark.parametrize(("raw", "function_error"), [
    (b"not json", None), (b"[1, 2]", None), (b"", None), (b"not json", "Unhandled"),
    (json.dumps({"errorMessage": "Task timed out after 30.00 seconds", "errorType": "Sandbox.Timedout"}).encode(),
     "Unhandled"),
])
def test_unreadable_answers_and_function_errors_are_502s(raw, function_error):
    with pytest.raises(UpstreamFailed) as raised:
        result_from_invoke(raw, function_error, FUNCTION)
    assert "timed out after" not in raised.value.message
