"""Per-run AWS credentials: refreshed through the API's credentials callback before they
expire, with the run's token; the default chain when the run has none."""
from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from trainer.config import Settings
from trainer.credentials import CredentialsRefreshFailed, aws_session
from trainer.storage import s3_client

TOKEN = "run-token-3c9e"
FRESH = {"access_key_id": "ASIAFRESHKEY0002", "secret_access_key": "fresh-secret-b71d",
         "session_token": "fresh-session-5e0a"}


class CredentialsEndpoint:
    """Stands in for POST /api/ml-models/<id>/training/credentials on 127.0.0.1, free port."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.status = 200
        self.expires_in = timedelta(hours=1)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (stdlib name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.calls.append({"path": self.path, "auth": self.headers["Authorization"],
                                       "run": self.headers["X-Training-Run-Id"]})
                body = {**FRESH, "expiration": (datetime.now(UTC) + endpoint.expires_in).isoformat()}
                data = json.dumps(body if endpoint.status == 200 else {"code": "unauthorized"}).encode()
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = CredentialsEndpoint()
    yield server
    server.stop()


def settings_for(url: str, expires_in: timedelta | None) -> Settings:
    env = {"TRAINER_MODEL_ID": "model-7", "TRAINER_RUN_ID": "run-7", "TRAINER_CALLBACK_URL": url + "/",
           "TRAINER_CALLBACK_TOKEN": TOKEN, "TRAINER_ARTIFACT_BUCKET": "artifacts", "TRAINER_SPEC": "{}",
           "TRAINER_CALLBACK_BACKOFF": "0", "AWS_REGION": "us-east-1"}
    if expires_in is not None:
        env.update({"AWS_ACCESS_KEY_ID": "ASIAFIRSTKEY0001", "AWS_SECRET_ACCESS_KEY": "first-secret-a0c2",
                    "AWS_SESSION_TOKEN": "first-session-9d4f",
                    "TRAINER_CREDENTIALS_EXPIRATION": (datetime.now(UTC) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")})
    return Settings.from_env(env)


def signing_key(client) -> str:
    """The access key the client signs with, as a presigned URL shows it."""
    query = parse_qs(urlsplit(client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})).query)
    if "X-Amz-Credential" in query:  # SigV4
        return query["X-Amz-Credential"][0].split("/")[0]
    return query["AWSAccessKeyId"][0]


def test_credentials_near_expiry_are_refreshed_through_the_api_with_the_run_token(endpoint, caplog):
    caplog.set_level(logging.DEBUG, logger="trainer")  # botocore itself is kept at WARNING (trainer.logs)
    session = aws_session(settings_for(endpoint.url, timedelta(minutes=5)))  # inside botocore's 10-minute window
    s3 = s3_client("http://127.0.0.1:1", session)

    assert signing_key(s3) == FRESH["access_key_id"]
    frozen = session.get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        FRESH["access_key_id"], FRESH["secret_access_key"], FRESH["session_token"])
    assert endpoint.calls == [{"path": "/api/ml-models/model-7/training/credentials", "auth": f"Bearer {TOKEN}",
                               "run": "run-7"}]
    for secret in (TOKEN, "first-secret-a0c2", "first-session-9d4f", *FRESH.values()):
        assert secret not in caplog.text
    assert "credentials refreshed" in caplog.text


def test_credentials_far_from_expiry_are_used_as_they_are(endpoint):
    session = aws_session(settings_for(endpoint.url, timedelta(minutes=55)))

    assert signing_key(s3_client(None, session)) == "ASIAFIRSTKEY0001"
    assert endpoint.calls == []


def test_a_refused_refresh_of_expired_credentials_fails_the_run_with_a_reason(endpoint):
    endpoint.status = 401
    session = aws_session(settings_for(endpoint.url, timedelta(minutes=-1)))

    with pytest.raises(CredentialsRefreshFailed, match="HTTP 401") as raised:
        session.get_credentials().get_frozen_credentials()

    assert TOKEN not in raised.value.reason and len(endpoint.calls) == 1  # a 4xx is not retried


def test_without_an_expiration_the_default_chain_applies(endpoint):
    session = aws_session(settings_for(endpoint.url, None))

    assert session.get_credentials().access_key == "testing"  # tests/conftest.py's dummy credentials
    assert signing_key(s3_client(None, session)) == "testing"
    assert endpoint.calls == []
