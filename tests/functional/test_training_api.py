"""The train route, training runs, and the worker callbacks, with a fake launcher."""
from __future__ import annotations

import json

import boto3
import pytest
from conftest import SettableClock, install_graph
from runs import ARTIFACTS, own_artifact

from chalicelib.adapters.launcher import TrainingJob, job_name
from chalicelib.errors import UpstreamFailed

DATA_BUCKET = "ml-models-data-local"
# In a complete callback body: stands for the run's own artifact location (whose manifest the test writes).
OWN = "<the run's own artifact location>"


@pytest.fixture
def data(aws, api, project, ontology):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{project}/sensors/a.csv", Body=b"temperature,humidity\n1,2\n")
    reply = api.post("/api/storage-configs", {"project_id": project, "name": "sensors", "ontology_id": ontology["id"],
                                              "uri": f"s3://{DATA_BUCKET}/{project}/sensors/", "format": "csv"})
    assert reply.status == 201, reply
    return reply.json


def train(api, model_id, **body):
    return api.post("/api/ml-models/train", {"model_id": model_id, **body})


def callback(api, job: TrainingJob, kind: str, body: dict, token: str | None = None, run_header: bool = True):
    headers = {"Authorization": f"Bearer {token if token is not None else job.callback_token}"}
    if run_header:
        headers["X-Training-Run-Id"] = job.run_id
    if body.get("model_artifact_path") == OWN:
        body = {**body, "model_artifact_path": own_artifact(api, job)}
    return api.post(f"/api/ml-models/{job.model_id}/training/{kind}", body, headers=headers)


COMPLETE = {
    "model_artifact_path": OWN,
    "performance_metrics": {"accuracy": 0.95, "f1_score": 0.93, "precision": 0.94, "recall": 0.92},
    "training_metrics": {"epoch": 50, "training_loss": 0.05, "validation_loss": 0.08},
}


def test_train_accepts_and_submits_one_job(api, launcher, make_model, data, ontology):
    model = make_model(training_config={"train_test_split": 0.7, "random_seed": 1, "max_iterations": 5})
    reply = train(api, model["id"], storage_ids=[data["id"]], training_config={"random_seed": 7})
    assert reply.status == 202, reply
    body = reply.json
    assert body["status"] == "training" and body["training_task_id"].startswith("run-")
    assert len(launcher.jobs) == 1
    job = launcher.jobs[0]
    assert job.run_id == body["training_task_id"] and job.model_type == model["type"]
    env = job.environment
    assert env["TRAINER_MODEL_ID"] == model["id"] and env["TRAINER_RUN_ID"] == job.run_id
    assert "TRAINER_CALLBACK_TOKEN" not in env and job.callback_token
    bucket, key = env["TRAINER_SPEC_URI"][5:].split("/", 1)
    spec = json.loads(boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert spec["model_type"] == model["type"] and spec["version"] == 1
    assert spec["ontology"] == {"id": ontology["id"], "content": ontology["content"]}
    assert spec["storage"] == [{"id": data["id"], "uri": data["uri"], "format": "csv"}]
    assert spec["training_config"] == {"train_test_split": 0.7, "random_seed": 7, "max_iterations": 5}

    run = api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}").json
    assert run["status"] == "submitted" and run["version"] == 1 and run["job_name"] == job_name(job.run_id)
    assert [h["status"] for h in run["status_history"]] == ["queued", "submitted"]
    assert run["storage_uris"] == [data["uri"]] and "callback_token_hash" not in run


def test_empty_storage_ids_means_synthetic(api, launcher, make_model):
    model = make_model()
    assert train(api, model["id"]).status == 202
    assert train(api, make_model()["id"], storage_ids=[]).status == 202
    for job in launcher.jobs:
        bucket, key = job.environment["TRAINER_SPEC_URI"][5:].split("/", 1)
        spec = json.loads(boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"]
                          .read())
        assert spec["storage"] == []


@pytest.mark.parametrize("status", ["training", "archived", "deprecated"])
def test_train_is_409_when_model_cannot_train(api, launcher, make_model, status):
    from chalicelib.adapters.dynamo import ModelRepository

    model = make_model()
    repo = ModelRepository()
    repo.replace(repo.get(model["id"]).but(status=status))
    reply = train(api, model["id"])
    assert reply.status == 409 and reply.json["current_status"] == status
    assert launcher.jobs == []


def test_train_input_errors(api, launcher, make_model, data):
    model = make_model()
    assert train(api, "model-nope").status == 404
    reply = train(api, model["id"], storage_ids=["storage-nope"])
    assert reply.status == 400 and reply.json["field"] == "storage_ids" and "storage-nope" in reply.json["message"]
    reply = train(api, model["id"], storage_ids="abc")
    assert reply.status == 400 and reply.json["field"] == "storage_ids"
    reply = train(api, model["id"], training_config={"train_test_split": 2})
    assert reply.status == 400 and reply.json["field"] == "training_config.train_test_split"
    assert api.post("/api/ml-models/train", {}).json["field"] == "model_id"
    assert launcher.jobs == [] and api.get(f"/api/ml-models/{model['id']}").json["status"] == "draft"


def test_storage_of_another_project_is_refused(api, launcher, data, ontology):
    other = api.post("/api/ontologies", {"project_id": "proj-elsewhere", "name": "o", "content": ontology["content"]})
    model = api.post("/api/ml-models", {"project_id": "proj-elsewhere", "ontology_id": other.json["id"], "name": "m",
                                        "type": "regression"}).json
    reply = train(api, model["id"], storage_ids=[data["id"]])
    assert reply.status == 400 and data["id"] in reply.json["message"]


@pytest.mark.parametrize(("error", "status"), [(UpstreamFailed("kubernetes API refused: 403"), 502),
                                               (RuntimeError("connection refused"), 503)])
def test_failed_submission_puts_the_model_back(api, launcher, make_model, error, status):
    model = make_model()
    launcher.refuse_with = error
    reply = train(api, model["id"])
    assert reply.status == status, reply
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after["status"] == "draft" and after["training_task_id"] == ""
    assert "submission failed" in after["metadata"]["failure_reason"]
    runs = api.get(f"/api/ml-models/{model['id']}/runs").json["runs"]
    assert len(runs) == 1 and runs[0]["status"] == "failed" and runs[0]["failure_reason"]
    # The model can be trained again once the cluster answers.
    assert train(api, model["id"]).status == 202


def test_complete_callback_records_the_trained_version(api, launcher, make_model):
    model = make_model(metadata={"failure_reason": "earlier failure", "team": "x"})
    train(api, model["id"])
    job = launcher.jobs[-1]
    reply = callback(api, job, "complete", COMPLETE)
    assert reply.status == 200 and reply.json == {"status": "training completed"}
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after["status"] == "trained" and after["version"] == 1 and after["trained_at"]
    assert after["model_artifact_path"] == f"s3://{ARTIFACTS}/models/{model['id']}/v1/"
    assert after["performance_metrics"] == COMPLETE["performance_metrics"]
    assert after["training_metrics"] == COMPLETE["training_metrics"]
    assert after["metadata"] == {"team": "x"}
    run = api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}").json
    assert run["status"] == "succeeded" and run["performance_metrics"] == COMPLETE["performance_metrics"]

    # Repeating it changes nothing.
    assert callback(api, job, "complete", COMPLETE).json == {"status": "training completed"}
    assert api.get(f"/api/ml-models/{model['id']}").json == after

    # The next run gets the next version.
    assert train(api, model["id"]).status == 202
    reply = callback(api, launcher.jobs[-1], "complete", COMPLETE)
    assert reply.status == 200, reply
    again = api.get(f"/api/ml-models/{model['id']}").json
    assert again["version"] == 2 and again["model_artifact_path"].endswith(f"/{model['id']}/v2/")


def test_fail_callback_records_the_reason(api, launcher, make_model):
    model = make_model()
    train(api, model["id"])
    job = launcher.jobs[-1]
    reply = callback(api, job, "fail", {"reason": "Insufficient training data"})
    assert reply.status == 200 and reply.json == {"status": "training failed"}
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after["status"] == "failed" and after["metadata"]["failure_reason"] == "Insufficient training data"
    assert callback(api, job, "fail", {"reason": "again"}).status == 200
    assert api.get(f"/api/ml-models/{model['id']}").json == after
    # A complete after the fail is refused.
    assert callback(api, job, "complete", COMPLETE).status == 409


def test_forged_callbacks_are_401(api, launcher, make_model):
    model = make_model()
    train(api, model["id"])
    job = launcher.jobs[-1]
    assert callback(api, job, "complete", COMPLETE, token="forged").status == 401
    assert callback(api, job, "fail", {"reason": "x"}, token="").status == 401
    reply = api.post(f"/api/ml-models/{model['id']}/training/complete", COMPLETE)
    assert reply.status == 401 and reply.json["field"] == "Authorization"
    # Another model's token does not open this model.
    other = make_model()
    train(api, other["id"])
    other_job = launcher.jobs[-1]
    forged = TrainingJob(run_id=other_job.run_id, model_id=model["id"], project_id="", model_type="",
                         callback_token=other_job.callback_token)
    assert callback(api, forged, "complete", COMPLETE).status == 401
    assert api.get(f"/api/ml-models/{model['id']}").json["status"] == "training"


def test_callback_without_run_header_speaks_for_the_current_run(api, launcher, make_model):
    model = make_model()
    train(api, model["id"])
    assert callback(api, launcher.jobs[-1], "complete", COMPLETE, run_header=False).status == 200


def test_stale_run_is_409(api, launcher, make_model):
    model = make_model()
    train(api, model["id"])
    first = launcher.jobs[-1]
    # The first run is superseded: it failed, the user trained again.
    callback(api, first, "fail", {"reason": "x"})
    train(api, model["id"])
    second = launcher.jobs[-1]
    reply = callback(api, first, "complete", COMPLETE)
    assert reply.status == 409
    assert callback(api, second, "complete", COMPLETE).status == 200


def test_callback_bodies_are_validated(api, launcher, make_model):
    model = make_model()
    train(api, model["id"])
    job = launcher.jobs[-1]
    assert callback(api, job, "complete", {"performance_metrics": {}}).json["field"] == "model_artifact_path"
    assert callback(api, job, "complete", {**COMPLETE, "model_artifact_path": "/tmp/x"}).status == 400
    headers = {"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id}
    raw = b'{"model_artifact_path": "s3://artifacts/k/", "performance_metrics": {"accuracy": 1e999}}'
    reply = api.request("POST", f"/api/ml-models/{model['id']}/training/complete", raw=raw, headers=headers)
    assert reply.status == 400 and reply.json["field"] == "performance_metrics.accuracy"
    assert callback(api, job, "fail", {}).json["field"] == "reason"
    assert api.get(f"/api/ml-models/{model['id']}").json["status"] == "training"


def test_put_during_training_is_not_lost_by_the_callback(api, launcher, make_model):
    model = make_model()
    train(api, model["id"])
    assert api.put(f"/api/ml-models/{model['id']}", {"name": "renamed", "metadata": {"k": 1}}).status == 200
    callback(api, launcher.jobs[-1], "complete", COMPLETE)
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after["name"] == "renamed" and after["metadata"] == {"k": 1} and after["status"] == "trained"


def test_runs_are_listed_newest_first_and_paginated(api, launcher, make_model):
    model = make_model()
    for _ in range(3):
        train(api, model["id"])
        callback(api, launcher.jobs[-1], "fail", {"reason": "x"})
    page = api.get(f"/api/ml-models/{model['id']}/runs?limit=2").json
    assert [r["version"] for r in page["runs"]] == [3, 2] and page["next_token"]
    rest = api.get(f"/api/ml-models/{model['id']}/runs?limit=2&next_token={page['next_token']}").json
    assert [r["version"] for r in rest["runs"]] == [1]
    assert api.get(f"/api/ml-models/{model['id']}/runs/run-nope").status == 404
    assert api.get("/api/ml-models/model-nope/runs").status == 404


def test_a_run_past_its_deadline_is_failed_on_read(api, launcher, make_model):
    """A trainer that died without reporting does not leave the model in training."""
    clock = SettableClock()
    install_graph(launcher=launcher, clock=clock)
    model = make_model()
    train(api, model["id"])
    job = launcher.jobs[-1]
    assert api.get(f"/api/ml-models/{model['id']}").json["status"] == "training"  # not overdue yet
    clock.now = "2999-01-01T00:00:00.000000Z"
    after = api.get(f"/api/ml-models/{model['id']}").json
    clock.now = None
    assert after["status"] == "failed" and "deadline" in after["metadata"]["failure_reason"]
    run = api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}").json
    assert run["status"] == "failed" and "deadline" in run["failure_reason"]
    # The trainer's late report is refused as stale.
    assert callback(api, job, "complete", COMPLETE).status == 409


def test_without_a_configured_callback_url_the_stage_url_is_used(api, launcher, make_model):
    from dataclasses import replace

    from chalicelib.api.training import stage_url
    from chalicelib.config import Settings

    stage = stage_url({"domainName": "abc123.execute-api.us-east-1.amazonaws.com", "stage": "api"})
    assert stage == "https://abc123.execute-api.us-east-1.amazonaws.com/api"
    assert stage_url({}) == ""
    graph = install_graph(replace(Settings.from_environ(), callback_base_url=""), launcher=launcher)
    graph.training.start({"model_id": make_model()["id"]}, stage)
    assert launcher.jobs[-1].environment["TRAINER_CALLBACK_URL"] == stage


def test_a_start_that_cannot_be_written_leaves_the_model_as_it_was(api, launcher, make_model):
    """The model's entry into training and the run record are one DynamoDB transaction."""
    from dataclasses import replace

    from chalicelib import wiring
    from chalicelib.adapters.dynamo import TrainingStartTransaction
    from chalicelib.config import Settings
    from chalicelib.errors import UpstreamUnavailable

    class RefusedTransaction(TrainingStartTransaction):
        def begin(self, model, run):
            raise UpstreamUnavailable("the database is temporarily unavailable; retry shortly")

    settings = Settings.from_environ()
    repos = replace(wiring.dynamo_repositories(settings), training_starts=RefusedTransaction())
    install_graph(settings, launcher=launcher, repos=repos)
    model = make_model()
    reply = train(api, model["id"])
    assert reply.status == 503 and "Traceback" not in reply.raw.decode()
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after == model
    assert api.get(f"/api/ml-models/{model['id']}/runs").json["runs"] == [] and launcher.jobs == []


def test_the_start_transaction_writes_both_or_neither(api, launcher, make_model):
    from chalicelib.adapters.dynamo import ModelRepository, TrainingRunRepository, TrainingStartTransaction
    from chalicelib.errors import Conflict, StaleRecord
    from chalicelib.records import TrainingRun

    model = ModelRepository().get(make_model()["id"])
    run = TrainingRun(run_id="run-tx-1", model_id=model.id, project_id=model.project_id, version=1,
                      model_type=model.type, status="queued", callback_token_hash="x", created_at=model.created_at,
                      updated_at=model.created_at)
    entered = TrainingStartTransaction().begin(model.but(status="training", training_task_id=run.run_id,
                                                         runs_started=1), run)
    assert entered.lock_version == model.lock_version + 1
    assert ModelRepository().get(model.id).status == "training" and TrainingRunRepository().get(run.run_id)
    # A stale model refuses the whole transaction: no second run appears.
    with pytest.raises(StaleRecord):
        TrainingStartTransaction().begin(model.but(status="training"), run.but(run_id="run-tx-2"))
    assert TrainingRunRepository().find("run-tx-2") is None
    # An existing run id refuses it too: the model is not changed.
    with pytest.raises(Conflict):
        TrainingStartTransaction().begin(entered.but(name="renamed"), run)
    assert ModelRepository().get(model.id).name == model.name


def test_a_model_left_in_training_without_a_run_is_failed_on_read(api, launcher, make_model):
    """If even putting the model back failed, reads notice the missing run after a grace period."""
    from chalicelib.adapters.dynamo import ModelRepository

    clock = SettableClock()
    install_graph(launcher=launcher, clock=clock)
    model = make_model()
    repo = ModelRepository()
    repo.replace(repo.get(model["id"]).but(status="training", training_task_id="run-never-recorded"))
    assert api.get(f"/api/ml-models/{model['id']}").json["status"] == "training"  # within the grace period
    clock.now = "2999-01-01T00:00:00.000000Z"
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after["status"] == "failed" and after["training_task_id"] == ""
    assert "never recorded" in after["metadata"]["failure_reason"]


def test_complete_refuses_another_location_and_a_missing_or_foreign_manifest(api, launcher, make_model):
    """The server decides where a run's artifact lives; a valid run token cannot point the model elsewhere."""
    victim = make_model()
    train(api, victim["id"])
    victim_job = launcher.jobs[-1]
    assert callback(api, victim_job, "complete", COMPLETE).status == 200
    victim_path = api.get(f"/api/ml-models/{victim['id']}").json["model_artifact_path"]

    model = make_model()
    train(api, model["id"])
    job = launcher.jobs[-1]
    before = api.get(f"/api/ml-models/{model['id']}").json
    for path in (victim_path, f"s3://{ARTIFACTS}/models/{model['id']}/v7/", f"s3://{DATA_BUCKET}/x/",
                 "s3://attacker-bucket/models/m/v1/"):
        reply = callback(api, job, "complete", {**COMPLETE, "model_artifact_path": path})
        assert reply.status == 400 and reply.json["field"] == "model_artifact_path", (path, reply)
        assert reply.json["expected"] == f"s3://{ARTIFACTS}/models/{model['id']}/v1/"
    # Its own location but no manifest yet: not complete.
    reply = callback(api, job, "complete", {**COMPLETE, "model_artifact_path": reply.json["expected"]})
    assert reply.status == 409 and "manifest" in reply.json["message"]
    # A manifest there that names another run is refused too.
    foreign = own_artifact(api, job, manifest={"run_id": victim_job.run_id, "model_id": model["id"], "version": 1})
    assert callback(api, job, "complete", {**COMPLETE, "model_artifact_path": foreign}).status == 409
    assert api.get(f"/api/ml-models/{model['id']}").json == before
    assert api.get(f"/api/ml-models/{victim['id']}").json["model_artifact_path"] == victim_path
    # With its own manifest the run completes.
    assert callback(api, job, "complete", COMPLETE).status == 200
