"""Integration: `python -m trainer` as a process against moto server S3 and a local callback receiver.

Each of the four model types trains on a classification dataset (breast cancer, two CSV
objects) and a regression dataset (diabetes, Parquet), both bundled with scikit-learn.
"""
from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes
from trainer_helpers import (
    ARTIFACT_BUCKET,
    DATA_BUCKET,
    REPO,
    TOKEN,
    CallbackReceiver,
    log_lines,
    make_spec,
    new_ids,
    put_frame,
    run_many,
    trainer_env,
)

from trainer.loader import load_model
from trainer.ontology import ontology_from_frame
from trainer.pipeline import held_out_split

pytestmark = pytest.mark.integration

MODEL_TYPES = ["decision_tree", "random_forest", "regression", "neural_network"]
CONFIG = {
    "train_test_split": 0.8,
    "random_seed": 7,
    "learning_rate": 0.01,
    "batch_size": 32,
    "max_iterations": 20,
    "early_stopping_rounds": 5,
}


@pytest.fixture(scope="module")
def datasets(s3):
    """name -> (frame as stored, ontology, storage list)."""
    cancer = load_breast_cancer(as_frame=True).frame
    cancer["label"] = np.where(cancer.pop("target") == 1, "benign", "malignant")
    cancer_ttl = ontology_from_frame(cancer, "label", "Tumour")
    half = len(cancer) // 2
    stored = cancer.assign(extra_column="ignored")  # columns outside the ontology are ignored
    put_frame(s3, "cancer/part-0.csv", stored.iloc[:half], "csv")
    put_frame(s3, "cancer/part-1.csv", stored.iloc[half:], "csv")
    s3.put_object(Bucket=DATA_BUCKET, Key="cancer/_SUCCESS", Body=b"")

    diabetes = load_diabetes(as_frame=True).frame
    put_frame(s3, "diabetes/data.parquet", diabetes, "parquet")
    put_frame(s3, "diabetes-jsonl/part-0.jsonl", diabetes.iloc[:200], "jsonl")
    put_frame(s3, "diabetes-jsonl/part-1.jsonl", diabetes.iloc[200:], "jsonl")
    return {
        "classification": (cancer, cancer_ttl, [{"id": "st-1", "uri": f"s3://{DATA_BUCKET}/cancer/", "format": "csv"}]),
        "regression": (
            diabetes,
            ontology_from_frame(diabetes, "target", "Diabetes"),
            [{"id": "st-2", "uri": f"s3://{DATA_BUCKET}/diabetes", "format": "parquet"}],
        ),
    }


# The network's regression data is the same diabetes rows as JSON lines in two objects.
JSONL_STORAGE = [{"id": "st-3", "uri": f"s3://{DATA_BUCKET}/diabetes-jsonl/", "format": "jsonl"}]
SPEC_FROM_S3 = ("regression", "classification")  # this case reads its spec from TRAINER_SPEC_URI


@pytest.fixture(scope="module")
def runs(datasets, s3, moto_server):
    """All eight (model type, task) trainings, run a few at a time; (model type, task) -> outcome."""
    cases, envs = {}, {}
    for model_type in MODEL_TYPES:
        for task, (_, ttl, storage) in datasets.items():
            receiver = CallbackReceiver()
            model_id, run_id = new_ids()
            if (model_type, task) == ("neural_network", "regression"):
                storage = JSONL_STORAGE
            spec = make_spec(model_id, run_id, model_type, ttl, storage, CONFIG)
            cases[(model_type, task)] = (spec, receiver)
            envs[(model_type, task)] = trainer_env(moto_server, receiver, spec)
            if (model_type, task) == SPEC_FROM_S3:
                s3.put_object(Bucket=DATA_BUCKET, Key=f"specs/{run_id}.json", Body=json.dumps(spec).encode())
                del envs[(model_type, task)]["TRAINER_SPEC"]
                envs[(model_type, task)]["TRAINER_SPEC_URI"] = f"s3://{DATA_BUCKET}/specs/{run_id}.json"
    try:
        done = run_many(envs)
        yield {key: (done[key], *cases[key]) for key in cases}
    finally:
        for _, receiver in cases.values():
            receiver.stop()


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_trains_writes_artifact_and_reports(model_type, task, runs, datasets, s3):
    frame = datasets[task][0]
    done, spec, receiver = runs[(model_type, task)]
    model_id, run_id = spec["model_id"], spec["run_id"]

    assert done.returncode == 0, done.stderr[-3000:]
    completes = receiver.calls("complete")
    assert len(completes) == 1 and receiver.calls("fail") == []
    call = completes[0]
    assert call["path"] == f"/api/ml-models/{model_id}/training/complete"
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert call["headers"]["X-Training-Run-Id"] == run_id
    assert call["headers"]["Content-Type"] == "application/json"
    body = call["body"]
    artifact_uri = f"s3://{ARTIFACT_BUCKET}/models/{model_id}/v1/"
    assert set(body) == {"model_artifact_path", "performance_metrics", "training_metrics"}
    assert body["model_artifact_path"] == artifact_uri
    performance, training = body["performance_metrics"], body["training_metrics"]
    if task == "classification":
        assert {"accuracy", "f1_score", "precision", "recall", "roc_auc", "confusion_matrix"} <= set(performance)
        assert performance["accuracy"] > 0.85
    else:
        assert {"rmse", "mae", "r2"} <= set(performance)
    assert set(performance["feature_importance"]) == set(frame.columns) - {"label", "target"}
    assert {"epoch", "training_loss", "validation_loss", "learning_curve"} <= set(training)
    assert all(math.isfinite(p["validation_loss"]) for p in training["learning_curve"])

    progress = receiver.calls("progress")
    assert progress and set(progress[0]["body"]) == {"epoch", "training_loss", "validation_loss"}

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=f"models/{model_id}/v1/")["Contents"]}
    model = load_model(artifact_uri, s3)
    manifest = model.manifest
    assert keys == {f"models/{model_id}/v1/{name}" for name in [*manifest["files"], "manifest.json"]}
    assert manifest["model_type"] == model_type and manifest["task"] == task
    assert manifest["performance_metrics"] == performance and manifest["training_metrics"] == training
    assert manifest["data"]["synthetic"] is False
    objects = manifest["data"]["objects"]
    expected_formats = {"classification": {"csv"}, "regression": {"parquet"}}[task]
    if (model_type, task) == ("neural_network", "regression"):
        expected_formats = {"jsonl"}
    assert {o["format"] for o in objects} == expected_formats
    assert all(o["uri"].startswith(spec["storage"][0]["uri"]) for o in objects)
    assert sum(o["rows"] for o in manifest["data"]["objects"]) == len(frame)
    assert all(o["etag"] and o["size"] > 0 for o in manifest["data"]["objects"])
    assert {"scikit-learn", "torch", "python"} <= set(manifest["libraries"])
    assert manifest["training_config"]["max_iterations"] == 20 and manifest["created_at"]
    if model_type == "neural_network":
        assert set(manifest["files"]) == {"preprocessor.skops", "network.pt", "network.json"}
        assert training["epochs_run"] <= 20

    # The loader, fed the held-out rows rebuilt from the manifest, reproduces the reported metrics.
    test_rows, truth = held_out_split(frame, manifest)
    predicted = model.predict(test_rows.to_dict("records"))
    if task == "classification":
        assert skm.accuracy_score(truth, predicted) == pytest.approx(performance["accuracy"], abs=1e-12)
        assert skm.f1_score(truth, predicted, pos_label=manifest["target"]["classes"][1]) == pytest.approx(
            performance["f1_score"], abs=1e-12
        )
        proba = np.array(model.predict_proba(test_rows))
        positive = np.array(truth) == manifest["target"]["classes"][1]
        assert skm.roc_auc_score(positive, proba[:, 1]) == pytest.approx(performance["roc_auc"], abs=1e-9)
    else:
        assert skm.r2_score(truth, predicted) == pytest.approx(performance["r2"], abs=1e-9)
        assert math.sqrt(skm.mean_squared_error(truth, predicted)) == pytest.approx(performance["rmse"], rel=1e-9)

    logs = log_lines(done.stderr)
    assert logs and all(line["model_id"] == model_id and line["run_id"] == run_id for line in logs)


def test_readme_example_runs():
    """The loader example in trainer/README.md is runnable as written."""
    readme = (REPO / "trainer" / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINER_", "AWS_ENDPOINT"))}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    predictions, summary = done.stdout.strip().splitlines()[-2:]
    assert set(ast.literal_eval(predictions)) <= {True, False} and summary.endswith("True")
