"""When DynamoDB cannot be reached, the API answers 503 JSON, not a 500 or a traceback."""
from __future__ import annotations

import json
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
    monkeypatch.setenv("AWS_CALL_MAX_ATTEMPTS", "1")
    wiring.reset()
    with Client(app, stage_name="local") as client:
        yield JsonClient(client, issuer.headers(admin=True))
    wiring.reset()
    for table in ALL_TABLES.values():
        table._connection = None  # the next test binds its own endpoint


@pytest.fixture(params=["drop", "reset"])
def api_with_faulty_network(request, monkeypatch, issuer):
    """The API's AWS endpoint closes (FIN) or aborts (RST) every connection, before any reply."""
    from chalice.test import Client
    from fakes.fault_proxy import FaultProxy

    from app import app
    from chalicelib import wiring
    from chalicelib.adapters.tables import ALL_TABLES

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with FaultProxy(("127.0.0.1", closed_port)) as proxy:
        proxy.inject(request.param)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        for key, value in issuer.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_CALL_MAX_ATTEMPTS", "2")
        wiring.reset()
        with Client(app, stage_name="local") as client:
            yield client, issuer.headers(admin=True), proxy
        wiring.reset()
        for table in ALL_TABLES.values():
            table._connection = None


def test_unreachable_database_is_503(api_without_database):
    reply = api_without_database.get("/api/ml-models/model-1")
    assert reply.status == 503
    body = reply.json
    assert body["code"] == "upstream_unavailable" and "database" in body["message"]
    reply = api_without_database.get("/api/ml-models?project_id=p")
    assert reply.status == 503


def test_connection_dropped_mid_request_is_503_with_retry_after(api_with_faulty_network):
    """A connection that ends without a reply raises an error with no response: still 503, not 500."""
    client, headers, proxy = api_with_faulty_network
    for path in ("/api/ml-models/model-1", "/api/ml-models?project_id=p", "/api/ontologies/onto-1"):
        reply = client.http.get(path, headers=headers)
        assert reply.status_code == 503, (path, reply.body)
        assert reply.headers["Retry-After"].isdigit()
        assert json.loads(reply.body)["code"] == "upstream_unavailable"
    assert sum(proxy.faulted.values()) >= 3 * 2  # every attempt met the fault (two per call)
