"""When DynamoDB cannot be reached, the API answers 503 JSON, not a 500 or a traceback."""
from __future__ import annotations

import socket

import pytest
from conftest import JsonClient


@pytest.fixture
def api_without_database(monkeypatch, issuer):
    from chalice.test import Client

    from app import app
    from chalicelib import wiring
    from chalicelib.adapters.tables import ALL_TABLES

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    for key, value in issuer.env().items():
        monkeypatch.setenv(key, value)
    for table in ALL_TABLES.values():
        monkeypatch.setattr(table.Meta, "max_retry_attempts", 0, raising=False)
    wiring.reset()
    with Client(app, stage_name="local") as client:
        yield JsonClient(client, issuer.headers(admin=True))
    wiring.reset()


def test_unreachable_database_is_503(api_without_database):
    reply = api_without_database.get("/api/ml-models/model-1")
    assert reply.status == 503
    body = reply.json
    assert body["code"] == "upstream_unavailable" and "database" in body["message"]
    reply = api_without_database.get("/api/ml-models?project_id=p")
    assert reply.status == 503
