"""Versions and rollback through the whole app: train v1 and v2, fail v3, list, promote, restore, delete."""
from __future__ import annotations

import boto3
import pytest
from runs import ARTIFACTS, own_artifact

from chalicelib.adapters.launcher import TrainingJob


def train(api, launcher, model_id: str) -> TrainingJob:
    reply = api.post("/api/ml-models/train", {"model_id": model_id})
    assert reply.status == 202, reply
    return launcher.jobs[-1]


def headers(job: TrainingJob) -> dict[str, str]:
    return {"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id}


def succeed(api, launcher, model_id: str, score: float) -> TrainingJob:
    job = train(api, launcher, model_id)
    body = {"model_artifact_path": own_artifact(api, job), "performance_metrics": {"accuracy": score},
            "training_metrics": {"epochs": int(score * 10)}}
    reply = api.post(f"/api/ml-models/{model_id}/training/complete", body, headers=headers(job))
    assert reply.status == 200, reply
    return job


def fail(api, launcher, model_id: str) -> TrainingJob:
    job = train(api, launcher, model_id)
    reply = api.post(f"/api/ml-models/{model_id}/training/fail", {"reason": "out of memory"}, headers=headers(job))
    assert reply.status == 200, reply
    return job


@pytest.fixture
def trained_twice(api, launcher, make_model):
    """A model with v1 and v2 trained and a failed v3."""
    model = make_model()
    jobs = [succeed(api, launcher, model["id"], 0.7), succeed(api, launcher, model["id"], 0.9)]
    jobs.append(fail(api, launcher, model["id"]))
    return model["id"], jobs


def test_versions_lists_the_trained_runs_newest_first(api, trained_twice):
    model_id, (v1, v2, _) = trained_twice
    reply = api.get(f"/api/ml-models/{model_id}/versions")
    assert reply.status == 200, reply
    body = reply.json
    assert [(v["version"], v["run_id"], v["current"]) for v in body["versions"]] == [
        (2, v2.run_id, True), (1, v1.run_id, False)]
    assert body["current_version"] == 2 and body["next_token"] is None
    newest = body["versions"][0]
    assert newest["model_artifact_path"] == f"s3://{ARTIFACTS}/models/{model_id}/v2/"
    assert newest["performance_metrics"] == {"accuracy": 0.9} and newest["training_metrics"] == {"epochs": 9}
    assert newest["trained_at"] and newest["storage_ids"] == []
    assert newest["data"]["manifest"] == f"s3://{ARTIFACTS}/models/{model_id}/v2/manifest.json"
    # One version a page: the token leads to the next (the failed v3 is skipped).
    page = api.get(f"/api/ml-models/{model_id}/versions?limit=1").json
    assert [v["version"] for v in page["versions"]] == [2]
    rest = api.get(f"/api/ml-models/{model_id}/versions?limit=1&next_token={page['next_token']}").json
    assert [v["version"] for v in rest["versions"]] == [1]


def test_a_failed_retrain_leaves_the_current_version(api, trained_twice):
    model_id, _ = trained_twice
    model = api.get(f"/api/ml-models/{model_id}").json
    assert model["status"] == "failed"
    assert model["version"] == 2 and model["model_artifact_path"] == f"s3://{ARTIFACTS}/models/{model_id}/v2/"
    assert model["performance_metrics"] == {"accuracy": 0.9}


def test_promote_makes_an_older_version_current(api, trained_twice):
    model_id, (v1, _, _) = trained_twice
    v1_trained_at = api.get(f"/api/ml-models/{model_id}/versions").json["versions"][1]["trained_at"]
    reply = api.post(f"/api/ml-models/{model_id}/versions/1/promote")
    assert reply.status == 200, reply
    model = reply.json
    assert model["status"] == "trained" and model["version"] == 1
    assert model["model_artifact_path"] == f"s3://{ARTIFACTS}/models/{model_id}/v1/"
    assert model["performance_metrics"] == {"accuracy": 0.7} and model["training_metrics"] == {"epochs": 7}
    assert model["trained_at"] == v1_trained_at
    assert api.get(f"/api/ml-models/{model_id}").json == model
    listed = api.get(f"/api/ml-models/{model_id}/versions").json
    assert listed["current_version"] == 1 and [v["current"] for v in listed["versions"]] == [False, True]
    # Promoting the current version again changes nothing.
    assert api.post(f"/api/ml-models/{model_id}/versions/1/promote").json["version"] == 1


@pytest.mark.parametrize("version", ["3", "4", "0", "x", "99999999999"])
def test_promote_of_a_version_that_is_not_trained_is_404(api, trained_twice, version):
    model_id, _ = trained_twice
    reply = api.post(f"/api/ml-models/{model_id}/versions/{version}/promote")
    assert reply.status == 404 and reply.json["field"] == "version", reply
    assert api.get(f"/api/ml-models/{model_id}").json["version"] == 2


def test_promote_while_training_is_409(api, launcher, trained_twice):
    model_id, _ = trained_twice
    train(api, launcher, model_id)
    reply = api.post(f"/api/ml-models/{model_id}/versions/1/promote")
    assert reply.status == 409 and reply.json["current_status"] == "training", reply
    assert api.get(f"/api/ml-models/{model_id}").json["version"] == 2


def test_put_trained_restores_a_failed_model_with_a_version(api, trained_twice):
    model_id, _ = trained_twice
    reply = api.put(f"/api/ml-models/{model_id}", {"status": "trained"})
    assert reply.status == 200, reply
    assert reply.json["status"] == "trained" and reply.json["version"] == 2


def test_put_trained_on_a_failed_model_without_a_version_is_409(api, launcher, make_model):
    model = make_model()
    fail(api, launcher, model["id"])
    reply = api.put(f"/api/ml-models/{model['id']}", {"status": "trained"})
    assert reply.status == 409, reply
    assert reply.json["current_status"] == "failed" and "trained" not in reply.json["allowed_statuses"]
    assert api.get(f"/api/ml-models/{model['id']}/versions").json == {
        "versions": [], "current_version": None, "next_token": None}


def test_delete_removes_runs_artifacts_and_run_specs(api, trained_twice):
    model_id, jobs = trained_twice
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=ARTIFACTS, Key=f"models/{model_id}/v1/model.joblib", Body=b"weights")
    neighbour = f"models/{model_id}0/v1/manifest.json"  # another model whose id starts with this one's
    s3.put_object(Bucket=ARTIFACTS, Key=neighbour, Body=b"{}")

    def keys(prefix: str) -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=prefix).get("Contents", [])]

    assert keys(f"runs/{model_id}/") and keys(f"models/{model_id}/")
    assert api.delete(f"/api/ml-models/{model_id}").status == 204
    assert api.get(f"/api/ml-models/{model_id}").status == 404
    assert keys(f"models/{model_id}/") == [] and keys(f"runs/{model_id}/") == []
    assert keys(neighbour) == [neighbour]
    from chalicelib.wiring import services

    runs = services().repos.training_runs
    assert all(runs.find(job.run_id) is None for job in jobs)


def test_a_version_lists_the_objects_it_was_trained_on(api, launcher, make_model):
    """Data lineage: the objects the run read (uri, ETag, size, rows), from its manifest, on the version."""
    model = make_model()
    job = train(api, launcher, model["id"])
    objects = [{"uri": f"s3://ml-models-data-local/p/readings/part-{i}.csv", "etag": f"etag-{i}", "size": 10 + i,
                "rows": 5, "format": "csv"} for i in range(3)]
    path = own_artifact(api, job, manifest={"run_id": job.run_id, "model_id": job.model_id, "version": 1,
                                            "data": {"synthetic": False, "rows": 15, "objects": objects}})
    reply = api.post(f"/api/ml-models/{model['id']}/training/complete", {"model_artifact_path": path},
                     headers=headers(job))
    assert reply.status == 200, reply
    version = api.get(f"/api/ml-models/{model['id']}/versions").json["versions"][0]
    assert version["data"]["objects"] == [{k: o[k] for k in ("uri", "etag", "size", "rows")} for o in objects]
    assert version["data"]["objects_total"] == 3 and version["data"]["rows"] == 15
    assert version["data"]["synthetic"] is False
