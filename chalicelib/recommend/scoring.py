"""From the analysis to a score per model type, a choice, and the sentences that explain it.

With a target and a sample, each type's score is its *estimated held-out metric* ×100
(accuracy for classification, R² for regression, clipped to 0..100), predicted from the
two probes (`probes.py`) and the estimated row count with the coefficients of the shipped
rule table `rules.json` (fitted offline by `bench/bench_recommend.py`; it lists the datasets
it was fitted on):

    linear = ridge probe score, tree = tree probe score, gap = max(0, tree - linear)
    regression     = linear
    random_forest  = max(linear, tree) + rf_offset + rf_gain * gap
    neural_network = linear + nn_offset + nn_gain * gap + nn_rows * (log10(rows) - 3)
    decision_tree  = tree + dt_offset

Without a sample or a target the scores are *prior points* (0..100) from the ontology and
whatever is known of the data's shape (`PRIOR` and `prior_scores`), and the reasoning says so.

Ties: scores are compared as reported (rounded to 0.1); equal scores are broken in
`TIE_ORDER`: random_forest, regression, neural_network, decision_tree (the type that wins
most often on tabular benchmarks first, then the cheaper to train).
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
TIE_ORDER = ("random_forest", "regression", "neural_network", "decision_tree")
RULES_FILE = Path(__file__).resolve().parent / "rules.json"
PARAMS = ("rf_offset", "rf_gain", "nn_offset", "nn_gain", "nn_rows", "dt_offset")
PRIOR = {"random_forest": 70.0, "regression": 62.0, "neural_network": 58.0, "decision_tree": 55.0}


@lru_cache(maxsize=1)
def load_rules() -> dict[str, Any]:
    return json.loads(RULES_FILE.read_text())


def estimate(task: str, probes: dict[str, float], rows: int | None, params: dict[str, float]) -> dict[str, float]:
    """Estimated held-out metric per type, from the probe scores (see the module docstring)."""
    linear, tree = probes["linear"], probes["tree"]
    gap = max(0.0, tree - linear)
    size = math.log10(max(rows or 1000, 10)) - 3
    return {
        "regression": linear,
        "random_forest": max(linear, tree) + params["rf_offset"] + params["rf_gain"] * gap,
        "neural_network": linear + params["nn_offset"] + params["nn_gain"] * gap + params["nn_rows"] * size,
        "decision_tree": tree + params["dt_offset"],
    }


def to_scores(estimates: dict[str, float]) -> dict[str, float]:
    return {t: round(100 * min(1.0, max(0.0, estimates[t])), 1) for t in MODEL_TYPES}


def choose(scores: dict[str, float]) -> str:
    """The highest score; equal scores go to the earlier type in TIE_ORDER."""
    return min(TIE_ORDER, key=lambda t: (-scores[t], TIE_ORDER.index(t)))


def prior_scores(ontology: dict[str, Any], profile: dict[str, Any] | None,
                 rows: int | None) -> tuple[dict[str, float], list[str]]:
    """Prior points when no probe could run, and the facts that moved them."""
    points = dict(PRIOR)
    facts = ["Random forests win most often on tabular data, so they start ahead."]

    def add(changes: dict[str, float], fact: str) -> None:
        for name, delta in changes.items():
            points[name] += delta
        facts.append(fact)

    if rows is not None and rows < 500:
        add({"regression": 6, "decision_tree": 2, "neural_network": -8},
            f"About {rows:,} rows is little data: simple models are favoured and a neural network is not.")
    elif rows is not None and rows >= 50_000:
        add({"neural_network": 8, "random_forest": 2},
            f"About {rows:,} rows is enough data for a neural network to pay off.")
    share = profile["numeric_share"] if profile else ontology["numeric_share"]
    categorical = profile["categorical_features"] if profile else ontology["categorical_properties"]
    total = profile["feature_count"] if profile else ontology["datatype_properties"]
    if total and categorical / total >= 0.5:
        add({"decision_tree": 3, "random_forest": 3, "regression": -3, "neural_network": -3},
            f"{categorical} of {total} features are categorical, which trees split on directly.")
    elif total and share >= 0.8 and rows is not None and rows >= 10_000:
        add({"neural_network": 4}, "The features are mostly numeric and plentiful, which suits a neural network.")
    if profile and profile["high_cardinality_features"]:
        names = ", ".join(profile["high_cardinality_features"][:5])
        add({"regression": -5, "neural_network": -5},
            f"High-cardinality categorical features ({names}) make one-hot encodings sparse for linear models "
            "and networks.")
    if ontology["complexity"] == "complex":
        add({"random_forest": 3, "neural_network": 2},
            f"The ontology is complex ({ontology['classes']} classes, {ontology['object_properties']} object "
            "properties), which favours flexible models.")
    return {t: round(min(100.0, max(0.0, points[t])), 1) for t in MODEL_TYPES}, facts


def probe_facts(task: str, probes: dict[str, Any], rows: int | None, params: dict[str, float]) -> list[str]:
    metric = "accuracy" if task == "classification" else "R²"
    linear, tree = probes["linear"], probes["tree"]
    facts = [
        f"On {probes['rows']:,} sampled rows ({probes['folds']}-fold cross-validation), a linear model reaches "
        f"{metric} {linear:.3f} and a depth-{probes['tree_depth']} tree {tree:.3f}."
    ]
    if tree - linear > 0.02:
        facts.append(f"The tree beats the linear fit by {tree - linear:.3f}: the target depends on the features "
                     "non-linearly, which favours tree ensembles.")
    elif linear - tree > 0.02:
        facts.append(f"The linear fit beats the tree by {linear - tree:.3f}: the relation is close to linear, "
                     "which favours a regression model.")
    else:
        facts.append("The linear fit and the tree are within 0.02 of each other.")
    size = params["nn_rows"] * (math.log10(max(rows or 1000, 10)) - 3)
    if rows is not None and abs(size) >= 0.005:
        facts.append(f"With about {rows:,} rows, the neural network's estimate is "
                     f"{'raised' if size > 0 else 'lowered'} by {abs(size):.3f} for data size.")
    return facts
