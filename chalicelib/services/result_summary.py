"""What a trained model's record keeps of its metrics: at most RECORD_METRICS_BYTES, the rest in the manifest.

The trainer already sends a summary (trainer/metrics.py `record_metrics`: a thinned learning curve,
the confusion matrix and per-class metrics of at most RECORD_CLASSES classes). The server does not rely
on it: metrics over the cap are summarised the same way here, but only fields the run's manifest holds
whole may be cut, so nothing is lost; a field that would have to be cut and is not in the manifest is
refused with 413 naming it. The record says what was cut in performance_metrics.truncation.
"""
from __future__ import annotations

import json
import math
from typing import Any

from chalicelib.errors import PayloadTooLarge

RECORD_CLASSES = 50
RECORD_METRICS_BYTES = 100_000
RECORD_CURVE_POINTS = 200
SECTIONS = ("performance_metrics", "training_metrics")


def json_bytes(value: Any) -> int:
    return len(json.dumps(value))


def for_record(performance: dict[str, Any], training: dict[str, Any], manifest: Any, whole_in: str, *,
               max_bytes: int = RECORD_METRICS_BYTES,
               max_classes: int = RECORD_CLASSES) -> tuple[dict[str, Any], dict[str, Any]]:
    """(performance_metrics, training_metrics) within `max_bytes` of JSON together, cut only where the
    manifest (`whole_in`) holds the whole field."""
    if json_bytes({"performance_metrics": performance, "training_metrics": training}) <= max_bytes:
        return performance, training
    metrics = {"performance_metrics": dict(performance), "training_metrics": dict(training)}
    whole = {name: (manifest.get(name) if isinstance(manifest, dict) else None) or {} for name in SECTIONS}
    previous = metrics["performance_metrics"].pop("truncation", None)
    note: dict[str, Any] = previous if isinstance(previous, dict) else {}
    cut: list[str] = list(note.get("fields") or [])
    omitted: list[str] = list(note.get("omitted") or [])

    def may_cut(section: str, key: str) -> None:
        if not isinstance(whole[section], dict) or key not in whole[section]:
            size = json_bytes(metrics[section][key])
            raise PayloadTooLarge(
                f"{section}.{key} ({size} bytes) does not fit the model record (at most {max_bytes} bytes of "
                f"metrics) and the run's manifest {whole_in} does not hold it whole; put it in the manifest, "
                "the record then keeps a summary", field=f"{section}.{key}", limit_bytes=max_bytes)

    curve = metrics["training_metrics"].get("learning_curve")
    if isinstance(curve, list) and len(curve) > RECORD_CURVE_POINTS:
        may_cut("training_metrics", "learning_curve")
        metrics["training_metrics"]["learning_curve"] = _thin(curve, RECORD_CURVE_POINTS)
        metrics["training_metrics"].setdefault("learning_curve_points", len(curve))
    classes = _cap_classes(metrics["performance_metrics"], max_classes, may_cut)
    if classes:
        cut += [f"performance_metrics.{k}" for k in ("confusion_matrix", "confusion_matrix_labels", "per_class")
                if k in metrics["performance_metrics"] and f"performance_metrics.{k}" not in cut]
        note.update(classes)

    def size() -> int:
        return json_bytes({**metrics, "truncation": {**note, "fields": cut, "omitted": omitted, "whole_in": whole_in}})

    while size() > max_bytes:
        fields = [(json_bytes(value), section, key) for section in SECTIONS
                  for key, value in metrics[section].items() if isinstance(value, list | dict)]
        if not fields:
            biggest = max(((json_bytes(v), s, k) for s in SECTIONS for k, v in metrics[s].items()),
                          default=(0, "performance_metrics", ""))
            raise PayloadTooLarge(f"the metrics do not fit the model record (at most {max_bytes} bytes)",
                                  field=f"{biggest[1]}.{biggest[2]}", limit_bytes=max_bytes)
        _, section, key = max(fields)
        may_cut(section, key)
        metrics[section].pop(key)
        omitted.append(f"{section}.{key}")
    metrics["performance_metrics"]["truncated"] = True
    metrics["performance_metrics"]["truncation"] = {**note, "fields": cut, "omitted": omitted, "whole_in": whole_in}
    return metrics["performance_metrics"], metrics["training_metrics"]


def _cap_classes(performance: dict[str, Any], max_classes: int, may_cut) -> dict[str, Any]:
    """Keep the confusion matrix and per_class of the `max_classes` classes with the most test rows."""
    labels, matrix = performance.get("confusion_matrix_labels"), performance.get("confusion_matrix")
    if not (isinstance(labels, list) and isinstance(matrix, list) and len(labels) > max_classes
            and len(matrix) == len(labels) and all(isinstance(row, list) and len(row) == len(labels)
                                                   and all(_count(c) for c in row) for row in matrix)):
        return {}
    may_cut("performance_metrics", "confusion_matrix")
    support = [sum(row) for row in matrix]
    kept = sorted(sorted(range(len(labels)), key=lambda i: (-support[i], i))[:max_classes])
    performance["confusion_matrix"] = [[matrix[i][j] for j in kept] for i in kept]
    performance["confusion_matrix_labels"] = [labels[i] for i in kept]
    per_class = performance.get("per_class")
    if isinstance(per_class, list) and len(per_class) == len(labels):
        may_cut("performance_metrics", "per_class")
        performance["per_class"] = [per_class[i] for i in kept]
    return {"classes": len(labels), "kept_classes": len(kept),
            "kept": f"the {len(kept)} classes with the most test rows; confusion_matrix rows and columns of "
                    "those classes only"}


def _count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _thin(curve: list, limit: int) -> list:
    """`limit` evenly spaced points, the first and last included (the trainer also keeps the best)."""
    step = (len(curve) - 1) / (limit - 1)
    return [curve[round(i * step)] for i in range(limit)]
