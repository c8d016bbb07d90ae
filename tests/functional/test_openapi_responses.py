"""Real responses against docs/openapi.yaml: each route on success and on a few errors.

Every reply's status must be one the spec documents for that path and method, and its body
must validate against the schema the spec declares for that status. Objects the spec
describes with `properties` are checked as closed here (unless they say `additionalProperties`
themselves), so a field the app returns but the spec does not document fails too. The spec
itself stays open to additions for clients.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from conftest import install_graph
from fakes.launcher import FakeLauncher
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from samples import SENSOR_TTL

from chalicelib.adapters.launcher import TrainingJob
from chalicelib.errors import UpstreamFailed

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SPEC_URI = "urn:ml-models:openapi"
# The local stage's data bucket (deploy_data_stores creates it); a project's data lives under <project>/.
DATA_BUCKET = "ml-models-data-local"
ARTIFACTS = "ml-models-artifacts-local"


def closed(node: Any, in_all_of: bool = False) -> Any:
    """The document with every object schema that lists `properties` closed to other members.

    allOf branches are left open: each sees only its own properties, so closing them would
    refuse the members the other branch documents.
    """
    if isinstance(node, list):
        return [closed(item, in_all_of) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: closed(value, key == "allOf") for key, value in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node and not in_all_of:
        out["additionalProperties"] = False
    return out


SPEC = closed(yaml.safe_load(SPEC_PATH.read_text()))
REGISTRY = Registry().with_resource(SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012))


def resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def rebase(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (SPEC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else rebase(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [rebase(v) for v in node]
    return node


def schema_errors(reply, method: str, path: str) -> list[str]:
    """How the reply disagrees with the spec for `method path` (status undocumented, body off-schema)."""
    responses = SPEC["paths"][path][method.lower()]["responses"]
    if str(reply.status) not in responses:
        return [f"{method} {path} answered {reply.status}, which the spec does not document ({sorted(responses)}): "
                f"{reply!r}"]
    content = resolve(responses[str(reply.status)]).get("content")
    if content is None:
        return [] if reply.raw in (b"", None) else [f"{method} {path} {reply.status}: a body where none is declared"]
    validator = Draft202012Validator(rebase(content["application/json"]["schema"]), registry=REGISTRY,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{method} {path} {reply.status}: /{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in sorted(validator.iter_errors(reply.json), key=lambda e: list(map(str, e.absolute_path)))]


def check(reply, method: str, path: str, status: int) -> Any:
    """Assert the reply has `status` and matches the spec; return its JSON body."""
    assert reply.status == status, reply
    errors = schema_errors(reply, method, path)
    assert not errors, "\n".join(errors)
    return reply.json


# ---- ML models -----------------------------------------------------------------------------

MODELS = "/api/ml-models"
MODEL = "/api/ml-models/{model_id}"


def test_ml_model_routes(api, project, ontology):
    body = {"project_id": project, "ontology_id": ontology["id"], "name": "Temperature Predictor",
            "description": "Predicts temperature based on sensor data", "type": "neural_network",
            "training_config": {"train_test_split": 0.8, "random_seed": 42, "learning_rate": 0.001, "batch_size": 32}}
    first = check(api.post(MODELS, body), "POST", MODELS, 201)
    second = check(api.post(MODELS, {**body, "type": "regression", "metadata": {"team": "x"}}), "POST", MODELS, 201)

    page = check(api.get(f"{MODELS}?project_id={project}&limit=1"), "GET", MODELS, 200)
    assert [m["id"] for m in page["models"]] == [second["id"]] and page["next_token"]
    rest = check(api.get(f"{MODELS}?project_id={project}&limit=1&next_token={page['next_token']}"), "GET", MODELS, 200)
    assert [m["id"] for m in rest["models"]] == [first["id"]]

    assert check(api.get(f"{MODELS}/{first['id']}"), "GET", MODEL, 200) == first
    updated = check(api.put(f"{MODELS}/{first['id']}", {"description": "Updated model description",
                                                        "status": "archived"}), "PUT", MODEL, 200)
    assert updated["status"] == "archived"
    refused = check(api.put(f"{MODELS}/{second['id']}", {"status": "trained"}), "PUT", MODEL, 409)
    assert refused["allowed_statuses"] == ["deprecated", "archived"]
    check(api.put(f"{MODELS}/{second['id']}", {"type": "svm"}), "PUT", MODEL, 400)
    check(api.put(f"{MODELS}/model-nope", {"name": "x"}), "PUT", MODEL, 404)

    check(api.delete(f"{MODELS}/{first['id']}"), "DELETE", MODEL, 204)
    check(api.delete(f"{MODELS}/{first['id']}"), "DELETE", MODEL, 404)
    check(api.get(f"{MODELS}/{first['id']}"), "GET", MODEL, 404)


def test_ml_model_input_errors(api, project, ontology):
    check(api.get(MODELS), "GET", MODELS, 400)
    check(api.get(f"{MODELS}?project_id={project}&limit=0"), "GET", MODELS, 400)
    check(api.get(f"{MODELS}?project_id={project}&next_token=forged"), "GET", MODELS, 400)
    good = {"project_id": project, "ontology_id": ontology["id"], "name": "m", "type": "decision_tree"}
    check(api.post(MODELS, {**good, "type": "svm"}), "POST", MODELS, 400)
    check(api.post(MODELS, {**good, "training_config": {"batch_size": 3.5}}), "POST", MODELS, 400)
    check(api.post(MODELS, {**good, "ontology_id": "onto-nope"}), "POST", MODELS, 400)
    check(api.request("POST", MODELS, raw="{not json"), "POST", MODELS, 400)
    check(api.post(MODELS, {**good, "name": "x" * (1024 * 1024 + 10)}), "POST", MODELS, 413)
    check(api.request("POST", MODELS, raw="name=x", headers={"Content-Type": "text/plain"}), "POST", MODELS, 415)


# ---- ontologies ----------------------------------------------------------------------------

ONTOLOGIES = "/api/ontologies"
ONTOLOGY = "/api/ontologies/{ontology_id}"


def test_ontology_routes(api, project, ontology, make_model):
    created = check(api.post(ONTOLOGIES, {"project_id": project, "name": "Spare", "description": "unused",
                                          "content": SENSOR_TTL}), "POST", ONTOLOGIES, 201)
    assert len(created["summary"]["datatype_properties"]) == 4
    listed = check(api.get(f"{ONTOLOGIES}?project_id={project}"), "GET", ONTOLOGIES, 200)
    assert {o["id"] for o in listed["ontologies"]} == {created["id"], ontology["id"]}
    assert check(api.get(f"{ONTOLOGIES}/{created['id']}"), "GET", ONTOLOGY, 200) == created
    check(api.put(f"{ONTOLOGIES}/{created['id']}", {"name": "Renamed"}), "PUT", ONTOLOGY, 200)
    broken = check(api.put(f"{ONTOLOGIES}/{created['id']}", {"content": "ex:a ex:b"}), "PUT", ONTOLOGY, 400)
    assert broken["field"] == "content"
    check(api.post(ONTOLOGIES, {"project_id": project, "name": "o"}), "POST", ONTOLOGIES, 400)
    check(api.get(ONTOLOGIES), "GET", ONTOLOGIES, 400)

    make_model()
    in_use = check(api.delete(f"{ONTOLOGIES}/{ontology['id']}"), "DELETE", ONTOLOGY, 409)
    assert in_use["models"] == 1
    check(api.delete(f"{ONTOLOGIES}/{created['id']}"), "DELETE", ONTOLOGY, 204)
    check(api.get(f"{ONTOLOGIES}/{created['id']}"), "GET", ONTOLOGY, 404)
    check(api.delete(f"{ONTOLOGIES}/{created['id']}"), "DELETE", ONTOLOGY, 404)


# ---- storage configs -----------------------------------------------------------------------

CONFIGS = "/api/storage-configs"
CONFIG = "/api/storage-configs/{storage_id}"


@pytest.fixture
def s3(aws):
    return boto3.client("s3", region_name="us-east-1")


def test_storage_config_routes(api, project, ontology, s3):
    body = {"project_id": project, "name": "sensors", "ontology_id": ontology["id"],
            "uri": f"s3://{DATA_BUCKET}/{project}/sensors/", "format": "csv"}
    created = check(api.post(CONFIGS, body), "POST", CONFIGS, 201)
    listed = check(api.get(f"{CONFIGS}?project_id={project}"), "GET", CONFIGS, 200)
    assert [c["id"] for c in listed["storage_configs"]] == [created["id"]] and listed["next_token"] is None
    assert check(api.get(f"{CONFIGS}/{created['id']}"), "GET", CONFIG, 200) == created
    unbound = check(api.put(f"{CONFIGS}/{created['id']}", {"ontology_id": None, "format": "jsonl"}),
                    "PUT", CONFIG, 200)
    assert unbound["ontology_id"] is None and unbound["format"] == "jsonl"

    for outside in ("s3://no-such-bucket-here/x/", f"s3://{DATA_BUCKET}/proj-other/sensors/",
                    f"s3://{DATA_BUCKET}/{project}/../proj-other/", f"s3://{ARTIFACTS}/runs/",
                    f"s3://{ARTIFACTS}/models/"):
        refused = check(api.post(CONFIGS, {**body, "uri": outside}), "POST", CONFIGS, 400)
        assert refused["field"] == "uri", refused
    check(api.post(CONFIGS, {**body, "project_id": "proj/../other"}), "POST", CONFIGS, 400)
    moved = check(api.put(f"{CONFIGS}/{created['id']}", {"uri": f"s3://{ARTIFACTS}/models/"}), "PUT", CONFIG, 400)
    assert moved["field"] == "uri"
    check(api.post(CONFIGS, {**body, "format": "xlsx"}), "POST", CONFIGS, 400)
    check(api.put(f"{CONFIGS}/{created['id']}", {"uri": "/tmp/data"}), "PUT", CONFIG, 400)
    check(api.put(f"{CONFIGS}/storage-nope", {"name": "x"}), "PUT", CONFIG, 404)
    check(api.delete(f"{CONFIGS}/{created['id']}"), "DELETE", CONFIG, 204)
    check(api.get(f"{CONFIGS}/{created['id']}"), "GET", CONFIG, 404)
    check(api.delete(f"{CONFIGS}/{created['id']}"), "DELETE", CONFIG, 404)


# ---- recommendation ------------------------------------------------------------------------

RECOMMEND = "/api/ml-models/recommend"


def sensor_rows(rows: int = 240, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    lines = ["humidity,pressure,site_type,temperature"]
    for _ in range(rows):
        humidity, pressure = rng.uniform(20, 90), rng.randint(980, 1040)
        site = rng.choice(["roof", "field", "cellar"])
        lines.append(f"{humidity:.2f},{pressure},{site},{30 - 0.2 * humidity + rng.gauss(0, 1):.3f}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def sensor_data(api, project, ontology, s3):
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{project}/readings/part-0.csv", Body=sensor_rows())
    reply = api.post(CONFIGS, {"project_id": project, "name": "readings", "ontology_id": ontology["id"],
                               "uri": f"s3://{DATA_BUCKET}/{project}/readings/", "format": "csv"})
    assert reply.status == 201, reply
    return reply.json


def recommend_replies(api, project, ontology_id) -> list:
    """One recommendation on sampled data (probes run), one for an ontology without data (base rates)."""
    with_data = api.post(RECOMMEND, {"project_id": project, "ontology_id": ontology_id, "target_column": "temperature"})
    assert with_data.status == 200 and with_data.json["score_basis"] == "calibrated_probability", with_data
    bare = api.post(ONTOLOGIES, {"project_id": project, "name": "No data", "content": SENSOR_TTL}).json
    without = api.post(RECOMMEND, {"project_id": project, "ontology_id": bare["id"]})
    assert without.status == 200 and without.json["data_analysis"]["status"] == "no_data", without
    return [with_data, without]


def test_recommend_route(api, project, ontology, sensor_data):
    with_data, without = recommend_replies(api, project, ontology["id"])
    assert with_data.json["data_analysis"]["status"] == "sampled"
    for reply in (with_data, without):
        assert reply.status == 200, reply
        check(reply, "POST", RECOMMEND, 200)
    check(api.post(RECOMMEND, {"project_id": project, "ontology_id": "onto-nope"}), "POST", RECOMMEND, 404)
    check(api.post(RECOMMEND, {"project_id": project}), "POST", RECOMMEND, 400)
    check(api.post(RECOMMEND, {"project_id": project, "ontology_id": ontology["id"], "storage_ids": []}),
          "POST", RECOMMEND, 400)


def test_recommend_reasoning_is_a_string(api, project, ontology, sensor_data):
    """The contract: `reasoning` is a human-readable string."""
    for reply in recommend_replies(api, project, ontology["id"]):
        assert isinstance(reply.json["reasoning"], str) and reply.json["reasoning"]


# ---- training and the worker callbacks -----------------------------------------------------

TRAIN = "/api/ml-models/train"
RUNS = "/api/ml-models/{model_id}/runs"
RUN = "/api/ml-models/{model_id}/runs/{run_id}"
COMPLETE = "/api/ml-models/{model_id}/training/complete"
FAIL = "/api/ml-models/{model_id}/training/fail"
PROGRESS = "/api/ml-models/{model_id}/training/progress"
CREDENTIALS = "/api/ml-models/{model_id}/training/credentials"
METRICS = {
    "performance_metrics": {"accuracy": 0.95, "f1_score": 0.93, "precision": 0.94, "recall": 0.92},
    "training_metrics": {"epoch": 50, "training_loss": 0.05, "validation_loss": 0.08},
}


def callback(api, job: TrainingJob, kind: str, body: dict | None, token: str | None = None, run_header: bool = True):
    headers = {"Authorization": f"Bearer {job.callback_token if token is None else token}"}
    if run_header:
        headers["X-Training-Run-Id"] = job.run_id
    return api.post(f"/api/ml-models/{job.model_id}/training/{kind}", body, headers=headers)


def artifact_location(model_id: str, version: int) -> str:
    """Where the server expects run `version` of a model (the local stage's artifact bucket and prefix)."""
    return f"s3://{ARTIFACTS}/models/{model_id}/v{version}/"


def write_manifest(s3, model_id: str, version: int, run_id: str) -> None:
    """What a trainer writes last: the manifest naming its run (the complete callback checks it)."""
    manifest = {"run_id": run_id, "model_id": model_id, "version": version}
    s3.put_object(Bucket=ARTIFACTS, Key=f"models/{model_id}/v{version}/manifest.json", Body=json.dumps(manifest))


@pytest.fixture
def sts_launcher(api) -> FakeLauncher:
    """A recording launcher, in a graph that issues per-run STS credentials (moto's STS), as the
    local and deployed stages do. (The `launcher` fixture's graph is built outside a request, so
    without the stage's TRAINER_RUN_ROLE_ARN: it issues none.)"""
    from chalicelib.adapters.sts import RunCredentialIssuer

    fake = FakeLauncher()
    issuer = RunCredentialIssuer(lambda: boto3.client("sts", region_name="us-east-1"),
                                 "arn:aws:iam::123456789012:role/ml-models-trainer-run-local")
    install_graph(launcher=fake, credentials=issuer)
    return fake


def test_train_runs_and_callbacks(api, sts_launcher, make_model, sensor_data, s3):
    launcher = sts_launcher
    model = make_model()
    started = check(api.post(TRAIN, {"model_id": model["id"], "storage_ids": [sensor_data["id"]],
                                     "training_config": {"train_test_split": 0.8, "random_seed": 42}}),
                    "POST", TRAIN, 202)
    assert started["status"] == "training"
    job = launcher.jobs[-1]
    check(api.post(TRAIN, {"model_id": model["id"]}), "POST", TRAIN, 409)

    runs = check(api.get(f"/api/ml-models/{model['id']}/runs"), "GET", RUNS, 200)
    assert [r["run_id"] for r in runs["runs"]] == [job.run_id]
    version = runs["runs"][0]["version"]
    check(api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}"), "GET", RUN, 200)

    progress = callback(api, job, "progress", {"epoch": 1, "training_loss": 0.4, "validation_loss": 0.5})
    assert check(progress, "POST", PROGRESS, 200) == {"status": "progress recorded"}
    check(callback(api, job, "progress", {"epoch": -1}), "POST", PROGRESS, 400)

    for body in (None, {}):
        fresh = check(callback(api, job, "credentials", body), "POST", CREDENTIALS, 200)
        assert fresh["access_key_id"] and fresh["session_token"]
    check(callback(api, job, "credentials", {"duration": 3600}), "POST", CREDENTIALS, 400)
    check(callback(api, job, "credentials", {}, token="forged"), "POST", CREDENTIALS, 401)

    own = artifact_location(model["id"], version)
    body = {"model_artifact_path": own, **METRICS}
    check(callback(api, job, "complete", {"performance_metrics": {}}), "POST", COMPLETE, 400)
    check(callback(api, job, "complete", body, token="forged"), "POST", COMPLETE, 401)
    # The admin's JWT, which the client sends by default, is not a run token.
    check(api.post(f"/api/ml-models/{model['id']}/training/complete", body), "POST", COMPLETE, 401)
    for elsewhere in ("s3://models/model-123/v1.pkl", artifact_location("model-other", version),
                      artifact_location(model["id"], version + 1)):
        refused = check(callback(api, job, "complete", {**body, "model_artifact_path": elsewhere}),
                        "POST", COMPLETE, 400)
        assert (refused["field"], refused["expected"]) == ("model_artifact_path", own), refused
    no_manifest = check(callback(api, job, "complete", body), "POST", COMPLETE, 409)
    assert no_manifest["field"] == "model_artifact_path"
    write_manifest(s3, model["id"], version, "run-someone-else")
    check(callback(api, job, "complete", body), "POST", COMPLETE, 409)
    assert check(api.get(f"/api/ml-models/{model['id']}"), "GET", MODEL, 200)["status"] == "training"

    write_manifest(s3, model["id"], version, job.run_id)
    done = callback(api, job, "complete", {**body, "model_artifact_path": own.rstrip("/")})
    assert check(done, "POST", COMPLETE, 200) == {"status": "training completed"}
    assert check(callback(api, job, "complete", body), "POST", COMPLETE, 200) == done.json
    check(callback(api, job, "fail", {"reason": "too late"}), "POST", FAIL, 409)
    check(callback(api, job, "progress", {"epoch": 2}), "POST", PROGRESS, 409)
    ended = check(callback(api, job, "credentials", {}), "POST", CREDENTIALS, 409)
    assert ended["field"] == "run_id"

    trained = check(api.get(f"/api/ml-models/{model['id']}"), "GET", MODEL, 200)
    assert trained["status"] == "trained" and trained["version"] == version
    assert trained["model_artifact_path"] == own
    run = check(api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}"), "GET", RUN, 200)
    assert run["status"] == "succeeded"
    assert [h["status"] for h in run["status_history"]] == ["queued", "submitted", "running", "succeeded"]


def test_fail_callback_and_train_errors(api, launcher, make_model):
    model = make_model()
    check(api.post(TRAIN, {"model_id": model["id"]}), "POST", TRAIN, 202)
    job = launcher.jobs[-1]
    check(callback(api, job, "fail", {}), "POST", FAIL, 400)
    issued = check(callback(api, job, "credentials", {}), "POST", CREDENTIALS, 200)
    assert set(issued) == {"access_key_id", "secret_access_key", "session_token", "expiration"}
    failed = callback(api, job, "fail", {"reason": "Insufficient training data"}, run_header=False)
    assert check(failed, "POST", FAIL, 200) == {"status": "training failed"}
    orphan = TrainingJob(run_id=job.run_id, model_id="model-nope", project_id="", model_type="",
                         callback_token=job.callback_token)
    check(callback(api, orphan, "fail", {"reason": "x"}, run_header=False), "POST", FAIL, 404)

    check(api.post(TRAIN, {"model_id": "model-nope"}), "POST", TRAIN, 404)
    check(api.post(TRAIN, {"model_id": model["id"], "storage_ids": ["storage-nope"]}), "POST", TRAIN, 400)
    check(api.post(TRAIN, {"model_id": model["id"], "training_config": {"train_test_split": 2}}), "POST", TRAIN, 400)
    launcher.refuse_with = UpstreamFailed("kubernetes API refused: 403")
    check(api.post(TRAIN, {"model_id": model["id"]}), "POST", TRAIN, 502)
    launcher.refuse_with = RuntimeError("connection refused")
    unavailable = check(api.post(TRAIN, {"model_id": model["id"]}), "POST", TRAIN, 503)
    assert unavailable["run_id"].startswith("run-")

    runs = check(api.get(f"/api/ml-models/{model['id']}/runs?limit=2"), "GET", RUNS, 200)
    assert len(runs["runs"]) == 2 and runs["next_token"]
    check(api.get(f"/api/ml-models/{model['id']}/runs?limit=101"), "GET", RUNS, 400)
    check(api.get("/api/ml-models/model-nope/runs"), "GET", RUNS, 404)
    check(api.get(f"/api/ml-models/{model['id']}/runs/run-nope"), "GET", RUN, 404)


# ---- who may do what: 401, 403 and 404-for-foreign against the spec ------------------------
# (every route × role is tests/functional/test_access.py's; here: the replies match the spec)

def test_requests_without_a_valid_token_get_401(api, issuer, project, make_model):
    model = make_model()
    no_token = {"Authorization": None}
    replies = [
        (api.get(f"{MODELS}?project_id={project}", headers=no_token), "GET", MODELS),
        (api.post(MODELS, {"project_id": project}, headers=no_token), "POST", MODELS),
        (api.get(f"{MODELS}/{model['id']}", headers=no_token), "GET", MODEL),
        (api.post(TRAIN, {"model_id": model["id"]}, headers=no_token), "POST", TRAIN),
        (api.post(RECOMMEND, {"project_id": project}, headers=no_token), "POST", RECOMMEND),
        (api.get(f"{ONTOLOGIES}?project_id={project}", headers=no_token), "GET", ONTOLOGIES),
        (api.delete(f"{CONFIGS}/storage-nope", headers=no_token), "DELETE", CONFIG),
        (api.get(f"{MODELS}/{model['id']}/runs", headers={"Authorization": "Bearer not-a-jwt"}), "GET", RUNS),
        (api.get(f"{MODELS}/{model['id']}", headers={"Authorization": f"Basic {issuer.token(admin=True)}"}),
         "GET", MODEL),
        (api.get(f"{MODELS}/{model['id']}",
                 headers={"Authorization": f"Bearer {issuer.token(admin=True, ttl_seconds=-300)}"}), "GET", MODEL),
    ]
    for reply, method, path in replies:
        refused = check(reply, method, path, 401)
        assert refused["field"] == "Authorization", refused

    raw = api.client.http.get(f"{MODELS}/{model['id']}")  # the bare test client: no default token
    assert raw.status_code == 401
    www = SPEC["components"]["headers"]["WWWAuthenticate"]["schema"]["const"]
    assert raw.headers.get("WWW-Authenticate") == www


def test_a_viewer_reads_but_may_not_write(api, issuer, project, ontology, make_model, launcher):
    model = make_model()
    viewer = issuer.headers({project: "viewer"})
    assert check(api.get(f"{MODELS}/{model['id']}", headers=viewer), "GET", MODEL, 200)["id"] == model["id"]
    check(api.get(f"{MODELS}?project_id={project}", headers=viewer), "GET", MODELS, 200)
    check(api.get(f"{ONTOLOGIES}/{ontology['id']}", headers=viewer), "GET", ONTOLOGY, 200)

    writes = [
        (api.post(MODELS, {"project_id": project, "ontology_id": ontology["id"], "name": "m",
                           "type": "regression"}, headers=viewer), "POST", MODELS),
        (api.put(f"{MODELS}/{model['id']}", {"name": "x"}, headers=viewer), "PUT", MODEL),
        (api.delete(f"{MODELS}/{model['id']}", headers=viewer), "DELETE", MODEL),
        (api.post(TRAIN, {"model_id": model["id"]}, headers=viewer), "POST", TRAIN),
        (api.post(RECOMMEND, {"project_id": project, "ontology_id": ontology["id"]}, headers=viewer),
         "POST", RECOMMEND),
        (api.post(ONTOLOGIES, {"project_id": project, "name": "o", "content": SENSOR_TTL}, headers=viewer),
         "POST", ONTOLOGIES),
        (api.put(f"{ONTOLOGIES}/{ontology['id']}", {"name": "x"}, headers=viewer), "PUT", ONTOLOGY),
        (api.post(CONFIGS, {"project_id": project, "name": "s", "uri": f"s3://{DATA_BUCKET}/{project}/",
                            "format": "csv"}, headers=viewer), "POST", CONFIGS),
    ]
    for reply, method, path in writes:
        assert check(reply, method, path, 403)["code"] == "forbidden"
    # A list or create naming a project the caller has no role in is 403 too.
    check(api.get(f"{MODELS}?project_id=proj-not-mine", headers=viewer), "GET", MODELS, 403)
    check(api.get(f"{CONFIGS}?project_id=proj-not-mine", headers=viewer), "GET", CONFIGS, 403)
    editor = issuer.headers({project: "editor"})
    check(api.post(ONTOLOGIES, {"project_id": "proj-not-mine", "name": "o", "content": SENSOR_TTL},
                   headers=editor), "POST", ONTOLOGIES, 403)

    unchanged = check(api.get(f"{MODELS}/{model['id']}"), "GET", MODEL, 200)
    assert unchanged == model and launcher.jobs == []


def test_another_projects_records_are_404_like_unknown_ids(api, issuer, make_model, ontology):
    model = make_model()
    stranger = issuer.headers({"proj-elsewhere": "editor"})

    def same_as_unknown(method: str, path: str, template: str, real_id: str, unknown_id: str, body=None):
        foreign = check(api.request(method, path.format(real_id), body, headers=stranger), method, template, 404)
        unknown = check(api.request(method, path.format(unknown_id), body, headers=stranger), method, template, 404)
        assert real_id in foreign["message"]
        assert foreign.pop("request_id") != unknown.pop("request_id")  # each request its own
        assert foreign == {**unknown, "message": unknown["message"].replace(unknown_id, real_id)}

    mid, oid = model["id"], ontology["id"]
    same_as_unknown("GET", MODELS + "/{}", MODEL, mid, "model-nope")
    same_as_unknown("PUT", MODELS + "/{}", MODEL, mid, "model-nope", {"name": "x"})
    same_as_unknown("DELETE", MODELS + "/{}", MODEL, mid, "model-nope")
    same_as_unknown("GET", MODELS + "/{}/runs", RUNS, mid, "model-nope")
    same_as_unknown("GET", ONTOLOGIES + "/{}", ONTOLOGY, oid, "onto-nope")
    check(api.post(TRAIN, {"model_id": mid}, headers=stranger), "POST", TRAIN, 404)
    assert check(api.get(f"{MODELS}/{mid}"), "GET", MODEL, 200) == model


CANCEL = "/api/ml-models/{model_id}/training/cancel"


def test_cancel_route(api, launcher, make_model):
    model = make_model()
    check(api.post(TRAIN, {"model_id": model["id"]}), "POST", TRAIN, 202)
    job = launcher.jobs[-1]
    cancelled = check(api.post(f"/api/ml-models/{model['id']}/training/cancel"), "POST", CANCEL, 202)
    assert (cancelled["status"], cancelled["training_task_id"]) == ("draft", "")
    again = check(api.post(f"/api/ml-models/{model['id']}/training/cancel", {}), "POST", CANCEL, 409)
    assert again["current_status"] == "draft"
    check(api.post(f"/api/ml-models/{model['id']}/training/cancel", {"x": 1}), "POST", CANCEL, 400)
    check(api.post("/api/ml-models/model-nope/training/cancel"), "POST", CANCEL, 404)
    run = check(api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}"), "GET", RUN, 200)
    assert run["status"] == "cancelled"
    check(callback(api, job, "fail", {"reason": "cancelled"}), "POST", FAIL, 409)


# ---- predictions: batch jobs, their callbacks, and online ----------------------------------

PREDICTIONS = "/api/ml-models/{model_id}/predictions"
PREDICTION = "/api/ml-models/{model_id}/predictions/{prediction_id}"
PREDICTION_CANCEL = PREDICTION + "/cancel"
PREDICTION_PROGRESS = PREDICTION + "/progress"
PREDICTION_COMPLETE = PREDICTION + "/complete"
PREDICTION_FAIL = PREDICTION + "/fail"
PREDICT = "/api/ml-models/{model_id}/predict"


@pytest.fixture
def predictor(launcher):
    """The canned predictor of the `launcher` fixture's graph, kept at hand to make it fail."""
    from fakes.collaborators import CannedPredictor

    canned = CannedPredictor()
    install_graph(launcher=launcher, predictor=canned)
    return canned


@pytest.fixture
def trained(api, launcher, make_model) -> dict:
    """A model with a trained version 1 (its run completed with a manifest naming it)."""
    from runs import own_artifact

    model = make_model(type="decision_tree")
    check(api.post(TRAIN, {"model_id": model["id"]}), "POST", TRAIN, 202)
    job = launcher.jobs[-1]
    check(callback(api, job, "complete", {"model_artifact_path": own_artifact(api, job)}), "POST", COMPLETE, 200)
    return check(api.get(f"{MODELS}/{model['id']}"), "GET", MODEL, 200)


@pytest.fixture
def batch_input(api, project, ontology, s3) -> dict:
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{project}/batch/a.csv", Body=b"id,temperature,humidity\n1,20,30\n")
    reply = api.post(CONFIGS, {"project_id": project, "name": "batch", "ontology_id": ontology["id"],
                               "uri": f"s3://{DATA_BUCKET}/{project}/batch/", "format": "csv"})
    assert reply.status == 201, reply
    return reply.json


def prediction_callback(api, job: TrainingJob, kind: str, body: dict | None, token: str | None = None):
    """A prediction job's report: its own token, no X-Training-Run-Id (the path names the job)."""
    headers = {"Authorization": f"Bearer {job.callback_token if token is None else token}"}
    return api.post(f"/api/ml-models/{job.model_id}/predictions/{job.run_id}/{kind}", body, headers=headers)


def write_success(s3, prediction: dict, **override) -> None:
    """What a prediction job writes last: `_SUCCESS` naming the job, with its parts."""
    bucket, _, prefix = prediction["output_uri"][5:].partition("/")
    body = {"format_version": 1, "prediction_id": prediction["id"], "model_id": prediction["model_id"],
            "version": prediction["version"], "rows": 3, "error_rows": 1,
            "columns": ["id", "prediction", "probability_no", "probability_yes", "error"],
            "parts": [{"name": "part-00000.csv", "rows": 3, "size": 120, "sha256": "0" * 64}], **override}
    s3.put_object(Bucket=bucket, Key=prefix + "_SUCCESS", Body=json.dumps(body).encode())


def test_prediction_job_routes(api, launcher, trained, batch_input, s3):
    model_id = trained["id"]
    url = f"/api/ml-models/{model_id}/predictions"
    first = check(api.post(url, {"storage_ids": [batch_input["id"]], "passthrough_columns": ["id"]}),
                  "POST", PREDICTIONS, 202)
    assert (first["status"], first["version"], first["output_format"]) == ("queued", 1, "csv")
    assert first["output_uri"] == f"s3://{ARTIFACTS}/predictions/{model_id}/{first['id']}/"
    job = launcher.jobs[-1]
    second = check(api.post(url, {"storage_ids": [batch_input["id"]], "version": 1, "output_format": "parquet"}),
                   "POST", PREDICTIONS, 202)

    page = check(api.get(f"{url}?limit=1"), "GET", PREDICTIONS, 200)
    assert [p["id"] for p in page["predictions"]] == [second["id"]] and page["next_token"]
    rest = check(api.get(f"{url}?limit=1&next_token={page['next_token']}"), "GET", PREDICTIONS, 200)
    assert [p["id"] for p in rest["predictions"]] == [first["id"]]
    assert check(api.get(f"{url}/{first['id']}"), "GET", PREDICTION, 200) == first

    progress = prediction_callback(api, job, "progress", {"rows": 0})
    assert check(progress, "POST", PREDICTION_PROGRESS, 200) == {"status": "progress recorded"}
    check(prediction_callback(api, job, "progress", {"rows": -1}), "POST", PREDICTION_PROGRESS, 400)
    check(prediction_callback(api, job, "progress", {"rows": 1}, token="forged"), "POST", PREDICTION_PROGRESS, 401)
    assert check(api.get(f"{url}/{first['id']}"), "GET", PREDICTION, 200)["status"] == "running"

    incomplete = check(prediction_callback(api, job, "complete", {"rows": 3}), "POST", PREDICTION_COMPLETE, 409)
    assert incomplete["field"] == "output_uri"
    write_success(s3, first, prediction_id="pred-someone-else")
    check(prediction_callback(api, job, "complete", {}), "POST", PREDICTION_COMPLETE, 409)
    check(prediction_callback(api, job, "complete", {"error_rows": "1"}), "POST", PREDICTION_COMPLETE, 400)
    write_success(s3, first)
    done = prediction_callback(api, job, "complete", {"rows": 3, "error_rows": 1})
    assert check(done, "POST", PREDICTION_COMPLETE, 200) == {"status": "prediction completed"}
    assert check(prediction_callback(api, job, "complete", {}), "POST", PREDICTION_COMPLETE, 200) == done.json
    late = check(prediction_callback(api, job, "fail", {"reason": "late"}), "POST", PREDICTION_FAIL, 409)
    assert late["current_status"] == "succeeded"
    check(prediction_callback(api, job, "progress", {"rows": 3}), "POST", PREDICTION_PROGRESS, 409)

    succeeded = check(api.get(f"{url}/{first['id']}"), "GET", PREDICTION, 200)
    assert (succeeded["status"], succeeded["rows"], succeeded["error_rows"], succeeded["parts"]) == (
        "succeeded", 3, 1, 1)
    assert [h["status"] for h in succeeded["status_history"]] == ["queued", "running", "succeeded"]
    ended = check(api.post(f"{url}/{first['id']}/cancel"), "POST", PREDICTION_CANCEL, 409)
    assert ended["current_status"] == "succeeded"


def test_prediction_job_errors(api, launcher, trained, batch_input, make_model):
    model_id = trained["id"]
    url = f"/api/ml-models/{model_id}/predictions"
    good = {"storage_ids": [batch_input["id"]]}
    for body, field in [({}, "storage_ids"), ({"storage_ids": []}, "storage_ids"),
                        ({"storage_ids": ["storage-nope"]}, "storage_ids"),
                        ({**good, "storage_ids": [batch_input["id"]] * 21}, "storage_ids"),
                        ({**good, "passthrough_columns": ["prediction"]}, "passthrough_columns"),
                        ({**good, "passthrough_columns": ["probability_yes"]}, "passthrough_columns"),
                        ({**good, "passthrough_columns": [f"c{i}" for i in range(51)]}, "passthrough_columns"),
                        ({**good, "output_format": "jsonl"}, "output_format"), ({**good, "version": 0}, "version"),
                        ({**good, "bucket": "mine"}, "bucket")]:
        refused = check(api.post(url, body), "POST", PREDICTIONS, 400)
        assert refused["field"] == field, (body, refused)
    check(api.request("POST", url, raw="{not json"), "POST", PREDICTIONS, 400)
    check(api.post(url, {**good, "passthrough_columns": ["x" * (1024 * 1024)]}), "POST", PREDICTIONS, 413)
    check(api.request("POST", url, raw="a=b", headers={"Content-Type": "text/plain"}), "POST", PREDICTIONS, 415)
    assert check(api.post(url, {**good, "version": 7}), "POST", PREDICTIONS, 404)["field"] == "version"
    check(api.post(f"{MODELS}/model-nope/predictions", good), "POST", PREDICTIONS, 404)
    untrained = make_model(type="decision_tree")
    no_version = check(api.post(f"{MODELS}/{untrained['id']}/predictions", good), "POST", PREDICTIONS, 409)
    assert (no_version["field"], no_version["current_status"]) == ("version", "draft")

    launcher.refuse_with = UpstreamFailed("kubernetes API refused: 403")
    check(api.post(url, good), "POST", PREDICTIONS, 502)
    launcher.refuse_with = ConnectionError("cluster unreachable")
    unavailable = check(api.post(url, good), "POST", PREDICTIONS, 503)
    assert unavailable["job_id"].startswith("pred-")
    failed = check(api.get(f"{url}/{unavailable['job_id']}"), "GET", PREDICTION, 200)
    assert failed["status"] == "failed" and failed["failure_reason"].startswith("submission failed")
    for _ in range(3):
        check(api.post(url, good), "POST", PREDICTIONS, 202)
    busy = api.post(url, good)
    refused = check(busy, "POST", PREDICTIONS, 429)
    assert (refused["limit"], refused["active_jobs"]) == (3, 3)

    check(api.get(f"{url}?limit=0"), "GET", PREDICTIONS, 400)
    check(api.get(f"{url}?next_token=forged"), "GET", PREDICTIONS, 400)
    check(api.get(f"{MODELS}/model-nope/predictions"), "GET", PREDICTIONS, 404)
    check(api.get(f"{url}/pred-nope"), "GET", PREDICTION, 404)
    other = make_model(type="decision_tree")
    check(api.get(f"{MODELS}/{other['id']}/predictions/{failed['id']}"), "GET", PREDICTION, 404)


def test_prediction_cancel_and_fail(api, launcher, trained, batch_input, s3):
    url = f"/api/ml-models/{trained['id']}/predictions"
    good = {"storage_ids": [batch_input["id"]]}
    first = check(api.post(url, good), "POST", PREDICTIONS, 202)
    first_job = launcher.jobs[-1]
    cancelled = check(api.post(f"{url}/{first['id']}/cancel"), "POST", PREDICTION_CANCEL, 202)
    assert cancelled["status"] == "cancelled" and launcher.cancels[-1][0] == first_job.name
    again = check(api.post(f"{url}/{first['id']}/cancel", {}), "POST", PREDICTION_CANCEL, 409)
    assert again["current_status"] == "cancelled"
    write_success(s3, first)
    check(prediction_callback(api, first_job, "complete", {}), "POST", PREDICTION_COMPLETE, 409)
    check(prediction_callback(api, first_job, "progress", {"rows": 1}), "POST", PREDICTION_PROGRESS, 409)

    second = check(api.post(url, good), "POST", PREDICTIONS, 202)
    second_job = launcher.jobs[-1]
    check(api.post(f"{url}/{second['id']}/cancel", {"now": True}), "POST", PREDICTION_CANCEL, 400)
    check(api.post(f"{url}/pred-nope/cancel"), "POST", PREDICTION_CANCEL, 404)
    launcher.cancel_refuse_with = ConnectionError("cluster unreachable")
    stopping = check(api.post(f"{url}/{second['id']}/cancel"), "POST", PREDICTION_CANCEL, 202)
    assert stopping["status"] == "cancelling"
    still = check(api.post(f"{url}/{second['id']}/cancel"), "POST", PREDICTION_CANCEL, 409)
    assert still["current_status"] == "cancelling"
    check(prediction_callback(api, second_job, "fail", {"reason": "x"}), "POST", PREDICTION_FAIL, 409)

    third = check(api.post(url, good), "POST", PREDICTIONS, 202)
    third_job = launcher.jobs[-1]
    check(prediction_callback(api, third_job, "fail", {}), "POST", PREDICTION_FAIL, 400)
    check(prediction_callback(api, third_job, "fail", {"reason": " "}), "POST", PREDICTION_FAIL, 400)
    # Another job's token, and the job's own token under another model, are both refused.
    check(prediction_callback(api, third_job, "fail", {"reason": "x"}, token=second_job.callback_token),
          "POST", PREDICTION_FAIL, 401)
    elsewhere = api.post(f"{MODELS}/model-other/predictions/{third['id']}/fail", {"reason": "x"},
                         headers={"Authorization": f"Bearer {third_job.callback_token}"})
    assert check(elsewhere, "POST", PREDICTION_FAIL, 401)["field"] == "Authorization"
    # The caller's JWT, which the client sends by default, is not a job token.
    check(api.post(f"{url}/{third['id']}/fail", {"reason": "x"}), "POST", PREDICTION_FAIL, 401)
    failed = prediction_callback(api, third_job, "fail", {"reason": "input unreadable"})
    assert check(failed, "POST", PREDICTION_FAIL, 200) == {"status": "prediction failed"}
    assert check(prediction_callback(api, third_job, "fail", {"reason": "again"}), "POST", PREDICTION_FAIL,
                 200) == failed.json
    ended = check(api.get(f"{url}/{third['id']}"), "GET", PREDICTION, 200)
    assert (ended["status"], ended["failure_reason"], ended["rows"]) == ("failed", "input unreadable", None)


class RegressionPredictor:
    """The predictor answering as trainer/predictor.py does for a regressor: no probabilities, no classes."""

    def predict(self, payload: dict) -> dict:
        return {"model_id": payload["model_id"], "version": payload["version"],
                "predictions": [21.5 for _ in payload["instances"]]}


def test_predict_route(api, launcher, predictor, trained, make_model):
    from chalicelib.errors import InvalidInput, PayloadTooLarge, UpstreamUnavailable

    url = f"/api/ml-models/{trained['id']}/predict"
    instances = [{"temperature": 21.5, "humidity": 40.0}, {"temperature": 18.0, "humidity": None}]
    answer = check(api.post(url, {"instances": instances}), "POST", PREDICT, 200)
    assert answer == {"model_id": trained["id"], "version": 1, "predictions": ["yes", "yes"],
                      "probabilities": [[0.25, 0.75], [0.25, 0.75]], "classes": ["no", "yes"]}
    check(api.post(url, {"instances": instances, "version": 1}), "POST", PREDICT, 200)

    for body, field in [({}, "instances"), ({"instances": []}, "instances"), ({"instances": [1]}, "instances[0]"),
                        ({"instances": [{}] * 1001}, "instances"), ({"instances": [{}], "version": "1"}, "version"),
                        ({"instances": [{}], "extra": 1}, "extra")]:
        refused = check(api.post(url, body), "POST", PREDICT, 400)
        assert refused["field"] == field, (body, refused)
    check(api.request("POST", url, raw="a=b", headers={"Content-Type": "text/plain"}), "POST", PREDICT, 415)
    check(api.post(url, {"instances": [{"note": "x" * (1024 * 1024)}]}), "POST", PREDICT, 413)
    assert check(api.post(url, {"instances": [{}], "version": 9}), "POST", PREDICT, 404)["field"] == "version"
    check(api.post(f"{MODELS}/model-nope/predict", {"instances": [{}]}), "POST", PREDICT, 404)
    untrained = make_model(type="decision_tree")
    check(api.post(f"{MODELS}/{untrained['id']}/predict", {"instances": [{}]}), "POST", PREDICT, 409)

    # What the predictor function answers, mapped by the adapter (adapters/predictor.py).
    for raised, status in [
            (InvalidInput("instances[0] is missing feature 'humidity'", field="instances[0].humidity"), 400),
            (PayloadTooLarge("the prediction request is over the predictor's 6 MB limit", field="instances"), 413),
            (UpstreamFailed("the predictor function 'ml-models-predictor-test' failed (MemoryError)"), 502),
            (UpstreamUnavailable("the predictor function 'ml-models-predictor-test' cannot be reached right now"),
             503)]:
        predictor.raise_with = raised
        check(api.post(url, {"instances": [{"temperature": 1}]}), "POST", PREDICT, status)
    predictor.raise_with = None

    install_graph(launcher=launcher, predictor=RegressionPredictor())
    regression = check(api.post(url, {"instances": instances}), "POST", PREDICT, 200)
    assert regression == {"model_id": trained["id"], "version": 1, "predictions": [21.5, 21.5]}
    install_graph(launcher=launcher)  # a stage without PREDICTOR_FUNCTION
    check(api.post(url, {"instances": instances}), "POST", PREDICT, 503)


def test_prediction_request_schemas_list_what_the_services_accept(api, launcher, trained, batch_input):
    """Each request schema's properties are exactly the fields its service accepts (the service's
    refusal of an unknown field lists them)."""
    url = f"/api/ml-models/{trained['id']}/predictions"
    prediction = check(api.post(url, {"storage_ids": [batch_input["id"]]}), "POST", PREDICTIONS, 202)
    job = launcher.jobs[-1]
    replies = {
        "CreatePredictionRequest": api.post(url, {"storage_ids": [batch_input["id"]], "zz": 1}),
        "CancelPredictionRequest": api.post(f"{url}/{prediction['id']}/cancel", {"zz": 1}),
        "PredictRequest": api.post(f"/api/ml-models/{trained['id']}/predict", {"instances": [{}], "zz": 1}),
        "PredictionProgressRequest": prediction_callback(api, job, "progress", {"zz": 1}),
        "PredictionCompleteRequest": prediction_callback(api, job, "complete", {"zz": 1}),
        "PredictionFailRequest": prediction_callback(api, job, "fail", {"zz": 1}),
    }
    for name, reply in replies.items():
        assert reply.status == 400 and reply.json["field"] == "zz", (name, reply)
        allowed = reply.json["message"].split("allowed: ", 1)[1]
        accepted = {f for f in allowed.split(", ") if f}
        assert set(SPEC["components"]["schemas"][name].get("properties", {})) == accepted, name


def test_prediction_routes_who_may(api, issuer, launcher, project, trained, batch_input):
    url = f"/api/ml-models/{trained['id']}/predictions"
    prediction = check(api.post(url, {"storage_ids": [batch_input["id"]]}), "POST", PREDICTIONS, 202)
    viewer = issuer.headers({project: "viewer"})
    body = {"storage_ids": [batch_input["id"]]}
    assert check(api.post(url, body, headers=viewer), "POST", PREDICTIONS, 403)["code"] == "forbidden"
    check(api.post(f"{url}/{prediction['id']}/cancel", headers=viewer), "POST", PREDICTION_CANCEL, 403)
    check(api.get(url, headers=viewer), "GET", PREDICTIONS, 200)
    check(api.get(f"{url}/{prediction['id']}", headers=viewer), "GET", PREDICTION, 200)
    predict = f"/api/ml-models/{trained['id']}/predict"
    check(api.post(predict, {"instances": [{"temperature": 1}]}, headers=viewer), "POST", PREDICT, 200)

    stranger = issuer.headers({"proj-elsewhere": "editor"})
    check(api.post(url, body, headers=stranger), "POST", PREDICTIONS, 404)
    check(api.get(f"{url}/{prediction['id']}", headers=stranger), "GET", PREDICTION, 404)
    check(api.post(predict, {"instances": [{}]}, headers=stranger), "POST", PREDICT, 404)
    no_token = {"Authorization": None}
    for reply, method, path in [(api.get(url, headers=no_token), "GET", PREDICTIONS),
                                (api.post(url, body, headers=no_token), "POST", PREDICTIONS),
                                (api.post(f"{url}/{prediction['id']}/cancel", headers=no_token),
                                 "POST", PREDICTION_CANCEL),
                                (api.post(predict, {"instances": [{}]}, headers=no_token), "POST", PREDICT)]:
        assert check(reply, method, path, 401)["field"] == "Authorization"


# ---- evaluations: the jobs, their callbacks, the verdict, monitoring ------------------------

EVALUATIONS = "/api/ml-models/{model_id}/evaluations"
EVALUATION = "/api/ml-models/{model_id}/evaluations/{evaluation_id}"
EVALUATION_CANCEL = EVALUATION + "/cancel"
EVALUATION_PROGRESS = EVALUATION + "/progress"
EVALUATION_COMPLETE = EVALUATION + "/complete"
EVALUATION_FAIL = EVALUATION + "/fail"
EVALUATION_CREDENTIALS = EVALUATION + "/credentials"
PREDICTION_CREDENTIALS = PREDICTION + "/credentials"
# Reports as trainer.evaluate writes them: one within bounds, one where accuracy fell and a top feature drifted.
CLEAN_REPORT = {"metrics": {"accuracy": 0.89, "f1_score": 0.88, "confusion_matrix": [[40, 5], [6, 49]]},
                "baseline_metrics": {"accuracy": 0.9, "f1_score": 0.89},
                "psi": {"temperature": 0.01, "humidity": 0.02}, "prediction_psi": 0.01,
                "feature_importance": {"temperature": 0.7, "humidity": 0.3}}
SHIFTED_REPORT = {"metrics": {"accuracy": 0.61, "f1_score": 0.58},
                  "baseline_metrics": {"accuracy": 0.9, "f1_score": 0.89},
                  "psi": {"temperature": 1.7, "humidity": None}, "prediction_psi": 0.4,
                  "feature_importance": {"temperature": 0.7, "humidity": 0.3}}


def evaluation_callback(api, job: TrainingJob, kind: str, body: dict | None, token: str | None = None):
    """An evaluation job's report: its own token, no X-Training-Run-Id (the path names the job)."""
    headers = {"Authorization": f"Bearer {job.callback_token if token is None else token}"}
    return api.post(f"/api/ml-models/{job.model_id}/evaluations/{job.run_id}/{kind}", body, headers=headers)


def write_report(s3, evaluation: dict, report: dict, **override) -> None:
    """What an evaluation job writes last: `report.json` naming the evaluation."""
    bucket, _, prefix = evaluation["output_uri"][5:].partition("/")
    body = {"format_version": 1, "evaluation_id": evaluation["id"], "model_id": evaluation["model_id"],
            "version": evaluation["version"], "rows": 100, "labelled_rows": 98, **report, **override}
    s3.put_object(Bucket=bucket, Key=prefix + "report.json", Body=json.dumps(body).encode())


def test_evaluation_routes_and_the_verdict(api, launcher, trained, batch_input, s3):
    model_id = trained["id"]
    url = f"/api/ml-models/{model_id}/evaluations"
    first = check(api.post(url, {"storage_ids": [batch_input["id"]]}), "POST", EVALUATIONS, 202)
    assert (first["status"], first["version"], first["verdict"]) == ("queued", 1, None)
    assert first["output_uri"] == f"s3://{ARTIFACTS}/evaluations/{model_id}/{first['id']}/"
    job = launcher.jobs[-1]
    second = check(api.post(url, {"storage_ids": [batch_input["id"]], "version": 1}), "POST", EVALUATIONS, 202)
    second_job = launcher.jobs[-1]

    page = check(api.get(f"{url}?limit=1"), "GET", EVALUATIONS, 200)
    assert [e["id"] for e in page["evaluations"]] == [second["id"]] and page["next_token"]
    rest = check(api.get(f"{url}?limit=1&next_token={page['next_token']}"), "GET", EVALUATIONS, 200)
    assert [e["id"] for e in rest["evaluations"]] == [first["id"]]
    assert check(api.get(f"{url}/{first['id']}"), "GET", EVALUATION, 200) == first

    progress = evaluation_callback(api, job, "progress", {"rows": 0})
    assert check(progress, "POST", EVALUATION_PROGRESS, 200) == {"status": "progress recorded"}
    check(evaluation_callback(api, job, "progress", {"rows": -1}), "POST", EVALUATION_PROGRESS, 400)
    check(evaluation_callback(api, job, "progress", {"rows": 1}, token="forged"), "POST", EVALUATION_PROGRESS, 401)
    assert check(api.get(f"{url}/{first['id']}"), "GET", EVALUATION, 200)["status"] == "running"

    missing = check(evaluation_callback(api, job, "complete", {}), "POST", EVALUATION_COMPLETE, 409)
    assert missing["field"] == "output_uri"
    write_report(s3, first, SHIFTED_REPORT, evaluation_id="eval-someone-else")
    check(evaluation_callback(api, job, "complete", {}), "POST", EVALUATION_COMPLETE, 409)
    check(evaluation_callback(api, job, "complete", {"rows": 100}), "POST", EVALUATION_COMPLETE, 400)
    check(evaluation_callback(api, job, "complete", None), "POST", EVALUATION_COMPLETE, 400)
    write_report(s3, first, SHIFTED_REPORT)
    done = evaluation_callback(api, job, "complete", {})
    assert check(done, "POST", EVALUATION_COMPLETE, 200) == {"status": "evaluation completed"}
    assert check(evaluation_callback(api, job, "complete", {}), "POST", EVALUATION_COMPLETE, 200) == done.json
    late = check(evaluation_callback(api, job, "fail", {"reason": "late"}), "POST", EVALUATION_FAIL, 409)
    assert late["current_status"] == "succeeded"
    check(evaluation_callback(api, job, "progress", {"rows": 3}), "POST", EVALUATION_PROGRESS, 409)
    check(evaluation_callback(api, job, "credentials", {}), "POST", EVALUATION_CREDENTIALS, 409)

    judged = check(api.get(f"{url}/{first['id']}"), "GET", EVALUATION, 200)
    assert (judged["status"], judged["verdict"], judged["primary_metric"]) == ("succeeded", "degraded", "accuracy")
    assert judged["drop"] == pytest.approx(0.29) and judged["drifted_features"] == ["temperature"]
    assert judged["psi"] == {"temperature": 1.7}  # a feature without values is left out
    assert judged["metrics"] == {"accuracy": 0.61, "f1_score": 0.58}
    assert [h["status"] for h in judged["status_history"]] == ["queued", "running", "succeeded"]
    degraded = check(api.get(f"{MODELS}/{model_id}"), "GET", MODEL, 200)
    assert degraded["status"] == "degraded"
    assert degraded["metadata"]["degraded_reason"]["evaluation_id"] == first["id"]
    ended = check(api.post(f"{url}/{first['id']}/cancel"), "POST", EVALUATION_CANCEL, 409)
    assert ended["current_status"] == "succeeded"

    write_report(s3, second, CLEAN_REPORT)
    check(evaluation_callback(api, second_job, "complete", {}), "POST", EVALUATION_COMPLETE, 200)
    passed = check(api.get(f"{url}/{second['id']}"), "GET", EVALUATION, 200)
    assert (passed["verdict"], passed["reason"], passed["thresholds"]) == (
        "within_bounds", "", {"max_drop": 0.05, "max_psi": 0.2})
    assert "confusion_matrix" not in passed["metrics"]
    back = check(api.get(f"{MODELS}/{model_id}"), "GET", MODEL, 200)
    assert back["status"] == "trained" and "degraded_reason" not in back["metadata"]


def test_evaluation_errors(api, launcher, trained, batch_input, make_model):
    model_id = trained["id"]
    url = f"/api/ml-models/{model_id}/evaluations"
    good = {"storage_ids": [batch_input["id"]]}
    for body, field in [({}, "storage_ids"), ({"storage_ids": []}, "storage_ids"),
                        ({"storage_ids": ["storage-nope"]}, "storage_ids"),
                        ({"storage_ids": [batch_input["id"]] * 21}, "storage_ids"),
                        ({**good, "version": 0}, "version"), ({**good, "version": "1"}, "version"),
                        ({**good, "metric": "f1_score"}, "metric")]:
        refused = check(api.post(url, body), "POST", EVALUATIONS, 400)
        assert refused["field"] == field, (body, refused)
    check(api.request("POST", url, raw="{not json"), "POST", EVALUATIONS, 400)
    check(api.post(url, {"storage_ids": ["x" * (1024 * 1024)]}), "POST", EVALUATIONS, 413)
    check(api.request("POST", url, raw="a=b", headers={"Content-Type": "text/plain"}), "POST", EVALUATIONS, 415)
    assert check(api.post(url, {**good, "version": 7}), "POST", EVALUATIONS, 404)["field"] == "version"
    check(api.post(f"{MODELS}/model-nope/evaluations", good), "POST", EVALUATIONS, 404)
    untrained = make_model(type="decision_tree")
    no_version = check(api.post(f"{MODELS}/{untrained['id']}/evaluations", good), "POST", EVALUATIONS, 409)
    assert (no_version["field"], no_version["current_status"]) == ("version", "draft")

    launcher.refuse_with = UpstreamFailed("kubernetes API refused: 403")
    check(api.post(url, good), "POST", EVALUATIONS, 502)
    launcher.refuse_with = ConnectionError("cluster unreachable")
    unavailable = check(api.post(url, good), "POST", EVALUATIONS, 503)
    assert unavailable["job_id"].startswith("eval-")
    failed = check(api.get(f"{url}/{unavailable['job_id']}"), "GET", EVALUATION, 200)
    assert failed["status"] == "failed" and failed["failure_reason"].startswith("submission failed")
    assert failed["verdict"] is None
    launcher.refuse_with = None
    for _ in range(3):
        check(api.post(url, good), "POST", EVALUATIONS, 202)
    refused = check(api.post(url, good), "POST", EVALUATIONS, 429)
    assert (refused["limit"], refused["active_jobs"]) == (3, 3)

    check(api.get(f"{url}?limit=0"), "GET", EVALUATIONS, 400)
    check(api.get(f"{url}?next_token=forged"), "GET", EVALUATIONS, 400)
    check(api.get(f"{MODELS}/model-nope/evaluations"), "GET", EVALUATIONS, 404)
    assert check(api.get(f"{url}/eval-nope"), "GET", EVALUATION, 404)["field"] == "evaluation_id"
    other = make_model(type="decision_tree")
    check(api.get(f"{MODELS}/{other['id']}/evaluations/{failed['id']}"), "GET", EVALUATION, 404)
    # A prediction job is not an evaluation, though both are jobs of the model.
    prediction = check(api.post(f"{url.removesuffix('evaluations')}predictions", good), "POST", PREDICTIONS, 202)
    check(api.get(f"{url}/{prediction['id']}"), "GET", EVALUATION, 404)


def test_evaluation_cancel_and_fail(api, launcher, trained, batch_input, s3):
    url = f"/api/ml-models/{trained['id']}/evaluations"
    good = {"storage_ids": [batch_input["id"]]}
    first = check(api.post(url, good), "POST", EVALUATIONS, 202)
    first_job = launcher.jobs[-1]
    cancelled = check(api.post(f"{url}/{first['id']}/cancel"), "POST", EVALUATION_CANCEL, 202)
    assert cancelled["status"] == "cancelled" and launcher.cancels[-1][0] == first_job.name
    again = check(api.post(f"{url}/{first['id']}/cancel", {}), "POST", EVALUATION_CANCEL, 409)
    assert again["current_status"] == "cancelled"
    write_report(s3, first, SHIFTED_REPORT)
    check(evaluation_callback(api, first_job, "complete", {}), "POST", EVALUATION_COMPLETE, 409)
    check(evaluation_callback(api, first_job, "progress", {"rows": 1}), "POST", EVALUATION_PROGRESS, 409)
    # Whatever a cancelled evaluation wrote, it does not judge the model.
    assert check(api.get(f"{MODELS}/{trained['id']}"), "GET", MODEL, 200)["status"] == "trained"

    second = check(api.post(url, good), "POST", EVALUATIONS, 202)
    second_job = launcher.jobs[-1]
    check(api.post(f"{url}/{second['id']}/cancel", {"now": True}), "POST", EVALUATION_CANCEL, 400)
    check(api.post(f"{url}/eval-nope/cancel"), "POST", EVALUATION_CANCEL, 404)
    launcher.cancel_refuse_with = ConnectionError("cluster unreachable")
    stopping = check(api.post(f"{url}/{second['id']}/cancel"), "POST", EVALUATION_CANCEL, 202)
    assert stopping["status"] == "cancelling"
    still = check(api.post(f"{url}/{second['id']}/cancel"), "POST", EVALUATION_CANCEL, 409)
    assert still["current_status"] == "cancelling"
    check(evaluation_callback(api, second_job, "fail", {"reason": "x"}), "POST", EVALUATION_FAIL, 409)

    third = check(api.post(url, good), "POST", EVALUATIONS, 202)
    third_job = launcher.jobs[-1]
    check(evaluation_callback(api, third_job, "fail", {}), "POST", EVALUATION_FAIL, 400)
    check(evaluation_callback(api, third_job, "fail", {"reason": " "}), "POST", EVALUATION_FAIL, 400)
    check(evaluation_callback(api, third_job, "fail", {"reason": "x"}, token=second_job.callback_token),
          "POST", EVALUATION_FAIL, 401)
    elsewhere = api.post(f"{MODELS}/model-other/evaluations/{third['id']}/fail", {"reason": "x"},
                         headers={"Authorization": f"Bearer {third_job.callback_token}"})
    assert check(elsewhere, "POST", EVALUATION_FAIL, 401)["field"] == "Authorization"
    check(api.post(f"{url}/{third['id']}/fail", {"reason": "x"}), "POST", EVALUATION_FAIL, 401)  # a user's JWT
    failed = evaluation_callback(api, third_job, "fail", {"reason": "part-1.csv lacks feature(s) humidity"})
    assert check(failed, "POST", EVALUATION_FAIL, 200) == {"status": "evaluation failed"}
    assert check(evaluation_callback(api, third_job, "fail", {"reason": "again"}), "POST", EVALUATION_FAIL,
                 200) == failed.json
    ended = check(api.get(f"{url}/{third['id']}"), "GET", EVALUATION, 200)
    assert (ended["status"], ended["failure_reason"], ended["rows"]) == (
        "failed", "part-1.csv lacks feature(s) humidity", None)


def test_evaluation_request_schemas_list_what_the_services_accept(api, launcher, trained, batch_input):
    """Each request schema's properties are exactly the fields its service accepts (the service's
    refusal of an unknown field lists them)."""
    url = f"/api/ml-models/{trained['id']}/evaluations"
    evaluation = check(api.post(url, {"storage_ids": [batch_input["id"]]}), "POST", EVALUATIONS, 202)
    job = launcher.jobs[-1]
    replies = {
        "CreateEvaluationRequest": api.post(url, {"storage_ids": [batch_input["id"]], "zz": 1}),
        "CancelEvaluationRequest": api.post(f"{url}/{evaluation['id']}/cancel", {"zz": 1}),
        "EvaluationProgressRequest": evaluation_callback(api, job, "progress", {"zz": 1}),
        "EvaluationCompleteRequest": evaluation_callback(api, job, "complete", {"zz": 1}),
        "EvaluationFailRequest": evaluation_callback(api, job, "fail", {"zz": 1}),
        "JobCredentialsRequest": evaluation_callback(api, job, "credentials", {"zz": 1}),
    }
    for name, reply in replies.items():
        assert reply.status == 400 and reply.json["field"] == "zz", (name, reply)
        allowed = reply.json["message"].split("allowed: ", 1)[1]
        accepted = {f for f in allowed.split(", ") if f}
        assert set(SPEC["components"]["schemas"][name].get("properties", {})) == accepted, name


def test_evaluation_routes_who_may(api, issuer, launcher, project, trained, batch_input):
    url = f"/api/ml-models/{trained['id']}/evaluations"
    evaluation = check(api.post(url, {"storage_ids": [batch_input["id"]]}), "POST", EVALUATIONS, 202)
    viewer = issuer.headers({project: "viewer"})
    body = {"storage_ids": [batch_input["id"]]}
    assert check(api.post(url, body, headers=viewer), "POST", EVALUATIONS, 403)["code"] == "forbidden"
    check(api.post(f"{url}/{evaluation['id']}/cancel", headers=viewer), "POST", EVALUATION_CANCEL, 403)
    check(api.get(url, headers=viewer), "GET", EVALUATIONS, 200)
    check(api.get(f"{url}/{evaluation['id']}", headers=viewer), "GET", EVALUATION, 200)

    stranger = issuer.headers({"proj-elsewhere": "editor"})
    check(api.post(url, body, headers=stranger), "POST", EVALUATIONS, 404)
    check(api.get(url, headers=stranger), "GET", EVALUATIONS, 404)
    check(api.get(f"{url}/{evaluation['id']}", headers=stranger), "GET", EVALUATION, 404)
    check(api.post(f"{url}/{evaluation['id']}/cancel", headers=stranger), "POST", EVALUATION_CANCEL, 404)
    no_token = {"Authorization": None}
    for reply, method, path in [(api.get(url, headers=no_token), "GET", EVALUATIONS),
                                (api.post(url, body, headers=no_token), "POST", EVALUATIONS),
                                (api.get(f"{url}/{evaluation['id']}", headers=no_token), "GET", EVALUATION),
                                (api.post(f"{url}/{evaluation['id']}/cancel", headers=no_token),
                                 "POST", EVALUATION_CANCEL)]:
        assert check(reply, method, path, 401)["field"] == "Authorization"


def monitoring_schema_accepts(body: dict) -> bool:
    schema = rebase({"$ref": "#/components/schemas/CreateMlModelRequest"})
    return Draft202012Validator(schema, registry=REGISTRY).is_valid(body)


def test_a_monitored_model_and_the_schedule(api, launcher, project, ontology, trained, batch_input):
    base = {"project_id": project, "ontology_id": ontology["id"], "name": "m", "type": "decision_tree"}
    settings = {"storage_ids": [batch_input["id"]], "every_minutes": 30, "max_drop": 0.03}
    monitored = check(api.post(MODELS, {**base, "monitoring": settings}), "POST", MODELS, 201)
    assert monitored["monitoring"] == {**settings, "max_psi": 0.2} and monitored["next_evaluation_at"]
    assert check(api.get(f"{MODELS}/{monitored['id']}"), "GET", MODEL, 200) == monitored
    for off in (None, {}):
        plain = check(api.post(MODELS, {**base, "monitoring": off}), "POST", MODELS, 201)
        assert (plain["monitoring"], plain["next_evaluation_at"]) == ({}, None)

    # The schema and the service refuse the same settings.
    sid = batch_input["id"]
    for bad in ({"storage_ids": []}, {"storage_ids": [""]}, {"storage_ids": [sid] * 21},
                {"storage_ids": [sid], "every_minutes": 4}, {"storage_ids": [sid], "every_minutes": 10081},
                {"storage_ids": [sid], "every_minutes": "60"}, {"storage_ids": [sid], "max_drop": 1.5},
                {"storage_ids": [sid], "max_psi": -0.1}, {"storage_ids": [sid], "max_psi": 11},
                {"storage_ids": [sid], "metric": ""}, {"storage_ids": [sid], "metric": "m" * 65},
                {"storage_ids": [sid], "when": "daily"}, {"every_minutes": 60}, [sid], "hourly"):
        body = {**base, "monitoring": bad}
        assert not monitoring_schema_accepts(body), bad
        check(api.post(MODELS, body), "POST", MODELS, 400)
    for good in ({"storage_ids": [sid]}, {"storage_ids": [sid, sid], "every_minutes": 5, "max_drop": 0,
                                          "max_psi": 10, "metric": "f1_score"}, {}, None):
        assert monitoring_schema_accepts({**base, "monitoring": good}), good
    # A storage config the schema cannot know about: the service's check.
    unknown = check(api.post(MODELS, {**base, "monitoring": {"storage_ids": ["storage-nope"]}}), "POST", MODELS, 400)
    assert unknown["field"] == "storage_ids"

    model_id = trained["id"]
    on = check(api.put(f"{MODELS}/{model_id}", {"monitoring": {"storage_ids": [sid]}}), "PUT", MODEL, 200)
    assert on["monitoring"]["every_minutes"] == 60 and on["next_evaluation_at"]
    check(api.put(f"{MODELS}/{model_id}", {"monitoring": {"storage_ids": [sid], "max_psi": 20}}), "PUT", MODEL, 400)
    check(api.put(f"{MODELS}/{model_id}", {"next_evaluation_at": None}), "PUT", MODEL, 400)

    # The schedule starts one evaluation of the due, trained model (the untrained one's turn is used up).
    event = api.client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=["arn:aws:events:us-east-1:123456789012:rule/monitor"])
    summary = api.client.lambda_.invoke("start_due_evaluations", event).payload
    assert (summary["evaluations_started"], summary["not_started"]) == (1, 1), summary
    scheduled = check(api.get(f"{MODELS}/{model_id}/evaluations"), "GET", EVALUATIONS, 200)
    assert [e["storage_ids"] for e in scheduled["evaluations"]] == [[sid]]
    moved = check(api.get(f"{MODELS}/{model_id}"), "GET", MODEL, 200)
    assert moved["next_evaluation_at"] > on["next_evaluation_at"]

    off = check(api.put(f"{MODELS}/{model_id}", {"monitoring": None}), "PUT", MODEL, 200)
    assert (off["monitoring"], off["next_evaluation_at"]) == ({}, None)


def test_job_credentials_routes(api, trained, batch_input):
    """A prediction or evaluation job's fresh credentials (a graph that issues them), and 409 once it ended."""
    from fakes.collaborators import FakeCredentialIssuer

    fake = FakeLauncher()
    install_graph(launcher=fake, credentials=FakeCredentialIssuer())
    for plural, path in (("predictions", PREDICTION_CREDENTIALS), ("evaluations", EVALUATION_CREDENTIALS)):
        url = f"/api/ml-models/{trained['id']}/{plural}"
        job_record = api.post(url, {"storage_ids": [batch_input["id"]]})
        assert job_record.status == 202, job_record
        job = fake.jobs[-1]
        own = f"{url}/{job.run_id}/credentials"
        headers = {"Authorization": f"Bearer {job.callback_token}"}
        for body in (None, {}):
            fresh = check(api.post(own, body, headers=headers), "POST", path, 200)
            assert fresh["access_key_id"].startswith("ASIA")
        check(api.post(own, {"duration": 3600}, headers=headers), "POST", path, 400)
        check(api.post(own, {}, headers={"Authorization": "Bearer forged"}), "POST", path, 401)
        check(api.post(f"{url}/{job.run_id}/cancel"), "POST", path.removesuffix("credentials") + "cancel", 202)
        assert check(api.post(own, {}, headers=headers), "POST", path, 409)["current_status"] == "cancelled"

