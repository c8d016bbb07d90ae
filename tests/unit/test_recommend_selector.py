"""The shipped selector (chalicelib/recommend/selector.json): complete, evaluated in pure Python exactly as the
benchmark fitted it, no numpy at request time, and the route's answer is the benchmark's function."""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_recommend_analysis import TTL, FakeS3, config, linear_csv

from bench import recommend_meta, recommend_select
from chalicelib.ontology import summarize
from chalicelib.recommend import engine, sample, selector

REPO = recommend_select.ROOT


def test_the_shipped_selector_has_a_calibrated_model_per_task_and_type():
    shipped = selector.load_selector()
    for task in selector.TASKS:
        assert set(shipped.models[task]) == set(selector.MODEL_TYPES)
        probed = {"linear": 0.5, "tree": 0.6, "rows": 100, "encoded_dims": 3, "features_used": 3,
                  "features_total": 3}
        assert list(selector.meta_features(task, {}, probed)) == list(shipped.features[task])
        for model in shipped.models[task].values():
            if isinstance(model, selector.BoostedModel):
                assert model.trees and len(model.platt) == 2  # calibrated: not the identity line of a fresh export
                assert model.platt != (1.0, 0.0) and (model.platt[0] > 0) == (model.output == "log_odds")
                continue
            assert len(model.coef) == len(model.mean) == len(model.scale) == len(shipped.features[task])
            xs, ys = zip(*model.calibration, strict=True)
            assert list(xs) == sorted(xs) and list(ys) == sorted(ys) and 0 <= ys[0] and ys[-1] <= 1
    for task in (*selector.TASKS, "unknown"):
        assert set(shipped.prior(task)) == set(selector.MODEL_TYPES)
        assert all(0 <= p <= 1 for p in shipped.prior(task).values())


def numpy_margin(fitted: dict, x: np.ndarray) -> np.ndarray:
    """The exported trees' sum, vectorised over rows: a second implementation of BoostedModel.margin (its parity
    with scikit-learn itself is in test_recommend_selector_trees)."""
    def leaf(tree, rows):
        if not isinstance(tree, list):
            return np.full(len(rows), tree)
        feature, threshold, left, right = tree
        return np.where(rows[:, feature] <= threshold, leaf(left, rows), leaf(right, rows))

    total = np.full(len(x), fitted["baseline"])
    for tree in fitted["trees"]:
        total = total + leaf(tree, x)
    return total


def test_pure_python_evaluation_equals_the_fitting_code():
    """The route's arithmetic (selector.LogisticModel, BoostedModel) and numpy (recommend_select._raw for a
    logistic model) agree on the shipped models."""
    raw = json.loads(selector.SELECTOR_FILE.read_text())
    shipped = selector.load_selector()
    rng = random.Random(3)
    for task in selector.TASKS:
        for model_type, fitted in raw["models"][task].items():
            if fitted.get("kind") == "boosted":
                x = np.array([[rng.gauss(0, 2) for _ in shipped.features[task]] for _ in range(200)])
                thresholds = {}
                for tree in fitted["trees"]:
                    thresholds.setdefault(tree[0], []).append(tree[1])
                for feature, values in thresholds.items():  # half the rows: values on, or close to, thresholds
                    x[:100, feature] = rng.choices(values, k=100) + np.array([0, 1e-12, -1e-12, 0, 0] * 20)
                a, b = fitted["platt"]
                for values, margin in zip(x, numpy_margin(fitted, x), strict=True):
                    assert math.isclose(shipped.models[task][model_type].margin(list(values)), margin,
                                        rel_tol=0, abs_tol=1e-9)
                    assert math.isclose(shipped.models[task][model_type].probability(list(values)),
                                        1 / (1 + math.exp(-(a * margin + b))), rel_tol=0, abs_tol=1e-9)
                continue
            for _ in range(20):
                values = [rng.gauss(m, 2 * s) for m, s in zip(fitted["mean"], fitted["scale"], strict=True)]
                expected = float(recommend_select._raw(fitted, np.array([values]))[0])
                assert math.isclose(shipped.models[task][model_type].raw_probability(values), expected,
                                    rel_tol=1e-9, abs_tol=1e-12)
                calibrated = float(np.interp(expected, *zip(*fitted["calibration"], strict=True)))
                assert math.isclose(shipped.models[task][model_type].probability(values), calibrated,
                                    rel_tol=1e-9, abs_tol=1e-12)


def test_calibration_interpolates_and_is_flat_beyond_its_ends():
    points = ((0.1, 0.2), (0.5, 0.4), (0.9, 0.9))
    assert selector.calibrate(0.0, points) == 0.2 and selector.calibrate(1.0, points) == 0.9
    assert math.isclose(selector.calibrate(0.3, points), 0.3) and math.isclose(selector.calibrate(0.7, points), 0.65)


def test_the_route_answers_what_the_benchmark_computes_from_its_cache():
    """bench/recommend_meta caches `compact(analyze(...))`; bench/recommend_select decides with
    engine.decide on that cache. The route's answer on the same sample must be the same."""
    s3 = FakeS3({"data/part-0.csv": linear_csv(900, noise=0.5)})
    summary = summarize(TTL)
    route = engine.recommend(summary, [sample.sample_storage(s3, config())])
    analysis = engine.analyze(summary, [sample.sample_storage(s3, config())])
    cached = json.loads(json.dumps(recommend_meta.compact(analysis)))  # through JSON, as on disk
    cached["data"].setdefault("storage_configs", [{"id": "bench"}])
    bench = engine.decide(engine.Analysis.from_dict(cached))
    assert (bench["recommended_type"], bench["all_scores"], bench["score_basis"]) == \
        (route["recommended_type"], route["all_scores"], route["score_basis"])


def test_no_data_a_boolean_or_enumerated_target_is_classification():
    base = ("@prefix owl: <http://www.w3.org/2002/07/owl#> . @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> ."
            " @prefix xsd: <http://www.w3.org/2001/XMLSchema#> . @prefix ex: <http://example.org/d#> ."
            " ex:Row a owl:Class . ex:a a owl:DatatypeProperty ; rdfs:range xsd:double .")
    ranges = {"xsd:boolean": "classification",
              '[ a rdfs:Datatype ; owl:oneOf ( "low" "high" ) ]': "classification",
              "xsd:string": "classification", "xsd:decimal": "regression", "xsd:integer": "unknown"}
    shipped = selector.load_selector()
    for declared, task in ranges.items():
        ttl = f"{base} ex:label a owl:DatatypeProperty ; rdfs:range {declared} ."
        answer = engine.recommend(summarize(ttl), [])
        assert answer["task"] == task and answer["score_basis"] == "base_rate", (declared, answer["task"])
        assert answer["all_scores"] == {t: round(100 * p, 1) for t, p in shipped.prior(task).items()}
        assert answer["score"] == max(answer["all_scores"].values())


def test_recommend_runs_with_numpy_unimportable():
    """What the Lambda package has: no numpy (the package check forbids it). The route's whole decision,
    selector included, runs with numpy blocked."""
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "from chalicelib.ontology import summarize\n"
        "from chalicelib.recommend import engine, sample\n"
        "from test_recommend_analysis import TTL, FakeS3, config, linear_csv\n"
        "s3 = FakeS3({'data/part-0.csv': linear_csv(300)})\n"
        "answer = engine.recommend(summarize(TTL), [sample.sample_storage(s3, config())])\n"
        "assert answer['score_basis'] == 'calibrated_probability', answer['score_basis']\n"
        "assert 'numpy' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        "print(answer['recommended_type'])\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{Path(__file__).parent}"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in selector.MODEL_TYPES
