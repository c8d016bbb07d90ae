"""Batch prediction jobs and online predictions through the whole app (the launcher and predictor faked).

The trainer side (the job itself, the predictor handler) is tested in tests/trainer/; the whole path on
the real local stack in tests/integration/test_predictions_e2e.py.
"""
from __future__ import annotations

import json

import boto3
import pytest
from conftest import SettableClock, install_graph
from fakes.collaborators import CannedPredictor
from fakes.launcher import FakeLauncher
from runs import ARTIFACTS, own_artifact

from chalicelib.adapters.launcher import JobState
from chalicelib.errors import InvalidInput

DATA = "ml-models-data-local"


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def predictor() -> CannedPredictor:
    return CannedPredictor()


@pytest.fixture
def launcher(api, clock, predictor) -> FakeLauncher:
    fake = FakeLauncher()
    install_graph(launcher=fake, clock=clock, predictor=predictor)
    return fake


def callback_headers(job) -> dict[str, str]:
    return {"Authorization": f"Bearer {job.callback_token}"}


def train(api, launcher, model_id: str) -> None:
    assert api.post("/api/ml-models/train", {"model_id": model_id}).status == 202
    job = launcher.jobs[-1]
    reply = api.post(f"/api/ml-models/{model_id}/training/complete",
                     {"model_artifact_path": own_artifact(api, job)},
                     headers={**callback_headers(job), "X-Training-Run-Id": job.run_id})
    assert reply.status == 200, reply


@pytest.fixture
def storage(api, project, ontology) -> dict:
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=DATA, Key=f"{project}/batch/a.csv", Body=b"id,temperature,humidity\n1,20,30\n")
    reply = api.post("/api/storage-configs", {"project_id": project, "name": "batch", "ontology_id": ontology["id"],
                                              "uri": f"s3://{DATA}/{project}/batch/", "format": "csv"})
    assert reply.status == 201, reply
    return reply.json


@pytest.fixture
def trained(api, launcher, make_model) -> dict:
    model = make_model(type="decision_tree")
    train(api, launcher, model["id"])
    return api.get(f"/api/ml-models/{model['id']}").json


def start(api, launcher, model_id: str, storage_id: str, **extra):
    reply = api.post(f"/api/ml-models/{model_id}/predictions", {"storage_ids": [storage_id], **extra})
    assert reply.status == 202, reply
    return reply.json, launcher.jobs[-1]


def write_success(prediction: dict, **override) -> None:
    bucket, _, prefix = prediction["output_uri"][5:].partition("/")
    body = {"format_version": 1, "prediction_id": prediction["id"], "model_id": prediction["model_id"],
            "version": prediction["version"], "rows": 3, "error_rows": 1, "columns": ["id", "prediction", "error"],
            "parts": [{"name": "part-00000.csv", "rows": 3, "size": 10, "sha256": "0" * 64}], **override}
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=bucket, Key=prefix + "_SUCCESS",
                                                           Body=json.dumps(body).encode())


def reconcile(api) -> dict:
    client = api.client
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                            resources=["arn:aws:events:us-east-1:123456789012:rule/reconcile"])
    return client.lambda_.invoke("reconcile_runs", event).payload


# ---- batch: accepting a job ---------------------------------------------------------------------


def test_a_prediction_job_is_accepted_and_submitted_with_a_server_decided_output(api, launcher, trained, storage):
    prediction, job = start(api, launcher, trained["id"], storage["id"], passthrough_columns=["id"])
    assert prediction["status"] == "queued" and prediction["version"] == trained["version"] == 1
    assert prediction["model_id"] == trained["id"] and prediction["created_at"]
    assert prediction["output_uri"] == f"s3://{ARTIFACTS}/predictions/{trained['id']}/{prediction['id']}/"
    assert prediction["output_format"] == "csv"  # the input's
    assert job.kind == "predict" and job.entry_point == "trainer.batch_predict" and job.run_id == prediction["id"]
    spec_uri = job.environment["TRAINER_SPEC_URI"]
    bucket, _, key = spec_uri[5:].partition("/")
    spec = json.loads(boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert spec == {
        "kind": "prediction", "prediction_id": prediction["id"], "model_id": trained["id"], "version": 1,
        "artifact_uri": trained["model_artifact_path"],
        "inputs": [{"id": storage["id"], "uri": storage["uri"], "format": "csv"}],
        "passthrough_columns": ["id"], "output_format": "csv", "output_uri": prediction["output_uri"]}
    assert api.get(f"/api/ml-models/{trained['id']}/predictions/{prediction['id']}").json["status"] == "queued"


def test_bad_requests_get_a_clear_error(api, launcher, trained, storage, make_model):
    model_id = trained["id"]
    cases = [
        ({}, 400, "storage_ids"),
        ({"storage_ids": []}, 400, "storage_ids"),
        ({"storage_ids": [storage["id"]], "output_format": "xlsx"}, 400, "output_format"),
        ({"storage_ids": [storage["id"]], "passthrough_columns": ["prediction"]}, 400, "passthrough_columns"),
        ({"storage_ids": [storage["id"]], "passthrough_columns": ["probability_yes"]}, 400, "passthrough_columns"),
        ({"storage_ids": [storage["id"]], "passthrough_columns": ["id", "id"]}, 400, "passthrough_columns"),
        ({"storage_ids": [storage["id"]], "version": 0}, 400, "version"),
        ({"storage_ids": [storage["id"]], "version": 7}, 404, "version"),
        ({"storage_ids": ["sc-unknown"]}, 400, "storage_ids"),
        ({"storage_ids": [storage["id"]], "bucket": "mine"}, 400, None),
    ]
    for body, status, field in cases:
        reply = api.post(f"/api/ml-models/{model_id}/predictions", body)
        assert reply.status == status, (body, reply)
        if field:
            assert reply.json["field"] == field, (body, reply)
    untrained = make_model(type="decision_tree")
    reply = api.post(f"/api/ml-models/{untrained['id']}/predictions", {"storage_ids": [storage["id"]]})
    assert reply.status == 409 and "no trained version" in reply.json["message"]
    assert launcher.jobs[-1].kind == "train"  # nothing was submitted for any of them
    assert api.get(f"/api/ml-models/{model_id}/predictions").json["predictions"] == []


def test_a_refused_submission_fails_the_job_and_answers_503(api, launcher, trained, storage):
    launcher.refuse_with = ConnectionError("cluster unreachable")
    reply = api.post(f"/api/ml-models/{trained['id']}/predictions", {"storage_ids": [storage["id"]]})
    assert reply.status == 503, reply
    [failed] = api.get(f"/api/ml-models/{trained['id']}/predictions").json["predictions"]
    assert failed["status"] == "failed" and failed["failure_reason"].startswith("submission failed")


def test_at_most_three_active_jobs_per_model(api, launcher, trained, storage):
    for _ in range(3):
        start(api, launcher, trained["id"], storage["id"])
    reply = api.post(f"/api/ml-models/{trained['id']}/predictions", {"storage_ids": [storage["id"]]})
    assert reply.status == 429 and reply.json["limit"] == 3, reply


# ---- batch: the job's callbacks -----------------------------------------------------------------


def test_progress_then_complete_from_the_success_document(api, launcher, trained, storage):
    prediction, job = start(api, launcher, trained["id"], storage["id"])
    base = f"/api/ml-models/{trained['id']}/predictions/{prediction['id']}"
    assert api.post(base + "/progress", {"rows": 0}, headers=callback_headers(job)).status == 200
    assert api.get(base).json["status"] == "running"
    early = api.post(base + "/complete", {"rows": 3}, headers=callback_headers(job))
    assert early.status == 409 and "_SUCCESS" in early.json["message"]
    write_success(prediction, prediction_id="pred-someone-else")
    assert api.post(base + "/complete", {}, headers=callback_headers(job)).status == 409
    write_success(prediction)
    assert api.post(base + "/complete", {"rows": 3, "error_rows": 1}, headers=callback_headers(job)).status == 200
    done = api.get(base).json
    assert done["status"] == "succeeded" and done["rows"] == 3 and done["error_rows"] == 1 and done["parts"] == 1
    assert [h["status"] for h in done["status_history"]] == ["queued", "running", "succeeded"]
    # Repeated: accepted without change; anything else after the end: 409.
    assert api.post(base + "/complete", {}, headers=callback_headers(job)).status == 200
    assert api.post(base + "/fail", {"reason": "late"}, headers=callback_headers(job)).status == 409


def test_callbacks_need_the_jobs_own_token(api, launcher, trained, storage):
    prediction, job = start(api, launcher, trained["id"], storage["id"])
    other, other_job = start(api, launcher, trained["id"], storage["id"])
    base = f"/api/ml-models/{trained['id']}/predictions/{prediction['id']}"
    for headers in ({}, {"Authorization": "Bearer nope"}, callback_headers(other_job)):
        assert api.post(base + "/fail", {"reason": "x"}, headers=headers).status == 401
    # The token of a job is not valid for the same job id under another model.
    assert api.post(f"/api/ml-models/m-other/predictions/{prediction['id']}/fail", {"reason": "x"},
                    headers=callback_headers(job)).status == 401
    reply = api.post(base + "/fail", {"reason": "input unreadable"}, headers=callback_headers(job))
    assert reply.status == 200
    failed = api.get(base).json
    assert failed["status"] == "failed" and failed["failure_reason"] == "input unreadable"


def test_cancel_stops_the_job_and_refuses_its_reports(api, launcher, trained, storage):
    prediction, job = start(api, launcher, trained["id"], storage["id"])
    base = f"/api/ml-models/{trained['id']}/predictions/{prediction['id']}"
    reply = api.post(base + "/cancel")
    assert reply.status == 202 and reply.json["status"] == "cancelled", reply
    assert launcher.cancels[-1][0] == job.name
    write_success(prediction)
    assert api.post(base + "/complete", {}, headers=callback_headers(job)).status == 409
    assert api.get(base).json["status"] == "cancelled"
    again = api.post(base + "/cancel")
    assert again.status == 409 and again.json["current_status"] == "cancelled"


def test_list_is_newest_first_and_a_job_belongs_to_its_model(api, launcher, trained, storage, make_model):
    first, _ = start(api, launcher, trained["id"], storage["id"])
    second, _ = start(api, launcher, trained["id"], storage["id"])
    listed = api.get(f"/api/ml-models/{trained['id']}/predictions").json
    assert [p["id"] for p in listed["predictions"]] == [second["id"], first["id"]]
    page = api.get(f"/api/ml-models/{trained['id']}/predictions?limit=1").json
    rest = api.get(f"/api/ml-models/{trained['id']}/predictions?limit=1&next_token={page['next_token']}").json
    assert [p["id"] for p in page["predictions"] + rest["predictions"]] == [second["id"], first["id"]]
    other = make_model(type="decision_tree")
    assert api.get(f"/api/ml-models/{other['id']}/predictions/{first['id']}").status == 404


# ---- batch: the reconciler ----------------------------------------------------------------------


def test_the_reconciler_settles_prediction_jobs_from_the_cluster(api, launcher, clock, trained, storage):
    succeeded, succeeded_job = start(api, launcher, trained["id"], storage["id"])
    failed, failed_job = start(api, launcher, trained["id"], storage["id"])
    silent, silent_job = start(api, launcher, trained["id"], storage["id"])
    write_success(succeeded)
    launcher.states[succeeded_job.name] = JobState("succeeded")
    launcher.states[failed_job.name] = JobState("failed", "OOMKilled", "container trainer was killed")
    launcher.states[silent_job.name] = JobState("succeeded")
    summary = reconcile(api)
    assert summary["succeeded"] == 1 and summary["failed"] == 2, summary
    get = lambda p: api.get(f"/api/ml-models/{trained['id']}/predictions/{p['id']}").json  # noqa: E731
    assert get(succeeded)["status"] == "succeeded" and get(succeeded)["rows"] == 3
    assert get(failed)["status"] == "failed" and "OOMKilled" in get(failed)["failure_reason"]
    assert get(silent)["status"] == "failed" and "without reporting" in get(silent)["failure_reason"]
    assert reconcile(api).get("failed", 0) == 0  # ended jobs are not swept again


# ---- deleting the model ---------------------------------------------------------------------------


def test_deleting_the_model_removes_its_prediction_jobs_and_outputs(api, launcher, trained, storage):
    prediction, _ = start(api, launcher, trained["id"], storage["id"])
    write_success(prediction)
    running, running_job = start(api, launcher, trained["id"], storage["id"])
    s3 = boto3.client("s3", region_name="us-east-1")
    assert api.delete(f"/api/ml-models/{trained['id']}").status == 204
    # Both jobs were still active (the first wrote its _SUCCESS but never reported): both were told to stop.
    assert {name for name, _ in launcher.cancels} == {running_job.name, launcher.jobs[-2].name}
    assert s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=f"predictions/{trained['id']}/")["KeyCount"] == 0
    from chalicelib import wiring

    assert wiring.services().repos.model_jobs.find(prediction["id"]) is None


# ---- online -------------------------------------------------------------------------------------


def test_predict_answers_with_the_predictors_result(api, launcher, predictor, trained):
    reply = api.post(f"/api/ml-models/{trained['id']}/predict", {"instances": [{"temperature": 21.5}] * 2})
    assert reply.status == 200, reply
    assert reply.json == {"model_id": trained["id"], "version": 1, "predictions": ["yes", "yes"],
                          "probabilities": [[0.25, 0.75], [0.25, 0.75]], "classes": ["no", "yes"]}
    assert predictor.payloads[-1]["artifact_uri"] == trained["model_artifact_path"]
    assert predictor.payloads[-1]["version"] == 1


def test_predict_refuses_what_it_cannot_answer(api, launcher, predictor, trained, make_model):
    url = f"/api/ml-models/{trained['id']}/predict"
    for body, status in [({}, 400), ({"instances": []}, 400), ({"instances": [1]}, 400),
                         ({"instances": [{}] * 1001}, 400), ({"instances": [{}], "version": 9}, 404),
                         ({"instances": [{}], "extra": 1}, 400)]:
        assert api.post(url, body).status == status, body
    untrained = make_model(type="decision_tree")
    assert api.post(f"/api/ml-models/{untrained['id']}/predict", {"instances": [{}]}).status == 409
    predictor.raise_with = InvalidInput("instances[0] is missing feature 'humidity'", field="instances[0].humidity")
    reply = api.post(url, {"instances": [{"temperature": 1}]})
    assert reply.status == 400 and reply.json["field"] == "instances[0].humidity"


def test_predict_without_a_configured_predictor_is_503(api, trained, launcher):
    install_graph(launcher=launcher)  # no PREDICTOR_FUNCTION in the test stage
    reply = api.post(f"/api/ml-models/{trained['id']}/predict", {"instances": [{"temperature": 1}]})
    assert reply.status == 503 and "PREDICTOR_FUNCTION" in reply.json["message"]


def test_a_job_gets_credentials_for_its_own_output_only_and_can_refresh_them(api, trained, storage, clock):
    from fakes.collaborators import FakeCredentialIssuer

    issuer, fake = FakeCredentialIssuer(), FakeLauncher()
    install_graph(launcher=fake, clock=clock, predictor=CannedPredictor(), credentials=issuer)
    prediction, job = start(api, fake, trained["id"], storage["id"])
    assert job.secrets["AWS_ACCESS_KEY_ID"] == "ASIA0001"
    path = f"/api/ml-models/{trained['id']}/predictions/{prediction['id']}/credentials"
    assert job.environment["TRAINER_CREDENTIALS_PATH"] == path
    session, policy = issuer.requests[-1]
    assert session == prediction["id"]
    text = json.dumps(policy)
    writes = [s for s in policy["Statement"] if "s3:PutObject" in s["Action"]]
    assert [w["Resource"] for w in writes] == [
        f"arn:aws:s3:::{ARTIFACTS}/predictions/{trained['id']}/{prediction['id']}/*"]
    assert f"models/{trained['id']}/v1/*" in text  # reads its version's artifact
    refreshed = api.post(path, {}, headers=callback_headers(job))
    assert refreshed.status == 200 and refreshed.json["access_key_id"] == "ASIA0002", refreshed
    assert api.post(path, {}, headers={"Authorization": "Bearer forged"}).status == 401
    assert api.post(f"/api/ml-models/{trained['id']}/predictions/{prediction['id']}/cancel").status == 202
    assert api.post(path, {}, headers=callback_headers(job)).status == 409
