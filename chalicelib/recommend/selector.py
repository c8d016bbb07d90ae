"""The learned model-type selector: meta-features of an analysis -> P(type is within 0.01 of the best).

Shipped as data (`selector.json`, written by `bench/recommend_select.py`) and evaluated here in pure
Python: no numpy, no scikit-learn, nothing but arithmetic on the analysis the route already made.

For a task (classification or regression) and each model type, the selector holds one model over the
meta-features (`meta_features`) and a monotone calibration fitted on leave-datasets-out predictions:

* `LogisticModel`: a logistic regression on the standardised meta-features, then a piecewise-linear map
  through points of a Platt scaling;
* `BoostedModel`: shallow gradient-boosted trees (exported from scikit-learn as plain JSON), whose sum is
  the log-odds of a hit or the type's predicted regret, then an exact Platt line on that sum.

Its output is the calibrated probability that the type's test score, trained by our trainer with a user's
defaults, is within `TOLERANCE` (0.01 accuracy or R²) of the best of the four types. The route's
`score` is that probability ×100 for the recommended type, `all_scores` the same for every type.

Without probes (no sample, no usable target or too few rows) the selector answers the corpus's base
rates: how often each type was within 0.01 of the best over every task of that kind (`priors`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
TASKS = ("classification", "regression")
TOLERANCE = 0.01
SELECTOR_FILE = Path(__file__).resolve().parent / "selector.json"


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _log10(value: float | None, floor: float = 1.0) -> float:
    return math.log10(max(float(value or 0.0), floor))


def meta_features(task: str, data: dict[str, Any], probes: dict[str, Any]) -> dict[str, float]:
    """The selector's inputs, from the route's analysis (data profile and probe scores) of one task.

    Probe scores are clipped to [-1, 1] (an R² can be any negative number). Classification adds the
    class balance and each probe's lift over always answering the majority class."""
    linear = _clip(float(probes["linear"]), -1.0, 1.0)
    tree = _clip(float(probes["tree"]), -1.0, 1.0)
    rows = data.get("estimated_rows") or probes.get("rows") or 1
    features = max(int(data.get("feature_count") or 0), 1)
    dims = max(int(probes.get("encoded_dims") or 0), 1)
    out = {
        "linear": linear,
        "tree": tree,
        "gap": tree - linear,
        "best_probe": max(linear, tree),
        "log_rows": _log10(rows, 10.0),
        "log_features": _log10(features),
        "log_rows_per_dim": _log10(rows / dims, 0.1),
        "numeric_share": float(data.get("numeric_share") or 0.0),
        "missing_share": float(data.get("missing_share") or 0.0),
        "high_cardinality": min(len(data.get("high_cardinality_features") or ()), 5) / 5,
        "log_max_cardinality": _log10(1 + (data.get("max_cardinality") or 0)),
        "features_used_share": (probes.get("features_used") or 0) / max(probes.get("features_total") or 1, 1),
        "probe_rows_share": min(1.0, (probes.get("rows") or 0) / max(rows, 1)),
    }
    out["log_rows_x_gap"] = out["log_rows"] * out["gap"]
    out["log_rows_x_linear"] = out["log_rows"] * linear
    if task == "classification":
        balance = (data.get("target") or {}).get("class_balance") or {}
        majority = float(balance.get("majority_share") or 0.0)
        out.update({
            "log_classes": _log10(balance.get("classes") or 2),
            "majority_share": majority,
            "minority_share": float(balance.get("minority_share") or 0.0),
            "linear_lift": linear - majority,
            "tree_lift": tree - majority,
        })
    else:
        summary = (data.get("target") or {}).get("summary") or {}
        spread = (summary.get("max", 0.0) or 0.0) - (summary.get("min", 0.0) or 0.0)
        out["target_skew"] = _clip(((summary.get("mean", 0.0) or 0.0) - (summary.get("min", 0.0) or 0.0))
                                   / spread, 0.0, 1.0) if spread > 0 else 0.5
        out["integer_target"] = 1.0 if (data.get("target") or {}).get("kind") == "integer" else 0.0
    return out


@dataclass(frozen=True)
class LogisticModel:
    """One type's logistic model and calibration map."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    calibration: tuple[tuple[float, float], ...]  # (raw probability, calibrated), raw ascending

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LogisticModel:
        return cls(tuple(raw["mean"]), tuple(raw["scale"]), tuple(raw["coef"]), float(raw["intercept"]),
                   tuple((float(a), float(b)) for a, b in raw.get("calibration", ())))

    def raw_probability(self, values: list[float]) -> float:
        z = self.intercept + sum(c * (v - m) / s for c, v, m, s in
                                 zip(self.coef, values, self.mean, self.scale, strict=True))
        return 1.0 / (1.0 + math.exp(-_clip(z, -40.0, 40.0)))

    def probability(self, values: list[float]) -> float:
        return calibrate(self.raw_probability(values), self.calibration)


Tree = tuple[int, float, "Tree | float", "Tree | float"]  # (feature index, threshold, left, right); a leaf is a value


def _tree(raw: list | float) -> Tree | float:
    if isinstance(raw, list):
        feature, threshold, left, right = raw
        return int(feature), float(threshold), _tree(left), _tree(right)
    return float(raw)


@dataclass(frozen=True)
class BoostedModel:
    """One type's gradient-boosted trees and Platt line: P(hit) = sigmoid(a * margin + b), the margin being the
    baseline plus one leaf value per tree (the log-odds of a hit, or the predicted regret: `output`)."""

    output: str  # "log_odds" or "regret"
    baseline: float
    trees: tuple[Tree | float, ...]
    platt: tuple[float, float]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BoostedModel:
        a, b = raw["platt"]
        return cls(str(raw["output"]), float(raw["baseline"]), tuple(_tree(t) for t in raw["trees"]),
                   (float(a), float(b)))

    def margin(self, values: list[float]) -> float:
        """Summed in scikit-learn's order (baseline, then tree by tree), so the sum is the same to the bit. A
        value goes left when <= the threshold, as there."""
        total = self.baseline
        for node in self.trees:
            while isinstance(node, tuple):
                feature, threshold, left, right = node
                node = left if values[feature] <= threshold else right
            total += node
        return total

    def probability(self, values: list[float]) -> float:
        a, b = self.platt
        return 1.0 / (1.0 + math.exp(-_clip(a * self.margin(values) + b, -40.0, 40.0)))


TypeModel = LogisticModel | BoostedModel


def type_model(raw: dict[str, Any]) -> TypeModel:
    """A type's model from selector.json: `kind` "boosted", or a logistic model (no `kind`)."""
    return BoostedModel.from_dict(raw) if raw.get("kind") == "boosted" else LogisticModel.from_dict(raw)


def calibrate(p: float, points: tuple[tuple[float, float], ...]) -> float:
    """Piecewise-linear interpolation through the calibration points (flat beyond the ends)."""
    if not points:
        return p
    if p <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if p <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (p - x0) / (x1 - x0)
    return points[-1][1]


@dataclass(frozen=True)
class Selector:
    features: dict[str, tuple[str, ...]]  # per task: the meta-feature names, in model order
    models: dict[str, dict[str, TypeModel]]  # task -> type -> model
    priors: dict[str, dict[str, float]]  # task (and "unknown") -> type -> P(hit) base rate
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Selector:
        return cls(
            features={task: tuple(names) for task, names in raw["features"].items()},
            models={task: {t: type_model(m) for t, m in by_type.items()}
                    for task, by_type in raw["models"].items()},
            priors={task: {t: float(p) for t, p in by_type.items()} for task, by_type in raw["priors"].items()},
            raw=raw,
        )

    def probabilities(self, task: str, data: dict[str, Any], probes: dict[str, Any]) -> dict[str, float]:
        """P(hit) per type for a task with probe scores."""
        values = meta_features(task, data, probes)
        ordered = [values[name] for name in self.features[task]]
        return {t: self.models[task][t].probability(ordered) for t in MODEL_TYPES}

    def prior(self, task: str) -> dict[str, float]:
        return dict(self.priors.get(task) or self.priors["unknown"])


@lru_cache(maxsize=1)
def load_selector() -> Selector:
    return Selector.from_dict(json.loads(SELECTOR_FILE.read_text()))
