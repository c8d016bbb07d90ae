"""Predictions on the real local stack: each of the four types trained on a CSV, then batch predictions
of a 100,000-row Parquet input (a local trainer process running `trainer.batch_predict`) and online
predictions (the predictor's local twin), every answer checked against `trainer.loader` on the same rows."""
from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from stack_samples import wait_for

pytestmark = pytest.mark.integration

MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
FAST_CONFIG = {"train_test_split": 0.8, "random_seed": 7, "max_iterations": 20, "early_stopping_rounds": 5,
               "batch_size": 64, "learning_rate": 0.01}
BATCH_ROWS = 100_000


def readings(rows: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    temperature = rng.normal(20, 5, rows).round(3)
    humidity = rng.uniform(10, 90, rows).round(3)
    site = rng.choice(["north", "south", "east"], rows)
    label = np.where(temperature + (site == "north") * 4 + rng.normal(0, 2, rows) > 21, "warm", "cold")
    return pd.DataFrame({"temperature": temperature, "humidity": humidity, "site": site, "label": label})


@pytest.fixture(scope="module")
def world(stack):
    """A project with training data (CSV), a 100,000-row Parquet input with ids, an input missing a feature,
    and a model of each type trained on the CSV."""
    from trainer.ontology import ontology_from_frame

    http, s3 = stack.http, stack.s3()
    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    bucket = stack.env["DATA_BUCKETS"].split(",")[0]
    train = readings(1500, seed=1)
    s3.put_object(Bucket=bucket, Key=f"{project_id}/train/part-0.csv", Body=train.to_csv(index=False).encode())
    batch = readings(BATCH_ROWS, seed=2).drop(columns=["label"])
    batch.insert(0, "reading_id", [f"r-{i:06d}" for i in range(BATCH_ROWS)])
    buffer = io.BytesIO()
    batch.to_parquet(buffer, index=False)
    s3.put_object(Bucket=bucket, Key=f"{project_id}/batch/part-0.parquet", Body=buffer.getvalue())
    s3.put_object(Bucket=bucket, Key=f"{project_id}/broken/part-0.csv",
                  Body=batch.head(50).drop(columns=["humidity"]).to_csv(index=False).encode())
    status, onto = http.post("/api/ontologies", {"project_id": project_id, "name": "Readings",
                                                 "content": ontology_from_frame(train, "label", "Reading")})
    assert status == 201, onto
    storage = {}
    for name, fmt in (("train", "csv"), ("batch", "parquet"), ("broken", "csv")):
        status, config = http.post("/api/storage-configs", {
            "project_id": project_id, "name": name, "ontology_id": onto["id"],
            "uri": f"s3://{bucket}/{project_id}/{name}/", "format": fmt})
        assert status == 201, config
        storage[name] = config["id"]
    models = {}
    for model_type in MODEL_TYPES:
        status, model = http.post("/api/ml-models", {
            "project_id": project_id, "ontology_id": onto["id"], "name": model_type, "type": model_type,
            "training_config": FAST_CONFIG})
        assert status == 201, model
        status, accepted = http.post("/api/ml-models/train", {"model_id": model["id"],
                                                              "storage_ids": [storage["train"]]})
        assert status == 202, accepted
        models[model_type] = model["id"]
    trained = {t: http.wait_for_status(m, ("trained", "failed")) for t, m in models.items()}
    for model_type, model in trained.items():
        assert model["status"] == "trained", (model_type, model["metadata"])
    return {"project_id": project_id, "ontology": onto["id"], "storage": storage, "models": trained,
            "batch": batch, "bucket": bucket}


def output_frame(s3, output_uri: str):
    import pandas as pd

    bucket, _, prefix = output_uri[5:].partition("/")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
                  if o["Key"].rsplit("/", 1)[-1].startswith("part-"))
    assert keys, f"no part files under {output_uri}"
    frames = [pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys]
    return pd.concat(frames, ignore_index=True)


def test_batch_predictions_equal_the_loader_on_every_row(stack, world):
    import hashlib
    import json

    from trainer.loader import load_model

    http, s3 = stack.http, stack.s3()
    jobs = {}
    for model_type, model in world["models"].items():
        status, job = http.post(f"/api/ml-models/{model['id']}/predictions", {
            "storage_ids": [world["storage"]["batch"]], "passthrough_columns": ["reading_id"]})
        assert status == 202, job
        assert job["status"] == "queued" and job["output_format"] == "parquet"
        jobs[model_type] = job
    batch = world["batch"]
    features = batch.drop(columns=["reading_id"])
    for model_type, job in jobs.items():
        model = world["models"][model_type]
        url = f"/api/ml-models/{model['id']}/predictions/{job['id']}"
        done = wait_for(lambda u=url: (j := http.get(u)[1])["status"] in ("succeeded", "failed") and j, timeout=300)
        assert done["status"] == "succeeded", (model_type, done["failure_reason"])
        assert done["rows"] == BATCH_ROWS and done["error_rows"] == 0
        out = output_frame(s3, job["output_uri"])
        assert list(out["reading_id"]) == list(batch["reading_id"]), model_type
        loaded = load_model(model["model_artifact_path"], s3)
        assert list(out["prediction"]) == list(loaded.predict(features)), model_type
        proba = np.asarray(loaded.predict_proba(features))
        for index, label in enumerate(loaded.classes):
            assert np.array_equal(out[f"probability_{label}"].to_numpy(), proba[:, index]), (model_type, label)
        assert out["error"].isna().all()
        # The _SUCCESS document names every part with its rows and sha256.
        bucket, _, prefix = job["output_uri"][5:].partition("/")
        success = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "_SUCCESS")["Body"].read())
        assert success["rows"] == BATCH_ROWS and sum(p["rows"] for p in success["parts"]) == BATCH_ROWS
        for part in success["parts"]:
            body = s3.get_object(Bucket=bucket, Key=prefix + part["name"])["Body"].read()
            assert hashlib.sha256(body).hexdigest() == part["sha256"]


def test_an_input_missing_a_feature_fails_naming_it_and_writes_nothing(stack, world):
    http, s3 = stack.http, stack.s3()
    model = world["models"]["decision_tree"]
    status, job = http.post(f"/api/ml-models/{model['id']}/predictions", {"storage_ids": [world["storage"]["broken"]]})
    assert status == 202, job
    url = f"/api/ml-models/{model['id']}/predictions/{job['id']}"
    done = wait_for(lambda: (j := http.get(url)[1])["status"] in ("succeeded", "failed") and j, timeout=300)
    assert done["status"] == "failed" and "humidity" in done["failure_reason"], done
    bucket, _, prefix = job["output_uri"][5:].partition("/")
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) == 0


def test_online_predictions_equal_the_loader(stack, world):
    from trainer.loader import load_model

    http, s3 = stack.http, stack.s3()
    rows = readings(1000, seed=3).drop(columns=["label"])
    instances = rows.to_dict(orient="records")
    for model_type, model in world["models"].items():
        loaded = load_model(model["model_artifact_path"], s3)
        for chosen in (instances[:1], instances):
            status, answer = http.post(f"/api/ml-models/{model['id']}/predict", {"instances": chosen})
            assert status == 200, (model_type, answer)
            assert answer["model_id"] == model["id"] and answer["version"] == model["version"]
            assert answer["predictions"] == list(loaded.predict(chosen)), model_type
            assert answer["classes"] == loaded.classes
            assert answer["probabilities"] == loaded.predict_proba(chosen), model_type


def test_online_predictions_refuse_bad_input(stack, world):
    http = stack.http
    model = world["models"]["random_forest"]
    url = f"/api/ml-models/{model['id']}/predict"
    good = {"temperature": 21.5, "humidity": 40.0, "site": "north"}
    status, body = http.post(url, {"instances": [{"temperature": 21.5, "site": "north"}]})
    assert status == 400 and "humidity" in body["message"] and body["field"] == "instances[0].humidity", body
    status, body = http.post(url, {"instances": [good, {**good, "temperature": "hot"}]})
    assert status == 400 and body["field"] == "instances[1].temperature", body
    status, body = http.post(url, {"instances": [good] * 1001})
    assert status == 400 and body["field"] == "instances", body
    status, untrained = http.post("/api/ml-models", {"project_id": world["project_id"],
                                                     "ontology_id": world["ontology"], "name": "new",
                                                     "type": "decision_tree"})
    assert status == 201
    status, body = http.post(f"/api/ml-models/{untrained['id']}/predict", {"instances": [good]})
    assert status == 409, body
    stranger = stack.as_caller({"proj-someone-else": "editor"})
    status, body = stranger.post(url, {"instances": [good]})
    assert status == 404, body
    viewer = stack.as_caller({world["project_id"]: "viewer"})
    assert viewer.post(url, {"instances": [good]})[0] == 200
    assert viewer.post(f"/api/ml-models/{model['id']}/predictions",
                       {"storage_ids": [world["storage"]["batch"]]})[0] == 403
