"""The pure part of an evaluation job: batches of rows in, `report.json` out.

`Evaluation.add` takes one batch (the model's input columns, and the target column when the data has
one), predicts it with the loaded version and keeps what the report needs, bounded per row: the bin
counts of every input column and of the predictions against the manifest's reference (`trainer.drift`),
and for labelled rows the true and predicted class index (or value), plus the summed log loss and, for
two classes, the positive class's probability. The metrics are then the training test set's own
(`trainer.metrics.label_metrics` / `regression_metrics`), so they compare key by key with the manifest's
`performance_metrics`.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from trainer import drift
from trainer.metrics import finite_only, label_metrics, log_loss_sum, regression_metrics

FORMAT_VERSION = 1
# The API reads at most this much of report.json (chalicelib/services/model_jobs.py MAX_DONE_BYTES); larger
# reports are written without indentation, and if still too large without their per-class detail.
MAX_REPORT_BYTES = 1024 * 1024
READABLE_REPORT_BYTES = 256 * 1024
PER_CLASS_FIELDS = ("confusion_matrix", "confusion_matrix_labels", "per_class")
NO_REFERENCE = ("the model version's manifest has no reference distributions (it was trained before they were "
                "recorded); psi and prediction_psi cannot be computed")


class Evaluation:
    """What has been seen of the data so far. `model` is a `trainer.loader.LoadedModel`."""

    def __init__(self, model) -> None:
        self.model = model
        manifest = model.manifest
        self.task = manifest["task"]
        self.target = manifest["target"]
        self.kinds = {entry["name"]: entry["type"] for entry in manifest["input_schema"]}
        self.reference = manifest.get("reference")
        self.labels = np.asarray([str(c) for c in model.classes or []], dtype=object)
        self.rows = 0
        self.unknown_labels = 0
        self.loss_sum = 0.0
        self._true: list[np.ndarray] = []
        self._predicted: list[np.ndarray] = []
        self._positive: list[np.ndarray] = []
        self._feature_counts: dict[str, np.ndarray] = {}
        self._prediction_counts: np.ndarray | None = None

    @property
    def labelled_rows(self) -> int:
        return sum(len(part) for part in self._true)

    def add(self, features: pd.DataFrame, target: pd.Series | None) -> None:
        """One batch: its rows' input columns and, if the data has it, the target column (same index)."""
        proba = None
        if self.task == "classification" and target is not None:  # labels and probabilities from one prediction
            predicted, proba = self.model.model.predict_encoded_and_proba(features)
        else:
            predicted = self.model.model.predict_encoded(features)
        predicted = np.asarray(predicted)
        self.rows += len(features)
        self._count_drift(features, predicted)
        if target is not None:
            self._keep_labels(target, predicted, proba)

    def _count_drift(self, features: pd.DataFrame, predicted: np.ndarray) -> None:
        if self.reference is None:
            return
        for name, ref in self.reference["features"].items():
            if name in features.columns:
                counts = drift.bin_counts(ref, features[name], self.kinds.get(name, "string"))
                self._feature_counts[name] = self._feature_counts.get(name, 0) + counts
        if self.task == "classification":
            shown, kind = pd.Series(self.labels[predicted.astype("int64")], dtype=object), "string"
        else:
            shown, kind = pd.Series(predicted, dtype="float64"), "number"
        counts = drift.bin_counts(self.reference["prediction"], shown, kind)
        self._prediction_counts = counts if self._prediction_counts is None else self._prediction_counts + counts

    def _keep_labels(self, target: pd.Series, predicted: np.ndarray, proba: np.ndarray | None) -> None:
        from trainer.features import target_values
        from trainer.ontology import Column

        values = target_values(Column(name=self.target["name"], kind=self.target["type"]),
                               target.reset_index(drop=True), self.task)
        present = values.notna().to_numpy(dtype=bool)
        if self.task == "regression":
            self._true.append(values.to_numpy(dtype="float64")[present])
            self._predicted.append(predicted[present].astype("float64"))
            return
        index = {value: i for i, value in enumerate(self.model.classes)}
        known = values[present].astype(object).map(lambda v: index.get(_native(v)))
        self.unknown_labels += int(known.isna().sum())
        rows = np.flatnonzero(present)[known.notna().to_numpy(dtype=bool)]
        if not len(rows):
            return
        true = known.dropna().to_numpy(dtype="int64")
        proba = np.asarray(proba, dtype="float64")[rows]
        self.loss_sum += log_loss_sum(true, proba)
        self._true.append(true)
        self._predicted.append(predicted[rows].astype("int64"))
        if len(self.model.classes) == 2:
            self._positive.append(proba[:, 1])

    def metrics(self) -> dict:
        """The test-set metrics of the labelled rows ({} without any)."""
        if not self.labelled_rows:
            return {}
        true, predicted = np.concatenate(self._true), np.concatenate(self._predicted)
        if self.task == "regression":
            return regression_metrics(true, predicted)
        positive = np.concatenate(self._positive) if self._positive else None
        return label_metrics(true, predicted, list(self.model.classes), self.loss_sum / len(true), positive)

    def psi(self) -> tuple[dict[str, float | None] | None, float | None]:
        """(PSI per input column, PSI of the predictions); None where there is no reference or no row."""
        if self.reference is None:
            return None, None
        per_feature = {name: (drift.psi_from_counts(ref, self._feature_counts[name])
                              if name in self._feature_counts else None)
                       for name, ref in self.reference["features"].items()}
        prediction = None
        if self._prediction_counts is not None:
            prediction = drift.psi_from_counts(self.reference["prediction"], self._prediction_counts)
        return per_feature, prediction


def report_document(spec, evaluation: Evaluation, inputs: list[dict], now: datetime | None = None) -> dict:
    """`report.json`: the job, the rows seen, metrics next to the training test set's, PSI per column."""
    manifest = evaluation.model.manifest
    notes: list[str] = []
    dropped: list[str] = []
    metrics = finite_only(evaluation.metrics(), dropped=dropped)
    notes += [f"metric {path} was not finite and is omitted" for path in dropped]
    baseline = manifest.get("performance_metrics") or {}
    psi, prediction_psi = evaluation.psi()
    if evaluation.reference is None:
        notes.append(NO_REFERENCE)
    if evaluation.unknown_labels:
        notes.append(f"{evaluation.unknown_labels} row(s) have a target value that is not one of the model's "
                     f"classes; they are left out of labelled_rows and the metrics")
    if evaluation.rows and not metrics and evaluation.target["name"]:
        notes.append(f"no row has a value in the target column {evaluation.target['name']!r}: no metrics")
    return {
        "format_version": FORMAT_VERSION,
        "evaluation_id": spec.evaluation_id,
        "model_id": spec.model_id,
        "version": spec.version,
        "artifact_uri": spec.artifact_uri,
        "rows": evaluation.rows,
        "labelled_rows": evaluation.labelled_rows,
        "metrics": metrics,
        "baseline_metrics": {key: baseline[key] for key in metrics if key in baseline},
        "psi": psi,
        "prediction_psi": prediction_psi,
        "reference_rows": (evaluation.reference or {}).get("rows"),
        "feature_importance": baseline.get("feature_importance"),
        "inputs": inputs,
        "notes": notes,
        "created_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }


def report_body(document: dict) -> bytes:
    """The report as JSON: indented when small, else compact; over MAX_REPORT_BYTES (thousands of classes)
    without the per-class fields of `metrics` and `baseline_metrics`, which a note then names."""
    body = json.dumps(document, indent=2, sort_keys=True, allow_nan=False).encode()
    if len(body) <= READABLE_REPORT_BYTES:
        return body
    body = json.dumps(document, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    if len(body) <= MAX_REPORT_BYTES:
        return body
    cut = {**document, "notes": [*document["notes"], f"{', '.join(PER_CLASS_FIELDS)} are left out of metrics and "
                                                     f"baseline_metrics: the report would exceed {MAX_REPORT_BYTES} "
                                                     "bytes"]}
    for key in ("metrics", "baseline_metrics"):
        cut[key] = {k: v for k, v in document[key].items() if k not in PER_CLASS_FIELDS}
    return json.dumps(cut, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


def _native(value):
    return value.item() if isinstance(value, np.generic) else value
