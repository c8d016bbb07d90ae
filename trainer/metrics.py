"""Test-set metrics, losses and permutation importance; every number returned is finite."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

PROBA_EPS = 1e-7


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of integer labels `y` under `proba` (rows sum to 1), clipped to stay finite."""
    return log_loss_sum(y, proba) / len(y)


def log_loss_sum(y: np.ndarray, proba: np.ndarray) -> float:
    """`log_loss` times the row count: what batches add up."""
    picked = proba[np.arange(len(y)), y.astype(int)]
    return float(-np.sum(np.log(np.clip(picked, PROBA_EPS, 1.0))))


def mean_squared_error(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean((np.asarray(y, dtype="float64") - np.asarray(predicted, dtype="float64")) ** 2))


def classification_metrics(y: np.ndarray, predicted: np.ndarray, proba: np.ndarray, classes: list) -> dict:
    """accuracy, precision/recall/f1_score (binary on classes[1], else macro), confusion matrix, ROC AUC if binary."""
    positive_scores = proba[:, 1] if len(classes) == 2 else None
    return label_metrics(y, predicted, classes, log_loss(y, proba), positive_scores)


def label_metrics(y: np.ndarray, predicted: np.ndarray, classes: list, mean_log_loss: float,
                  positive_scores: np.ndarray | None) -> dict:
    """`classification_metrics` from labels, the log loss and (binary) the positive class's probabilities:
    what a caller reading rows in batches can keep without holding every row's probabilities."""
    from sklearn import metrics as skm

    labels = list(range(len(classes)))
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    kwargs = {"labels": labels, "average": average, "zero_division": 0}
    if binary:
        kwargs["pos_label"] = 1
    out = {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "precision": float(skm.precision_score(y, predicted, **kwargs)),
        "recall": float(skm.recall_score(y, predicted, **kwargs)),
        "f1_score": float(skm.f1_score(y, predicted, **kwargs)),
        "averaging": average,
        "confusion_matrix": skm.confusion_matrix(y, predicted, labels=labels).tolist(),
        "confusion_matrix_labels": list(classes),
        "per_class": per_class_metrics(y, predicted, classes),
        "log_loss": float(mean_log_loss),
        "test_rows": len(y),
    }
    if binary:
        out["positive_class"] = classes[1]
        if len(np.unique(y)) == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y, positive_scores))
    return out


def per_class_metrics(y: np.ndarray, predicted: np.ndarray, classes: list) -> list[dict]:
    """precision, recall, f1_score and support (test rows) of each class, in `classes` order."""
    from sklearn import metrics as skm

    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, predicted, labels=list(range(len(classes))), zero_division=0
    )
    return [
        {"class": label, "precision": float(p), "recall": float(r), "f1_score": float(f), "support": int(n)}
        for label, p, r, f, n in zip(classes, precision, recall, f1, support, strict=True)
    ]


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict:
    y = np.asarray(y, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    mse = mean_squared_error(y, predicted)
    out = {"rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(y - predicted))), "test_rows": len(y)}
    total = float(np.sum((y - y.mean()) ** 2))
    if total > 0:
        out["r2"] = 1.0 - float(np.sum((y - predicted) ** 2)) / total
    return out


# Permutation importance predicts its shuffled copies together, in calls of at most this many cells (rows x
# columns): one call's fixed cost (the preprocessing pipeline, the model's setup) is paid once per call, not
# once per copy, and the memory of a call stays bounded however wide the table.
IMPORTANCE_CALL_CELLS = 4_000_000


def permutation_importance(
    frame: pd.DataFrame,
    columns: list[str],
    predict: Callable[[pd.DataFrame], np.ndarray],
    loss: Callable[[np.ndarray], float],
    seed: int,
    repeats: int = 2,
) -> dict[str, float]:
    """Mean loss increase when each input column is shuffled, clipped at 0 and normalised to sum 1.

    `predict(frame)` gives one output row per input row (and nothing else depends on the other rows), `loss` the
    loss of `frame`'s rows' outputs. The copies (the frame itself, then each column shuffled `repeats` times,
    in that order from one seeded generator) are predicted concatenated, `IMPORTANCE_CALL_CELLS` at a time."""
    rng = np.random.default_rng(seed)
    rows = len(frame)
    variants: list[tuple[str | None, np.ndarray | None]] = [(None, None)]
    for column in columns:
        variants += [(column, rng.permutation(rows)) for _ in range(repeats)]
    per_call = max(1, IMPORTANCE_CALL_CELLS // max(1, rows * max(1, frame.shape[1])))
    losses: list[float] = []
    for start in range(0, len(variants), per_call):
        copies = []
        for column, order in variants[start:start + per_call]:
            copy = frame.copy()
            if column is not None:
                copy[column] = frame[column].to_numpy()[order]
            copies.append(copy)
        outputs = predict(pd.concat(copies, ignore_index=True) if len(copies) > 1 else copies[0])
        losses += [loss(outputs[i * rows:(i + 1) * rows]) for i in range(len(copies))]
    baseline, raw = losses[0], {}
    for index, column in enumerate(columns):
        increases = losses[1 + index * repeats:1 + (index + 1) * repeats]
        raw[column] = max(0.0, float(np.mean([value - baseline for value in increases])))
    total = sum(raw.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in raw.items()}


def thin_curve(curve: list[dict], limit: int = 200) -> list[dict]:
    """At most `limit` evenly spaced points of a learning curve, always keeping the first, best and last."""
    if len(curve) <= limit:
        return list(curve)
    best = min(range(len(curve)), key=lambda i: curve[i].get("validation_loss", math.inf))
    keep = set(np.linspace(0, len(curve) - 1, limit - 1).round().astype(int).tolist()) | {best}
    return [curve[i] for i in sorted(keep)]


def finite_only(value, path: str = "", dropped: list[str] | None = None):
    """`value` with every non-finite float removed (their paths appended to `dropped`); numpy scalars -> Python."""
    dropped = [] if dropped is None else dropped
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            clean = finite_only(item, f"{path}.{key}" if path else str(key), dropped)
            if clean is not _DROP:
                out[key] = clean
        return out
    if isinstance(value, list | tuple):
        return [finite_only(item, f"{path}[{i}]", dropped) for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        dropped.append(path)
        return _DROP if path and not path.endswith("]") else None
    return value


_DROP = object()

# What the complete callback (and so the model record) carries: every class's row of per_class and of the
# confusion matrix up to RECORD_CLASSES classes, else the RECORD_CLASSES classes with the most test rows;
# and at most RECORD_METRICS_BYTES of JSON for both metrics objects together. The manifest keeps them whole.
# The API holds records to the same numbers (chalicelib/services/result_summary.py).
RECORD_CLASSES = 50
RECORD_METRICS_BYTES = 100_000


def record_metrics(performance: dict, training: dict, whole_in: str,
                   max_classes: int = RECORD_CLASSES, max_bytes: int = RECORD_METRICS_BYTES) -> tuple[dict, dict]:
    """(performance_metrics, training_metrics) small enough for the model record.

    The learning curve is thinned (see `thin_curve`); with more than `max_classes` classes the
    confusion matrix and per_class keep the `max_classes` classes with the most test rows (ties: class
    order) in class order; anything still over `max_bytes` is left out, largest first. What was cut is
    listed in performance_metrics.truncation, with `whole_in` (the manifest) where the whole is.
    """
    import json

    performance, training = dict(performance), dict(training)
    curve = training.get("learning_curve") or []
    if isinstance(curve, list) and curve:
        training["learning_curve"] = thin_curve(curve)
        if len(training["learning_curve"]) < len(curve):
            training["learning_curve_points"] = len(curve)
    note: dict = {}
    labels = performance.get("confusion_matrix_labels")
    matrix = performance.get("confusion_matrix")
    if isinstance(labels, list) and isinstance(matrix, list) and len(labels) > max_classes:
        support = [sum(row) for row in matrix]
        kept = sorted(sorted(range(len(labels)), key=lambda i: (-support[i], i))[:max_classes])
        performance["confusion_matrix"] = [[matrix[i][j] for j in kept] for i in kept]
        performance["confusion_matrix_labels"] = [labels[i] for i in kept]
        if isinstance(performance.get("per_class"), list) and len(performance["per_class"]) == len(labels):
            performance["per_class"] = [performance["per_class"][i] for i in kept]
        cut = [k for k in ("confusion_matrix", "confusion_matrix_labels", "per_class") if k in performance]
        note = {"fields": [f"performance_metrics.{k}" for k in cut], "classes": len(labels),
                "kept_classes": len(kept),
                "kept": f"the {len(kept)} classes with the most test rows; confusion_matrix rows and columns "
                        "of those classes only"}
    omitted = []

    def size() -> int:
        return len(json.dumps({"performance_metrics": performance, "training_metrics": training,
                               "truncation": {**note, "omitted": omitted, "whole_in": whole_in}}))

    while size() > max_bytes:
        fields = [("performance_metrics", k, v) for k, v in performance.items() if isinstance(v, list | dict)]
        fields += [("training_metrics", k, v) for k, v in training.items() if isinstance(v, list | dict)]
        if not fields:
            break
        where, key, _ = max(fields, key=lambda f: len(json.dumps(f[2])))
        (performance if where == "performance_metrics" else training).pop(key)
        omitted.append(f"{where}.{key}")
    if note or omitted:
        performance["truncated"] = True
        performance["truncation"] = {**note, "omitted": omitted, "whole_in": whole_in}
    return performance, training
