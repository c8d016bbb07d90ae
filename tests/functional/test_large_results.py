"""Large results never break a run: a complete callback whose metrics would not fit the model's
DynamoDB item ends `trained`, with a summary on the record and the whole in the run's manifest.

The reproduction: a 450-class target's metrics (a 450 x 450 confusion matrix) sent as they are got
500 six times and left the model `failed` with its artifact orphaned. The body limit (1 MiB) bounds
what one callback can carry; the trainer sends a summary anyway (tests/trainer/test_trainer_large_results.py
trains a 1,000-class target), and the server holds the record to RECORD_METRICS_BYTES whatever it is sent.
"""
from __future__ import annotations

import json

import boto3
import pytest
from runs import ARTIFACTS, own_artifact

from chalicelib.services.result_summary import RECORD_CLASSES, RECORD_METRICS_BYTES


def big_metrics(classes: int) -> tuple[dict, dict]:
    """Metrics of a `classes`-class model as the trainer computes them, whole."""
    labels = [f"class_{c:04d}" for c in range(classes)]
    support = [1 + c % 7 for c in range(classes)]  # class c has 1 + c % 7 test rows
    matrix = [[support[i] if i == j else 0 for j in range(classes)] for i in range(classes)]
    matrix[0][1], matrix[0][0] = 1, support[0] - 1
    per_class = [{"class": label, "precision": 1.0, "recall": 1.0, "f1_score": 1.0, "support": n}
                 for label, n in zip(labels, support, strict=True)]
    performance = {"accuracy": 0.99, "precision": 0.98, "recall": 0.97, "f1_score": 0.975, "averaging": "macro",
                   "confusion_matrix": matrix, "confusion_matrix_labels": labels, "per_class": per_class,
                   "log_loss": 0.1, "test_rows": sum(support), "feature_importance": {"temperature": 1.0}}
    training = {"epoch": 1, "training_loss": 0.05, "validation_loss": 0.1, "loss": "log_loss",
                "learning_curve": [{"epoch": 1, "training_loss": 0.05, "validation_loss": 0.1}]}
    return performance, training


def start_run(api, launcher, make_model):
    model = make_model(type="decision_tree", training_config={"train_test_split": 0.8, "random_seed": 1})
    assert api.post("/api/ml-models/train", {"model_id": model["id"]}).status == 202
    return model, launcher.jobs[-1]


def complete(api, job, body):
    headers = {"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id}
    return api.post(f"/api/ml-models/{job.model_id}/training/complete", body, headers=headers)


def manifest_for(api, job, performance, training) -> tuple[str, dict]:
    run = api.get(f"/api/ml-models/{job.model_id}/runs/{job.run_id}").json
    manifest = {"run_id": job.run_id, "model_id": job.model_id, "version": run["version"],
                "performance_metrics": performance, "training_metrics": training}
    return own_artifact(api, job, manifest), manifest


def stored_manifest(artifact: str) -> dict:
    key = artifact.removeprefix(f"s3://{ARTIFACTS}/") + "manifest.json"
    return json.loads(boto3.client("s3", region_name="us-east-1").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())


@pytest.mark.parametrize("classes", [450, 500])
def test_metrics_too_big_for_the_record_end_trained_with_a_summary(api, launcher, make_model, classes):
    model, job = start_run(api, launcher, make_model)
    performance, training = big_metrics(classes)
    artifact, manifest = manifest_for(api, job, performance, training)
    body = {"model_artifact_path": artifact, "performance_metrics": performance, "training_metrics": training}
    assert len(json.dumps(body)) > 5 * RECORD_METRICS_BYTES

    reply = complete(api, job, body)

    assert reply.status == 200, reply
    record = api.get(f"/api/ml-models/{model['id']}").json
    assert record["status"] == "trained" and record["model_artifact_path"] == artifact
    summary = record["performance_metrics"]
    assert len(json.dumps({"performance_metrics": summary, "training_metrics": record["training_metrics"]})) <= (
        RECORD_METRICS_BYTES)
    assert summary["truncated"] is True
    note = summary["truncation"]
    assert note["classes"] == classes and note["kept_classes"] == RECORD_CLASSES
    assert note["whole_in"] == artifact + "manifest.json" and note["omitted"] == []
    # The classes with the most test rows (6 of every 7 classes have fewer than the 50 kept), in class order.
    labels = summary["confusion_matrix_labels"]
    kept = sorted(range(classes), key=lambda c: (-(1 + c % 7), c))[:RECORD_CLASSES]
    assert labels == [f"class_{c:04d}" for c in sorted(kept)]
    assert summary["confusion_matrix"] == [[performance["confusion_matrix"][i][j] for j in sorted(kept)]
                                           for i in sorted(kept)]
    assert [c["class"] for c in summary["per_class"]] == labels
    for key in ("accuracy", "f1_score", "log_loss", "test_rows", "feature_importance"):
        assert summary[key] == performance[key]
    assert record["training_metrics"] == training
    # Nothing lost: the whole is in the manifest the record points at; the run keeps the same summary.
    assert stored_manifest(artifact)["performance_metrics"] == performance == manifest["performance_metrics"]
    run = api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}").json
    assert run["status"] == "succeeded" and run["performance_metrics"] == summary
    assert complete(api, job, body).status == 200  # a repeated callback is still a no-op


def test_a_long_learning_curve_and_a_huge_field_are_cut_when_the_manifest_holds_them(api, launcher, make_model):
    model, job = start_run(api, launcher, make_model)
    performance = {"accuracy": 0.9, "feature_importance": {f"column_{i:05d}": 1 / 20_000 for i in range(20_000)}}
    training = {"epoch": 10, "learning_curve": [{"epoch": i, "training_loss": 0.5, "validation_loss": 0.5}
                                                for i in range(1, 5001)]}
    artifact, _ = manifest_for(api, job, performance, training)

    reply = complete(api, job, {"model_artifact_path": artifact, "performance_metrics": performance,
                                "training_metrics": training})

    assert reply.status == 200, reply
    record = api.get(f"/api/ml-models/{model['id']}").json
    assert record["status"] == "trained"
    assert record["performance_metrics"]["accuracy"] == 0.9 and "feature_importance" not in record[
        "performance_metrics"]
    assert record["performance_metrics"]["truncation"]["omitted"] == ["performance_metrics.feature_importance"]
    curve = record["training_metrics"]["learning_curve"]
    assert len(curve) == 200 and curve[0]["epoch"] == 1 and curve[-1]["epoch"] == 5000
    assert record["training_metrics"]["learning_curve_points"] == 5000
    assert stored_manifest(artifact)["performance_metrics"] == performance


def test_a_field_too_big_for_the_record_and_missing_from_the_manifest_is_413_and_nothing_is_written(
        api, launcher, make_model):
    model, job = start_run(api, launcher, make_model)
    performance, training = big_metrics(450)
    artifact = own_artifact(api, job)  # a manifest naming the run, without the metrics

    reply = complete(api, job, {"model_artifact_path": artifact, "performance_metrics": performance,
                                "training_metrics": training})

    assert reply.status == 413, reply
    assert reply.json["field"] == "performance_metrics.confusion_matrix"
    assert "manifest" in reply.json["message"] and reply.json["limit_bytes"] == RECORD_METRICS_BYTES
    record = api.get(f"/api/ml-models/{model['id']}").json
    assert record["status"] == "training" and record["performance_metrics"] == {}
    assert api.get(f"/api/ml-models/{model['id']}/runs/{job.run_id}").json["status"] == "submitted"

    # The trainer's own summary (small, as trainer/metrics.py record_metrics makes it) is then accepted.
    small = {"accuracy": 0.99, "truncated": True, "truncation": {"classes": 450, "whole_in": artifact}}
    assert complete(api, job, {"model_artifact_path": artifact, "performance_metrics": small,
                               "training_metrics": training}).status == 200
    assert api.get(f"/api/ml-models/{model['id']}").json["performance_metrics"] == small
