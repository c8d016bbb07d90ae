"""Who may do what, route by route: one table of every user route (HTTP and WebSocket) and what each
kind of caller gets, for a record of the caller's own project and of another project.

The callers: no token, an expired one, one from another issuer, for another audience, with a
broken signature, with `alg: none` (all 401); a viewer, an editor and an admin. A viewer reads
its project and may not write it (403); an editor of another project is refused a project it
names outright (403) and gets 404 for another project's record, word for word what an unknown
id gets; an admin may do everything. A refused write changes nothing.

`test_every_route_is_in_the_table` fails when a route is added without an entry here.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import pytest
from conftest import install_graph

from chalicelib.api.http import CALLBACK, ROUTE_ACCESS
from chalicelib.services.access import READ

DATA = "ml-models-data-local"
OWN, OTHER = "own", "other"


@dataclass
class Request:
    method: str
    path: str
    body: dict | None = None
    # The record a write would change (read back as an admin to show a refusal changed nothing).
    record: str | None = None


@dataclass(frozen=True)
class Route:
    ok: int  # the status when the caller may do it
    build: Callable[[dict], Request]


ROUTES: dict[tuple[str, str], Route] = {
    ("/api/ml-models", "GET"): Route(200, lambda w: Request("GET", f"/api/ml-models?project_id={w['project']}")),
    ("/api/ml-models", "POST"): Route(201, lambda w: Request("POST", "/api/ml-models", {
        "project_id": w["project"], "ontology_id": w["ontology"], "name": "n", "type": "decision_tree"})),
    ("/api/ml-models/{model_id}", "GET"): Route(200, lambda w: Request("GET", f"/api/ml-models/{w['model']}")),
    ("/api/ml-models/{model_id}", "PUT"): Route(200, lambda w: Request(
        "PUT", f"/api/ml-models/{w['model']}", {"description": "changed"}, record=f"/api/ml-models/{w['model']}")),
    ("/api/ml-models/{model_id}", "DELETE"): Route(204, lambda w: Request(
        "DELETE", f"/api/ml-models/{w['model']}", record=f"/api/ml-models/{w['model']}")),
    ("/api/ml-models/recommend", "POST"): Route(200, lambda w: Request("POST", "/api/ml-models/recommend", {
        "project_id": w["project"], "ontology_id": w["ontology"]})),
    ("/api/ml-models/train", "POST"): Route(202, lambda w: Request(
        "POST", "/api/ml-models/train", {"model_id": w["model"]}, record=f"/api/ml-models/{w['model']}")),
    ("/api/ml-models/{model_id}/training/cancel", "POST"): Route(202, lambda w: Request(
        "POST", f"/api/ml-models/{w['training_model']}/training/cancel",
        record=f"/api/ml-models/{w['training_model']}")),
    ("/api/ml-models/{model_id}/runs", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/ml-models/{w['run_model']}/runs")),
    ("/api/ml-models/{model_id}/runs/{run_id}", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/ml-models/{w['run_model']}/runs/{w['run']}")),
    ("/api/ml-models/{model_id}/versions", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/ml-models/{w['version_model']}/versions")),
    ("/api/ml-models/{model_id}/versions/{version}/promote", "POST"): Route(200, lambda w: Request(
        "POST", f"/api/ml-models/{w['version_model']}/versions/1/promote",
        record=f"/api/ml-models/{w['version_model']}")),
    ("/api/ml-models/{model_id}/predictions", "POST"): Route(202, lambda w: Request(
        "POST", f"/api/ml-models/{w['version_model']}/predictions", {"storage_ids": [w["storage"]]})),
    ("/api/ml-models/{model_id}/predictions", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/ml-models/{w['version_model']}/predictions")),
    ("/api/ml-models/{model_id}/predictions/{prediction_id}", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/ml-models/{w['version_model']}/predictions/{w['prediction']}")),
    ("/api/ml-models/{model_id}/predictions/{prediction_id}/cancel", "POST"): Route(202, lambda w: Request(
        "POST", f"/api/ml-models/{w['version_model']}/predictions/{w['prediction']}/cancel",
        record=f"/api/ml-models/{w['version_model']}/predictions/{w['prediction']}")),
    ("/api/ml-models/{model_id}/evaluations", "POST"): Route(202, lambda w: Request(
        "POST", f"/api/ml-models/{w['version_model']}/evaluations", {"storage_ids": [w["storage"]]})),
    ("/api/ml-models/{model_id}/evaluations", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/ml-models/{w['version_model']}/evaluations")),
    ("/api/ml-models/{model_id}/evaluations/{evaluation_id}", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/ml-models/{w['version_model']}/evaluations/{w['evaluation']}")),
    ("/api/ml-models/{model_id}/evaluations/{evaluation_id}/cancel", "POST"): Route(202, lambda w: Request(
        "POST", f"/api/ml-models/{w['version_model']}/evaluations/{w['evaluation']}/cancel",
        record=f"/api/ml-models/{w['version_model']}/evaluations/{w['evaluation']}")),
    ("/api/ml-models/{model_id}/predict", "POST"): Route(200, lambda w: Request(
        "POST", f"/api/ml-models/{w['version_model']}/predict", {"instances": [{"temperature": 1.5}]})),
    ("/api/ontologies", "GET"): Route(200, lambda w: Request("GET", f"/api/ontologies?project_id={w['project']}")),
    ("/api/ontologies", "POST"): Route(201, lambda w: Request("POST", "/api/ontologies", {
        "project_id": w["project"], "name": "o", "content": w["ttl"]})),
    ("/api/ontologies/{ontology_id}", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/ontologies/{w['spare_ontology']}")),
    ("/api/ontologies/{ontology_id}", "PUT"): Route(200, lambda w: Request(
        "PUT", f"/api/ontologies/{w['spare_ontology']}", {"description": "changed"},
        record=f"/api/ontologies/{w['spare_ontology']}")),
    ("/api/ontologies/{ontology_id}", "DELETE"): Route(204, lambda w: Request(
        "DELETE", f"/api/ontologies/{w['spare_ontology']}", record=f"/api/ontologies/{w['spare_ontology']}")),
    ("/api/storage-configs", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/storage-configs?project_id={w['project']}")),
    ("/api/storage-configs", "POST"): Route(201, lambda w: Request("POST", "/api/storage-configs", {
        "project_id": w["project"], "name": "s", "uri": f"s3://{DATA}/{w['project']}/sensors/", "format": "csv"})),
    ("/api/storage-configs/{storage_id}", "GET"): Route(200, lambda w: Request(
        "GET", f"/api/storage-configs/{w['storage']}")),
    ("/api/storage-configs/{storage_id}", "PUT"): Route(200, lambda w: Request(
        "PUT", f"/api/storage-configs/{w['storage']}", {"name": "changed"},
        record=f"/api/storage-configs/{w['storage']}")),
    ("/api/storage-configs/{storage_id}", "DELETE"): Route(204, lambda w: Request(
        "DELETE", f"/api/storage-configs/{w['storage']}", record=f"/api/storage-configs/{w['storage']}")),
}

# WebSocket: connecting, and subscribing to a project or a model (readers only).
WS_ROUTES = ("$connect", "subscribe project", "subscribe model")

BAD_TOKENS = ("none", "expired", "wrong issuer", "wrong audience", "bad signature", "alg none")
CALLERS = (("viewer", OWN), ("editor", OWN), ("editor", OTHER), ("viewer", OTHER), ("admin", OTHER))


def expected(route_key: tuple[str, str], role: str, target: str) -> int:
    route, rule = ROUTES[route_key], ROUTE_ACCESS[route_key]
    if role == "admin" or (target == OWN and (role == "editor" or rule.action == READ)):
        return route.ok
    if target == OWN:
        return 403  # a viewer writing
    return 403 if rule.target.kind == "project" else 404


def test_every_route_is_in_the_table():
    import app

    user_routes = {key for key, rule in ROUTE_ACCESS.items() if rule != CALLBACK}
    registered = {(path, method) for path, methods in app.app.routes.items() for method in methods}
    assert registered == set(ROUTE_ACCESS), "a route was registered without going through user_route/callback_route"
    assert user_routes == set(ROUTES), f"routes missing from the access table: {sorted(user_routes - set(ROUTES))}"
    callbacks = {key for key, rule in ROUTE_ACCESS.items() if rule == CALLBACK}
    assert all(path.startswith(("/api/ml-models/{model_id}/training/",
                                "/api/ml-models/{model_id}/predictions/{prediction_id}/",
                                "/api/ml-models/{model_id}/evaluations/{evaluation_id}/")) for path, _ in callbacks)


# ---- the world each case runs in ------------------------------------------------------------


@pytest.fixture
def world(api, launcher, project):
    """Two projects, each with an ontology (one spare), a model, a storage config with data, a
    model with an ended run and one still training."""
    from runs import own_artifact
    from samples import SENSOR_TTL

    s3 = boto3.client("s3", region_name="us-east-1")
    projects = {OWN: project, OTHER: f"{project}-x"}
    built = {}
    for side, pid in projects.items():
        s3.put_object(Bucket=DATA, Key=f"{pid}/sensors/a.csv",
                      Body=b"temperature,humidity,pressure,label\n1,2,3,true\n2,3,4,false\n")
        onto = api.post("/api/ontologies", {"project_id": pid, "name": "o", "content": SENSOR_TTL}).json
        spare = api.post("/api/ontologies", {"project_id": pid, "name": "spare", "content": SENSOR_TTL}).json
        model = api.post("/api/ml-models", {"project_id": pid, "ontology_id": onto["id"], "name": "m",
                                            "type": "decision_tree"}).json
        run_model = api.post("/api/ml-models", {"project_id": pid, "ontology_id": onto["id"], "name": "r",
                                                "type": "decision_tree"}).json
        storage = api.post("/api/storage-configs", {"project_id": pid, "name": "s", "ontology_id": onto["id"],
                                                    "uri": f"s3://{DATA}/{pid}/sensors/", "format": "csv"}).json
        assert api.post("/api/ml-models/train", {"model_id": run_model["id"]}).status == 202
        job = launcher.jobs[-1]
        api.post(f"/api/ml-models/{run_model['id']}/training/fail", {"reason": "x"},
                 headers={"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id})
        training_model = api.post("/api/ml-models", {"project_id": pid, "ontology_id": onto["id"], "name": "t",
                                                     "type": "decision_tree"}).json
        assert api.post("/api/ml-models/train", {"model_id": training_model["id"]}).status == 202  # left training
        # A model with a trained version that failed a retrain since (so a promote changes it).
        version_model = api.post("/api/ml-models", {"project_id": pid, "ontology_id": onto["id"], "name": "v",
                                                    "type": "decision_tree"}).json
        for outcome in ("complete", "fail"):
            assert api.post("/api/ml-models/train", {"model_id": version_model["id"]}).status == 202
            trained = launcher.jobs[-1]
            body = {"model_artifact_path": own_artifact(api, trained)} if outcome == "complete" else {"reason": "x"}
            assert api.post(f"/api/ml-models/{version_model['id']}/training/{outcome}", body, headers={
                "Authorization": f"Bearer {trained.callback_token}", "X-Training-Run-Id": trained.run_id}).status == 200
        prediction = api.post(f"/api/ml-models/{version_model['id']}/predictions",
                              {"storage_ids": [storage["id"]]})
        assert prediction.status == 202, prediction
        evaluation = api.post(f"/api/ml-models/{version_model['id']}/evaluations", {"storage_ids": [storage["id"]]})
        assert evaluation.status == 202, evaluation
        built[side] = {"version_model": version_model["id"], "prediction": prediction.json["id"],
                       "evaluation": evaluation.json["id"],
                       "project": pid, "ontology": onto["id"], "spare_ontology": spare["id"], "model": model["id"],
                       "training_model": training_model["id"],
                       "run_model": run_model["id"], "run": job.run_id, "storage": storage["id"],
                       "ttl": SENSOR_TTL}
    return built


def token_for(issuer, kind: str, project: str) -> str | None:
    if kind == "none":
        return None
    if kind == "viewer":
        return issuer.token({project: "viewer"})
    if kind == "editor":
        return issuer.token({project: "editor"})
    if kind == "admin":
        return issuer.token(admin=True)
    if kind == "expired":
        return issuer.token({project: "editor"}, ttl_seconds=-300)
    if kind == "wrong issuer":
        return issuer.token({project: "editor"}, iss="https://issuer.example.invalid")
    if kind == "wrong audience":
        return issuer.token({project: "editor"}, aud="another-app")
    valid = issuer.token({project: "editor"})
    header, payload, signature = valid.split(".")
    if kind == "bad signature":  # the same claims, signed by someone else's key under our kid
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": kid})
    if kind == "alg none":
        head = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        forged = base64.urlsafe_b64encode(json.dumps({**head, "alg": "none"}).encode()).decode().rstrip("=")
        return f"{forged}.{payload}."
    raise ValueError(kind)


def call(api, request: Request, token: str | None):
    headers = {"Authorization": f"Bearer {token}" if token else None}
    return api.request(request.method, request.path, request.body, headers=headers)


ROUTE_IDS = [f"{method} {path}" for path, method in ROUTES]


@pytest.mark.parametrize("bad", BAD_TOKENS)
@pytest.mark.parametrize("route_key", list(ROUTES), ids=ROUTE_IDS)
def test_without_a_valid_token_every_route_is_401(api, world, issuer, route_key, bad):
    request = ROUTES[route_key].build(world[OWN])
    before = api.get(request.record).json if request.record else None
    reply = call(api, request, token_for(issuer, bad, world[OWN]["project"]))
    assert reply.status == 401, reply
    assert reply.json["code"] == "unauthorized" and reply.json["field"] == "Authorization"
    if request.record:
        assert api.get(request.record).json == before


@pytest.mark.parametrize(("role", "target"), CALLERS, ids=[f"{r}-of-{t}" for r, t in CALLERS])
@pytest.mark.parametrize("route_key", list(ROUTES), ids=ROUTE_IDS)
def test_each_caller_gets_what_its_role_allows(api, world, issuer, route_key, role, target):
    # The caller's role is always in the first project; `target` says whose records the request names.
    request = ROUTES[route_key].build(world[target])
    before = api.get(request.record).json if request.record else None
    reply = call(api, request, token_for(issuer, role, world[OWN]["project"]))
    want = expected(route_key, role, target)
    assert reply.status == want, (role, target, reply)
    if want >= 400 and request.record:
        assert api.get(request.record).json == before, "a refused write changed the record"
    if want == 404:
        # Word for word what an unknown id gets.
        named = request.path + json.dumps(request.body)
        foreign_id = next(v for v in world[target].values() if isinstance(v, str) and v and v in named)
        body = json.loads(json.dumps(request.body).replace(foreign_id, "nope-0"))
        unknown = Request(request.method, request.path.replace(foreign_id, "nope-0"), body)
        unknown_reply = call(api, unknown, token_for(issuer, role, world[OWN]["project"]))
        assert unknown_reply.status == 404
        assert reply.json["message"].replace(foreign_id, "nope-0") == unknown_reply.json["message"]
        assert reply.json["field"] == unknown_reply.json["field"]


def test_a_body_naming_a_record_of_another_project_is_refused(api, world, issuer):
    """Everything a record refers to must be in the same project, whatever the caller's roles."""
    own, other = world[OWN], world[OTHER]
    both = issuer.token({own["project"]: "editor", other["project"]: "editor"})
    headers = {"Authorization": f"Bearer {both}"}
    reply = api.post("/api/ml-models", {"project_id": own["project"], "ontology_id": other["ontology"],
                                        "name": "n", "type": "decision_tree"}, headers=headers)
    assert reply.status == 400 and reply.json["field"] == "ontology_id"
    reply = api.post("/api/storage-configs", {"project_id": own["project"], "name": "s", "format": "csv",
                                              "ontology_id": other["ontology"],
                                              "uri": f"s3://{DATA}/{own['project']}/sensors/"}, headers=headers)
    assert reply.status == 400 and reply.json["field"] == "ontology_id"
    reply = api.post("/api/ml-models/train", {"model_id": own["model"], "storage_ids": [other["storage"]]},
                     headers=headers)
    assert reply.status == 400 and reply.json["field"] == "storage_ids"
    reply = api.post("/api/ml-models/recommend", {"project_id": own["project"], "ontology_id": own["ontology"],
                                                  "storage_ids": [other["storage"]]}, headers=headers)
    assert reply.status == 400 and reply.json["field"] == "storage_ids"
    assert api.get(f"/api/ml-models/{own['model']}").json["status"] == "draft"


# ---- the WebSocket ---------------------------------------------------------------------------


class Poster:
    endpoint_url = "https://ws.example.test/api"

    def __init__(self) -> None:
        self.sent: dict[str, list[dict]] = {}

    def post(self, connection_id, payload, endpoint_url=None):
        self.sent.setdefault(connection_id, []).append(payload)
        return True


def ws_expected(route: str, kind: str, target: str) -> str:
    if kind in BAD_TOKENS:
        return "refused"
    if route == "$connect":
        return "connected"
    return "subscribed" if kind == "admin" or target == OWN else "error"


WS_CASES = [(r, k, t) for r in WS_ROUTES for k in BAD_TOKENS for t in (OWN,)] + [
    (r, role, t) for r in WS_ROUTES for role, t in CALLERS]


@pytest.mark.parametrize(("route", "kind", "target"), WS_CASES, ids=[f"{r}-{k}-{t}" for r, k, t in WS_CASES])
def test_websocket_connect_and_subscribe_by_role(api, world, issuer, launcher, route, kind, target):
    from test_websocket import ws_event

    import app
    from chalicelib.adapters.websocket import topic

    poster = Poster()
    graph = install_graph(launcher=launcher, ws_poster=poster)
    token = token_for(issuer, kind, world[OWN]["project"])
    connected = app.ws_connect(ws_event("$connect", "c1", query={"token": token} if token else None), None)
    want = ws_expected(route, kind, target)
    if want == "refused":
        assert connected["statusCode"] == 401 and not graph.notifier.store.is_connected("c1")
        return
    assert connected["statusCode"] == 200
    if route == "$connect":
        return
    names = world[target]
    message = ({"action": "subscribe", "project_id": names["project"]} if route == "subscribe project"
               else {"action": "subscribe", "model_id": names["model"]})
    app.ws_message(ws_event("$default", "c1", json.dumps(message)), None)
    assert poster.sent["c1"][-1]["event"] == want, poster.sent["c1"][-1]
    # What a refused subscriber would have heard: nothing, when the model changes.
    api.put(f"/api/ml-models/{names['model']}", {"status": "archived"})
    heard = [e for e in poster.sent["c1"] if e["event"] == "model.status_changed"]
    assert len(heard) == (1 if want == "subscribed" else 0)
    if want == "error":
        assert "c1" not in graph.notifier.store.subscribers([topic("project", names["project"]),
                                                              topic("model", names["model"])])
