"""Training end to end on the local stack: API → local launcher → trainer process → S3 → callbacks."""
from __future__ import annotations

import io
import threading
import uuid

import pytest

pytestmark = pytest.mark.integration

MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
FAST_CONFIG = {"train_test_split": 0.8, "random_seed": 42, "max_iterations": 30, "early_stopping_rounds": 5,
               "batch_size": 64, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def dataset(stack):
    """The breast cancer data (ships with scikit-learn) as a CSV in S3, with its ontology and storage config."""
    from sklearn.datasets import load_breast_cancer

    from trainer.ontology import ontology_from_frame

    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame = frame.rename(columns={"target": "label"})
    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    s3 = stack.s3()
    bucket = stack.env["DATA_BUCKETS"].split(",")[0]  # the project's data lives under <bucket>/<project_id>/
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    s3.put_object(Bucket=bucket, Key=f"{project_id}/cancer/part-0.csv", Body=buffer.getvalue().encode())
    http = stack.http
    status, onto = http.post("/api/ontologies", {"project_id": project_id, "name": "Cancer",
                                                 "content": ontology_from_frame(frame, "label", "Tumour")})
    assert status == 201, onto
    status, storage = http.post("/api/storage-configs", {"project_id": project_id, "name": "cancer",
                                                         "ontology_id": onto["id"],
                                                         "uri": f"s3://{bucket}/{project_id}/cancer/",
                                                         "format": "csv"})
    assert status == 201, storage
    return {"project_id": project_id, "ontology": onto, "storage": storage, "frame": frame}


def _create_model(http, dataset, model_type, **config):
    status, model = http.post("/api/ml-models", {
        "project_id": dataset["project_id"], "ontology_id": dataset["ontology"]["id"],
        "name": f"{model_type} e2e", "type": model_type, "training_config": {**FAST_CONFIG, **config}})
    assert status == 201, model
    return model


def _train_all(http, dataset, storage_ids):
    models = {}
    for model_type in MODEL_TYPES:
        model = _create_model(http, dataset, model_type)
        status, accepted = http.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": storage_ids})
        assert status == 202, accepted
        assert accepted["status"] == "training" and accepted["training_task_id"]
        models[model_type] = accepted
    return {t: http.wait_for_status(m["id"], ("trained", "failed")) for t, m in models.items()}


def test_each_type_trains_on_s3_data_and_the_artifact_predicts(stack, dataset):
    from trainer.loader import load_model

    trained = _train_all(stack.http, dataset, [dataset["storage"]["id"]])
    features = dataset["frame"].drop(columns=["label"]).head(20)
    for model_type, model in trained.items():
        assert model["status"] == "trained", (model_type, model["metadata"])
        assert model["version"] == 1 and model["trained_at"]
        assert model["model_artifact_path"].startswith(f"s3://{stack.env['ARTIFACT_BUCKET']}/models/{model['id']}/v1")
        assert model["performance_metrics"]["accuracy"] > 0.85, (model_type, model["performance_metrics"])
        loaded = load_model(model["model_artifact_path"], s3_client=stack.s3())
        predictions = loaded.predict(features)
        assert len(predictions) == 20 and set(predictions) <= {0, 1}
        status, runs = stack.http.get(f"/api/ml-models/{model['id']}/runs")
        assert runs["runs"][0]["status"] == "succeeded" and runs["runs"][0]["version"] == 1


def test_each_type_trains_on_synthetic_data(stack, dataset):
    trained = _train_all(stack.http, dataset, [])
    for model_type, model in trained.items():
        assert model["status"] == "trained", (model_type, model["metadata"])
        assert model["performance_metrics"], model_type


def test_a_failing_run_ends_failed_with_the_reason(stack, dataset):
    http = stack.http
    model = _create_model(http, dataset, "decision_tree", target_column="no_such_column")
    status, _ = http.post("/api/ml-models/train", {"model_id": model["id"],
                                                   "storage_ids": [dataset["storage"]["id"]]})
    assert status == 202
    failed = http.wait_for_status(model["id"], ("failed", "trained"))
    assert failed["status"] == "failed"
    assert "no_such_column" in failed["metadata"]["failure_reason"]
    _, runs = http.get(f"/api/ml-models/{model['id']}/runs")
    assert runs["runs"][0]["status"] == "failed" and "no_such_column" in runs["runs"][0]["failure_reason"]


def test_twenty_concurrent_train_requests_start_one_run(stack, dataset):
    http = stack.http
    model = _create_model(http, dataset, "decision_tree")
    codes: list[int] = []
    barrier = threading.Barrier(20)

    def train() -> None:
        barrier.wait()
        codes.append(http.post("/api/ml-models/train", {"model_id": model["id"]})[0])

    threads = [threading.Thread(target=train) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] + [409] * 19
    _, runs = http.get(f"/api/ml-models/{model['id']}/runs")
    assert len(runs["runs"]) == 1
    http.wait_for_status(model["id"], ("trained", "failed"))
