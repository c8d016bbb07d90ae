"""Large results never break a run: `python -m trainer` on a 1,000-class target.

The complete callback carries a summary small enough for the model record (the confusion
matrix and per-class metrics of the 50 classes with the most test rows, a note saying so and
where the whole is); the manifest keeps the whole 1,000 x 1,000 matrix.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import ARTIFACT_BUCKET, DATA_BUCKET, make_spec, new_ids, put_frame, run_trainer, trainer_env

from trainer.metrics import RECORD_CLASSES, RECORD_METRICS_BYTES, record_metrics
from trainer.ontology import ontology_from_frame

pytestmark = pytest.mark.integration

CLASSES = 1000
ROWS_PER_CLASS = 5


def many_classes(classes: int, rows_per_class: int, seed: int = 0) -> pd.DataFrame:
    """One informative number per row (its class index plus noise) and a string label of `classes` values;
    class c has rows_per_class + (c % 3) rows, so test support differs between classes."""
    rng = np.random.default_rng(seed)
    index = np.concatenate([np.full(rows_per_class + c % 3, c) for c in range(classes)])
    return pd.DataFrame({"reading": index + rng.normal(0, 0.2, len(index)), "noise": rng.normal(size=len(index)),
                         "label": [f"class_{c:04d}" for c in index]})


def test_a_thousand_class_target_trains_and_reports_a_bounded_summary(s3, moto_server, receiver):
    frame = many_classes(CLASSES, ROWS_PER_CLASS)
    put_frame(s3, "many-classes/data.csv", frame, "csv")
    model_id, run_id = new_ids()
    spec = make_spec(model_id, run_id, "decision_tree", ontology_from_frame(frame, "label", "Readings"),
                     [{"id": "st-many", "uri": f"s3://{DATA_BUCKET}/many-classes/", "format": "csv"}],
                     {"train_test_split": 0.8, "random_seed": 3, "hyperparameters": {"max_depth": 8}})

    done = run_trainer(trainer_env(moto_server, receiver, spec), timeout=90)

    assert done.returncode == 0, done.stderr[-3000:]
    (call,) = receiver.delivered("complete")
    assert receiver.calls("fail") == []
    assert len(call["raw"]) <= RECORD_METRICS_BYTES + 1000  # the two metrics objects, plus the artifact path
    performance = call["body"]["performance_metrics"]
    manifest_uri = f"s3://{ARTIFACT_BUCKET}/models/{model_id}/v1/manifest.json"
    assert performance["truncated"] is True
    note = performance["truncation"]
    assert note["classes"] == CLASSES and note["kept_classes"] == RECORD_CLASSES and note["whole_in"] == manifest_uri
    assert set(note["fields"]) == {"performance_metrics.confusion_matrix",
                                   "performance_metrics.confusion_matrix_labels", "performance_metrics.per_class"}
    assert note["omitted"] == []
    labels = performance["confusion_matrix_labels"]
    assert len(labels) == RECORD_CLASSES and labels == sorted(labels)
    assert len(performance["confusion_matrix"]) == RECORD_CLASSES
    assert all(len(row) == RECORD_CLASSES for row in performance["confusion_matrix"])
    assert [c["class"] for c in performance["per_class"]] == labels
    assert 0 < performance["accuracy"] <= 1 and performance["test_rows"] > CLASSES

    manifest = json.loads(s3.get_object(Bucket=ARTIFACT_BUCKET, Key=manifest_uri.split("/", 3)[3])["Body"].read())
    whole = manifest["performance_metrics"]
    assert len(whole["confusion_matrix_labels"]) == CLASSES and len(whole["per_class"]) == CLASSES
    assert len(whole["confusion_matrix"]) == CLASSES and all(len(row) == CLASSES for row in whole["confusion_matrix"])
    assert sum(map(sum, whole["confusion_matrix"])) == whole["test_rows"] == performance["test_rows"]
    assert {k: v for k, v in whole.items() if not k.startswith(("confusion_matrix", "per_class"))} == {
        k: v for k, v in performance.items() if not k.startswith(("confusion_matrix", "per_class", "truncat"))}
    # The summary keeps the classes with the most test rows, each with its own row and column of the whole.
    support = {c["class"]: c["support"] for c in whole["per_class"]}
    assert min(support[label] for label in labels) >= max(s for c, s in support.items() if c not in labels)
    position = {label: i for i, label in enumerate(whole["confusion_matrix_labels"])}
    assert performance["confusion_matrix"] == [[whole["confusion_matrix"][position[a]][position[b]] for b in labels]
                                               for a in labels]


def test_record_metrics_leave_out_what_is_still_too_big_largest_first():
    performance = {"accuracy": 0.5, "feature_importance": {f"column_{i}": 1 / 5000 for i in range(5000)}}
    training = {"epoch": 3, "learning_curve": [{"epoch": i, "training_loss": 1.0, "validation_loss": 1.0 / (i + 1)}
                                               for i in range(1, 1001)]}

    small, curve = record_metrics(performance, training, "s3://b/m/v1/manifest.json", max_bytes=20_000)

    assert small["truncated"] is True and small["truncation"]["omitted"] == ["performance_metrics.feature_importance"]
    assert small["accuracy"] == 0.5 and "feature_importance" not in small
    assert len(curve["learning_curve"]) <= 200 and curve["learning_curve_points"] == 1000
    assert curve["learning_curve"][-1]["epoch"] == 1000  # the best (lowest validation loss) point is kept
    assert len(json.dumps({"performance_metrics": small, "training_metrics": curve})) <= 20_000
    untouched, _ = record_metrics({"accuracy": 1.0, "confusion_matrix": [[1, 0], [0, 1]]}, {}, "s3://b/m")
    assert untouched == {"accuracy": 1.0, "confusion_matrix": [[1, 0], [0, 1]]}
