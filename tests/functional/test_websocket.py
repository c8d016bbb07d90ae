"""WebSocket handlers and notifications, against moto's DynamoDB, with a fake poster."""
from __future__ import annotations

import json

import pytest
from conftest import install_graph
from runs import own_artifact


class FakePoster:
    """Records what the app posts to each connection; some connections can be gone or broken."""

    endpoint_url = "https://ws.example.test/api"

    def __init__(self) -> None:
        self.sent: dict[str, list[dict]] = {}
        self.gone: set[str] = set()
        self.broken = False

    def post(self, connection_id, payload, endpoint_url=None):
        if self.broken:
            raise RuntimeError("management API down")
        if connection_id in self.gone:
            return False
        self.sent.setdefault(connection_id, []).append(payload)
        return True

    def events(self, connection_id):
        return [p for p in self.sent.get(connection_id, []) if p["event"] not in ("subscribed", "unsubscribed")]


def ws_event(route: str, connection_id: str, body: str | None = None, query: dict | None = None,
             headers: dict | None = None) -> dict:
    event = {"requestContext": {"routeKey": route, "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}
                                .get(route, "MESSAGE"), "connectionId": connection_id,
                                "domainName": "ws.example.test", "stage": "api", "apiId": "abc123"},
             "isBase64Encoded": False}
    if body is not None:
        event["body"] = body
    if query is not None:
        event["queryStringParameters"] = query
    if headers is not None:
        event["headers"] = headers
    return event


@pytest.fixture
def ws(api, issuer, launcher):
    """Drives the app's WebSocket handlers the way API Gateway invokes them."""
    import app as websocket  # the Lambda entry points API Gateway invokes

    poster = FakePoster()
    graph = install_graph(launcher=launcher, ws_poster=poster)

    class Socket:
        def __init__(self):
            self.poster = poster
            self.store = graph.notifier.store

        def open(self, cid, query=None, headers=None) -> dict:
            return websocket.ws_connect(ws_event("$connect", cid, query=query, headers=headers), None)

        def connect(self, cid, token: str | None = None):
            """Connect with `token` (default: an admin's) in the query string, as browsers do."""
            reply = self.open(cid, query={"token": token or issuer.token(admin=True)})
            assert reply["statusCode"] == 200, reply

        def send(self, cid, message):
            body = message if isinstance(message, str) else json.dumps(message)
            assert websocket.ws_message(ws_event("$default", cid, body), None)["statusCode"] == 200
            return poster.sent[cid][-1]

        def disconnect(self, cid) -> dict:
            return websocket.ws_disconnect(ws_event("$disconnect", cid), None)

    return Socket()


def test_subscribe_and_unsubscribe_are_acknowledged(ws, project):
    ws.connect("c1")
    assert ws.send("c1", {"action": "subscribe", "project_id": project}) == {"event": "subscribed",
                                                                              "project_id": project}
    assert ws.send("c1", {"action": "unsubscribe", "project_id": project}) == {"event": "unsubscribed",
                                                                                "project_id": project}


@pytest.mark.parametrize(("message", "needle"), [
    ("not json", "valid JSON"),
    ("[1, 2]", "JSON object"),
    ("", "JSON object"),
    ({"action": "dance", "project_id": "p"}, "action"),
    ({"action": "subscribe"}, "exactly one"),
    ({"action": "subscribe", "project_id": "p", "model_id": "m"}, "exactly one"),
    ({"action": "subscribe", "project_id": 7}, "project_id"),
    ("x" * 5000, "at most"),
])
def test_malformed_messages_are_answered_not_crashed(ws, message, needle):
    ws.connect("c1")
    reply = ws.send("c1", message)
    assert reply["event"] == "error" and needle in reply["message"]


def test_events_go_only_to_the_right_subscribers(ws, api, make_model, project):
    model = make_model()
    ws.connect("project-fan")
    ws.connect("model-fan")
    ws.connect("other-project")
    ws.connect("idle")
    ws.send("project-fan", {"action": "subscribe", "project_id": project})
    ws.send("model-fan", {"action": "subscribe", "model_id": model["id"]})
    ws.send("other-project", {"action": "subscribe", "project_id": "proj-other"})
    api.put(f"/api/ml-models/{model['id']}", {"status": "archived"})
    for cid in ("project-fan", "model-fan"):
        events = ws.poster.events(cid)
        assert len(events) == 1
        event = events[0]
        assert event["event"] == "model.status_changed" and event["status"] == "archived"
        assert event["previous_status"] == "draft" and event["model_id"] == model["id"]
        assert event["project_id"] == project and event["at"]
    assert ws.poster.events("other-project") == [] and ws.poster.events("idle") == []
    # A PUT that does not change the status sends nothing.
    api.put(f"/api/ml-models/{model['id']}", {"description": "x"})
    assert len(ws.poster.events("project-fan")) == 1
    api.delete(f"/api/ml-models/{model['id']}")
    assert ws.poster.events("model-fan")[-1]["event"] == "model.deleted"


def test_unsubscribed_and_disconnected_connections_get_nothing(ws, api, make_model, project):
    model = make_model()
    ws.connect("a")
    ws.connect("b")
    ws.send("a", {"action": "subscribe", "project_id": project})
    ws.send("b", {"action": "subscribe", "project_id": project})
    ws.send("a", {"action": "unsubscribe", "project_id": project})
    ws.disconnect("b")
    assert ws.store.subscriptions("b") == []
    api.put(f"/api/ml-models/{model['id']}", {"status": "archived"})
    assert ws.poster.events("a") == [] and ws.poster.events("b") == []


def test_a_gone_connection_is_removed_on_first_failed_send(ws, api, make_model, project):
    from chalicelib.adapters.websocket import topic

    store = ws.store
    model = make_model()
    ws.connect("gone")
    ws.connect("alive")
    ws.send("gone", {"action": "subscribe", "project_id": project})
    ws.send("alive", {"action": "subscribe", "project_id": project})
    ws.poster.gone.add("gone")
    api.put(f"/api/ml-models/{model['id']}", {"status": "archived"})
    assert store.subscribers([topic("project", project)]) == ["alive"]
    assert not store.is_connected("gone") and store.subscriptions("gone") == []
    assert len(ws.poster.events("alive")) == 1


def test_a_failure_to_notify_never_fails_the_api_call(ws, api, make_model, project):
    model = make_model()
    ws.connect("c")
    ws.send("c", {"action": "subscribe", "project_id": project})
    ws.poster.broken = True
    reply = api.put(f"/api/ml-models/{model['id']}", {"status": "archived"})
    assert reply.status == 200 and reply.json["status"] == "archived"


def watched_run(ws, api, make_model, launcher):
    """A model in training, watched by connection "c": the model, its job and the job's callback headers."""
    model = make_model()
    ws.connect("c")
    ws.send("c", {"action": "subscribe", "model_id": model["id"]})
    assert api.post("/api/ml-models/train", {"model_id": model["id"]}).status == 202
    job = launcher.jobs[-1]
    return model, job, {"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id}


def test_training_events_and_progress(ws, api, make_model, project, launcher):
    model, job, auth = watched_run(ws, api, make_model, launcher)
    path = f"/api/ml-models/{model['id']}/training"
    for epoch in (1, 2):
        reply = api.post(f"{path}/progress", {"epoch": epoch, "training_loss": 1.0 / epoch,
                                              "validation_loss": 1.5 / epoch}, headers=auth)
        assert reply.status == 200, reply
    assert api.get(f"/api/ml-models/{model['id']}").json["training_metrics"] == {
        "epoch": 2, "training_loss": 0.5, "validation_loss": 0.75}
    assert api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}").json["status"] == "running"
    assert api.post(f"{path}/progress", {"epoch": 3}, headers={"Authorization": "Bearer forged"}).status == 401
    assert api.post(f"{path}/progress", {"epoch": -1}, headers=auth).status == 400
    reply = api.post(f"{path}/progress", {"epoch": 3, "training_loss": "abc"}, headers=auth)
    assert reply.status == 400 and reply.json["field"] == "training_loss"
    # Numbers DynamoDB could not store are refused here, not by the table (a 5xx).
    for body, field in (({"epoch": 10**40}, "epoch"), ({"epoch": 3, "validation_loss": 1e300}, "validation_loss")):
        reply = api.post(f"{path}/progress", body, headers=auth)
        assert (reply.status, reply.json["field"]) == (400, field), reply.json
    reply = api.post(f"{path}/complete", {"model_artifact_path": own_artifact(api, job),
                                          "performance_metrics": {"accuracy": 0.9}}, headers=auth)
    assert reply.status == 200, reply
    events = ws.poster.events("c")
    assert [(e["event"], e.get("status"), e.get("epoch")) for e in events] == [
        ("model.status_changed", "training", None),
        ("training.progress", None, 1),
        ("training.progress", None, 2),
        ("model.status_changed", "trained", None),
    ]
    assert events[0]["previous_status"] == "draft" and events[0]["run_id"] == job.run_id
    assert events[1] == {"event": "training.progress", "model_id": model["id"], "run_id": job.run_id, "epoch": 1,
                         "training_loss": 1.0, "validation_loss": 1.5}
    assert events[3]["previous_status"] == "training"
    # Progress after the run ended is refused.
    assert api.post(f"{path}/progress", {"epoch": 9}, headers=auth).status == 409


def test_search_trials_are_progress_events_and_bad_trial_reports_name_the_field(ws, api, make_model, launcher):
    """A tuned run reports each trial (`tuning`): kept on the model as tuning_progress, sent to subscribers."""
    model, job, auth = watched_run(ws, api, make_model, launcher)
    path = f"/api/ml-models/{model['id']}/training/progress"
    trial = {"trial": 3, "trials_done": 4, "state": "complete", "score": 0.81, "best_score": 0.84,
             "metric": "accuracy", "elapsed_seconds": 12.5, "budget_seconds": 60, "max_trials": 50}
    assert api.post(path, {"tuning": trial}, headers=auth).status == 200
    assert api.get(f"/api/ml-models/{model['id']}").json["training_metrics"] == {"tuning_progress": trial}
    assert ws.poster.events("c")[-1] == {"event": "training.progress", "model_id": model["id"],
                                         "run_id": job.run_id, "tuning": trial}
    for bad, field in (({"trial": -1}, "tuning.trial"), ({"state": "sleeping"}, "tuning.state"),
                       ({"best_score": "high"}, "tuning.best_score"), ({"seed": 1}, "tuning.seed"),
                       ({"trial": 10**40}, "tuning.trial"), ({"score": 1e300}, "tuning.score")):
        reply = api.post(path, {"tuning": bad}, headers=auth)
        assert (reply.status, reply.json["field"]) == (400, field), (bad, reply.json)
    reply = api.post(path, {}, headers=auth)
    assert reply.status == 400 and "epoch or tuning" in reply.json["message"]


def test_connect_needs_a_valid_token(ws, issuer):
    assert ws.open("anon")["statusCode"] == 401
    assert ws.open("bad", query={"token": "not-a-jwt"})["statusCode"] == 401
    assert ws.open("expired", query={"token": issuer.token(admin=True, ttl_seconds=-120)})["statusCode"] == 401
    assert ws.open("wrong-aud", query={"token": issuer.token(admin=True, aud="someone-else")})["statusCode"] == 401
    header = {"Authorization": f"Bearer {issuer.token({'p': 'viewer'})}"}
    assert ws.open("by-header", headers=header)["statusCode"] == 200
    assert not ws.store.is_connected("anon") and ws.store.is_connected("by-header")


def test_subscriptions_only_to_what_the_caller_may_read(ws, api, issuer, make_model, project):
    model = make_model()
    ws.connect("viewer", issuer.token({project: "viewer"}))
    ws.connect("outsider", issuer.token({"proj-elsewhere": "editor"}))
    assert ws.send("viewer", {"action": "subscribe", "project_id": project})["event"] == "subscribed"
    assert ws.send("viewer", {"action": "subscribe", "model_id": model["id"]})["event"] == "subscribed"
    refused = ws.send("outsider", {"action": "subscribe", "project_id": project})
    assert refused["event"] == "error" and refused["field"] == "project_id"
    foreign = ws.send("outsider", {"action": "subscribe", "model_id": model["id"]})
    unknown = ws.send("outsider", {"action": "subscribe", "model_id": "model-nope"})
    assert foreign["event"] == unknown["event"] == "error"
    assert foreign["message"].replace(model["id"], "X") == unknown["message"].replace("model-nope", "X")
    api.put(f"/api/ml-models/{model['id']}", {"status": "archived"})
    assert len(ws.poster.events("viewer")) == 1  # project and model topic: delivered once
    assert [e for e in ws.poster.events("outsider") if e["event"] != "error"] == []


def test_at_most_fifty_subscriptions_per_connection(ws, issuer):
    ws.connect("busy")
    for i in range(50):
        assert ws.send("busy", {"action": "subscribe", "project_id": f"proj-{i}"})["event"] == "subscribed"
    reply = ws.send("busy", {"action": "subscribe", "project_id": "proj-50"})
    assert reply["event"] == "error" and "50" in reply["message"]
    assert len(ws.store.subscriptions("busy")) == 50


def test_subscriptions_lapse_when_the_token_expires(ws, api, issuer, make_model, project):
    from chalicelib.adapters.websocket import topic

    make_model()
    ws.connect("short", issuer.token({project: "viewer"}, ttl_seconds=60))
    ws.send("short", {"action": "subscribe", "project_id": project})
    assert ws.store.subscribers([topic("project", project)]) == ["short"]
    real_now = ws.store.now
    ws.store.now = lambda: real_now() + 120
    try:
        assert ws.store.subscribers([topic("project", project)]) == []
    finally:
        ws.store.now = real_now


@pytest.fixture
def connections_table_down(ws, monkeypatch):
    """The connections table's DynamoDB endpoint refuses connections (one attempt per call)."""
    import socket

    from chalicelib.adapters.tables import WsConnectionTable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setattr(WsConnectionTable.Meta, "host", f"http://127.0.0.1:{closed}")
    monkeypatch.setattr(WsConnectionTable.Meta, "max_retry_attempts", 0)
    monkeypatch.setattr(WsConnectionTable, "_connection", None)
    return ws


def test_websocket_handlers_answer_an_outage_without_a_500(ws, connections_table_down, issuer):
    reply = ws.open("during-outage", query={"token": issuer.token(admin=True)})
    assert reply["statusCode"] == 503, reply
    assert reply["headers"]["Retry-After"].isdigit() and "upstream_unavailable" in reply["body"]
    # A message is answered with an error the client can act on; a disconnect does not fail.
    answer = ws.send("during-outage", {"action": "subscribe", "project_id": "p"})
    assert answer["event"] == "error" and "retry" in answer["message"]
    assert ws.disconnect("during-outage")["statusCode"] == 200
