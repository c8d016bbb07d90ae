"""Boosted-tree selectors: the pure-Python evaluation of the exported JSON (selector.BoostedModel) gives
scikit-learn's numbers to 1e-9, the exported trees keep their bounds, and selector.json's text round-trips."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from bench import recommend_select
from chalicelib.recommend import selector


def rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 5] = rng.integers(0, 3, size=n)  # ties and values exactly on a threshold
    return x


def target(x: np.ndarray) -> np.ndarray:
    return (x[:, 0] + x[:, 1] * x[:, 2] + 0.3 * x[:, 5] > 0.2).astype(int)


@pytest.mark.parametrize("trees, depth", [(recommend_select.MAX_TREES, 1), (60, recommend_select.MAX_DEPTH)])
def test_pure_python_trees_equal_predict_proba(trees, depth):
    x, new = rows(400, 0), rows(200, 1)
    hit = target(x)
    model = HistGradientBoostingClassifier(max_iter=trees, max_depth=depth, learning_rate=0.05,
                                           min_samples_leaf=10, early_stopping=False, random_state=0).fit(x, hit)
    exported = recommend_select.export_trees(model, "log_odds")
    assert len(exported["trees"]) == trees
    pure = selector.type_model(json.loads(json.dumps(exported)))  # through JSON, as on disk
    on_thresholds = [[0.0] * 6 for _ in exported["trees"][:20]]  # each value exactly on a root threshold
    for values, tree in zip(on_thresholds, exported["trees"], strict=False):
        values[tree[0]] = tree[1]
    sample = np.vstack([new, on_thresholds])
    for values, margin, probability in zip(sample, model.decision_function(sample), model.predict_proba(sample)[:, 1],
                                           strict=True):
        assert math.isclose(pure.margin(list(values)), margin, rel_tol=0, abs_tol=1e-9)
        assert math.isclose(pure.probability(list(values)), probability, rel_tol=0, abs_tol=1e-9)


def test_platt_line_equals_the_fitted_calibrator():
    x, new = rows(400, 2), rows(100, 3)
    hit = target(x)
    regressor = HistGradientBoostingRegressor(max_iter=50, max_depth=3, learning_rate=0.1, early_stopping=False,
                                              random_state=0).fit(x, 1.0 - hit)
    exported = recommend_select.export_trees(regressor, "regret")
    margin = regressor.predict(x)
    exported["platt"] = recommend_select.platt_line(margin, hit)
    calibrator = LogisticRegression(C=1e6, max_iter=5000).fit(margin.reshape(-1, 1), hit)
    pure = selector.type_model(json.loads(json.dumps(exported)))
    assert exported["platt"][0] < 0  # more predicted regret, fewer hits
    predicted = regressor.predict(new)
    for values, regret, probability in zip(new, predicted, calibrator.predict_proba(predicted.reshape(-1, 1))[:, 1],
                                           strict=True):
        assert math.isclose(pure.margin(list(values)), regret, rel_tol=0, abs_tol=1e-9)
        assert math.isclose(pure.probability(list(values)), probability, rel_tol=0, abs_tol=1e-9)


def test_a_tree_routes_a_value_on_its_threshold_left():
    model = selector.BoostedModel("log_odds", 0.5, (selector._tree([0, 1.0, -1.0, [1, 2.0, 2.0, 3.0]]),),
                                  (1.0, 0.0))
    assert model.margin([1.0, 9.0]) == -0.5
    assert model.margin([1.5, 2.0]) == 2.5 and model.margin([1.5, 2.5]) == 3.5


def depth(tree) -> int:
    return 1 + max(depth(tree[2]), depth(tree[3])) if isinstance(tree, list) else 0


def test_the_shipped_selector_is_small_and_its_trees_bounded():
    assert selector.SELECTOR_FILE.stat().st_size < 400_000
    raw = json.loads(selector.SELECTOR_FILE.read_text())
    for by_type in raw["models"].values():
        for model in by_type.values():
            if model.get("kind") == "boosted":
                assert len(model["trees"]) <= recommend_select.MAX_TREES
                assert all(depth(t) <= recommend_select.MAX_DEPTH for t in model["trees"])
                assert model["output"] in ("log_odds", "regret") and len(model["platt"]) == 2


def test_the_selector_text_puts_a_tree_on_a_line_and_round_trips():
    tree = [0, 0.25, -0.1, [2, 1.5, 0.3, 0.125]]
    selector_dict = {"features": {}, "priors": {}, "version": 2, "models": {"regression": {
        "decision_tree": {"kind": "boosted", "output": "regret", "baseline": 0.1, "trees": [tree, 0.5],
                          "platt": [-3.0, 1.0]},
        "regression": {"mean": [0.0], "scale": [1.0], "coef": [0.5], "intercept": 0.0, "calibration": []}}}}
    text = recommend_select.selector_text(selector_dict)
    assert json.loads(text) == selector_dict
    assert [line.strip() for line in text.splitlines() if "0.25" in line] == ["[0,0.25,-0.1,[2,1.5,0.3,0.125]],"]
