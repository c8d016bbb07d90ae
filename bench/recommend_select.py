"""Fit the model-type selector on the corpus and measure it on datasets it never saw.

    python -m bench.recommend_select            # fit, evaluate, write chalicelib/recommend/selector.json

Inputs: the ground truth of `bench/recommend_corpus.json` (each type's test score over 2-5 repeated
splits) and the route's own analysis of each task, `bench/recommend_meta.json`.

* Truth per task: each type's mean score over its repeats (an R² below 0, worse than predicting the
  mean, counts as 0: `FLOOR`); the best type's mean; a type *hits* when its mean is within `TOLERANCE`
  (0.01) of the best; its *regret* is best minus its mean.
* Datasets, not tasks, are held out: a group is the corpus's table (`package/item`) merged with every
  table that looks like the same data under another name (`dataset_groups`: the same item name once
  package, case and a train/test/validation suffix are ignored, or the same row count, feature count and
  target name), so a copy of a table never sits on both sides of a split.
* A fixed `HELD_OUT_SHARE` of the groups (by a hash of the group's key) is never used for fitting or
  choosing anything: the final test, on datasets the shipped selector never saw.
* On the rest, `FOLDS`-fold GroupKFold (leave-datasets-out) cross-validation compares the variants
  (`VARIANTS`) by mean regret (the score lost, not the label missed), and the winner is refitted on all
  of it and shipped.
* Each (task kind, type) model (`Variant`) is a logistic regression on standardised meta-features
  (`chalicelib.recommend.selector.meta_features`), optionally with regret-weighted samples (a miss counts more
  the more score it loses), or shallow gradient-boosted trees (scikit-learn's HistGradientBoosting*, at most
  `MAX_TREES` trees of depth `MAX_DEPTH`, exported as JSON by `export_trees`) predicting either P(hit) or the
  type's regret. Each is calibrated by Platt scaling (`CALIBRATION` for the logistic models; an exact line on
  the trees' margin, one per kind for regret models so the pick is the least predicted regret) fitted on its
  own leave-datasets-out predictions (nested inside every outer fold, so the reported calibration is never
  fitted on what it is judged on).

The decision under test is the route's: `chalicelib.recommend.engine.decide` with a `Selector` built from
the same dict that is written to selector.json.
"""
from __future__ import annotations

import hashlib
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELECTOR_FILE = ROOT / "chalicelib" / "recommend" / "selector.json"
TOLERANCE = 0.01
FOLDS = 5
HELD_OUT_SHARE = 0.15
REGRET_WEIGHT_CAP = 0.2  # a miss weighs 1 + min(regret, cap) / TOLERANCE
MAX_TREES, MAX_DEPTH = 200, 3  # bounds on a boosted model: selector.json stays small, the route fast


@dataclass(frozen=True)
class Variant:
    """One way of fitting the (task kind, type) models. `family`: "logistic" (a logistic regression, C = `c`),
    "boosted" (gradient-boosted trees predicting P(hit)) or "regret" (gradient-boosted trees predicting the
    type's regret, the pick being the least predicted regret). `weighted`: a miss weighs
    1 + min(regret, REGRET_WEIGHT_CAP) / TOLERANCE."""

    family: str = "logistic"
    c: float = 1.0
    weighted: bool = False
    trees: int = 0
    depth: int = 0
    learning_rate: float = 0.0
    min_leaf: int = 20


def _trees(family: str, trees: int, depth: int, learning_rate: float, min_leaf: int) -> tuple[str, Variant]:
    what = "P(hit)" if family == "boosted" else "regret"
    return (f"boosted {what}: {trees} trees, depth {depth}, rate {learning_rate}, leaf >= {min_leaf}",
            Variant(family, trees=trees, depth=depth, learning_rate=learning_rate, min_leaf=min_leaf))


# Every variant that was compared, with its cross-validated numbers in the report, but two, tried by the same
# cross-validation and left out: boosted P(hit), 50 trees, depth 2, rate 0.05, leaf >= 30, regret-weighted
# (hit 69.9%, regret 0.0187: worse than unweighted, as for the logistic models, and slow to refit: scikit-learn
# bins weighted samples ~25 times slower); boosted regret, 100 trees, depth 3, rate 0.05, leaf >= 20 with a Platt
# line per type instead of one per kind (hit 69.4%, regret 0.0183, no better than one line).
VARIANTS = {
    "logistic C=0.1": Variant(c=0.1),
    "logistic C=1": Variant(c=1.0),
    "logistic C=0.1, regret-weighted": Variant(c=0.1, weighted=True),
    "logistic C=1, regret-weighted": Variant(c=1.0, weighted=True),
    **dict(_trees("boosted", *settings) for settings in (
        (100, 3, 0.05, 20), (50, 3, 0.05, 30), (50, 2, 0.05, 30), (50, 2, 0.05, 60), (100, 2, 0.03, 30),
        (30, 2, 0.1, 30), (100, 1, 0.05, 30), (100, 1, 0.1, 30), (150, 1, 0.05, 60), (200, 1, 0.03, 30))),
    **dict(_trees("regret", *settings) for settings in (
        (50, 3, 0.05, 20), (100, 3, 0.05, 20), (100, 3, 0.1, 20), (150, 3, 0.03, 40), (100, 2, 0.05, 20),
        (200, 2, 0.05, 30))),
}
# A mean score below this counts as this: an R² under 0 is worse than predicting the mean, and one network
# that diverged to R² -1e35 would otherwise be the whole mean regret. No accuracy is below it.
FLOOR = 0.0
CALIBRATION = "platt"  # or "isotonic": Platt had the lower cross-validated calibration error (3.5 vs 5.0 points)
SUFFIX = re.compile(r"(train|test|tr|te|val|valid|validation|trn|tst)$")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Task:
    name: str
    group: str
    kind: str
    rows: int
    means: dict[str, float]
    halves: tuple[dict[str, float], dict[str, float]]
    analysis: dict
    dataset: str = ""  # the merged group
    hits: dict[str, bool] = field(default_factory=dict)
    regrets: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        best = max(self.means.values())
        self.regrets = {t: best - s for t, s in self.means.items()}
        self.hits = {t: r <= TOLERANCE + 1e-9 for t, r in self.regrets.items()}


def load_tasks() -> list[Task]:
    from bench import recommend_corpus as corpus
    from bench import recommend_meta as meta

    truth = corpus.load_corpus()["tasks"]
    analyses = meta.load_meta()["tasks"]
    out = []
    for name, entry in sorted(truth.items()):
        analysis = analyses.get(name)
        if entry.get("errors") or analysis is None or "error" in analysis \
                or analysis["csv_sha256"] != entry["csv_sha256"]:
            continue
        analysis["data"].setdefault("storage_configs", [{"id": "bench"}])  # left out of the cache; one config
        scores = entry["scores"]
        means = {t: max(FLOOR, statistics.fmean(v)) for t, v in scores.items()}
        halves = tuple({t: max(FLOOR, statistics.fmean(v[start::2])) for t, v in scores.items()}
                       for start in (0, 1))
        out.append(Task(name, entry["group"], entry["task"], entry["rows"], means, halves, analysis))
    dataset_groups(out)
    return out


def _item_key(group: str) -> str:
    item = group.split("/", 1)[-1].lower()
    item = re.sub(r"[^a-z0-9]", "", item)
    return SUFFIX.sub("", item) or item


def dataset_groups(tasks: list[Task]) -> None:
    """Union-find over tables: the same normalised item name, or the same rows, features and target name."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[tuple, str] = {}
    for task in tasks:
        data = task.analysis["data"]
        keys = [("item", _item_key(task.group)),
                ("shape", task.rows, data.get("feature_count"), (task.analysis.get("target") or "").lower())]
        for key in keys:
            if key in first:
                union(first[key], task.group)
            else:
                first[key] = task.group
        find(task.group)
    for task in tasks:
        task.dataset = find(task.group)


def held_out(dataset: str) -> bool:
    return int(hashlib.sha256(dataset.encode()).hexdigest()[:8], 16) / 16 ** 8 < HELD_OUT_SHARE


# ---------------------------------------------------------------- fitting


def _design(tasks: list[Task], kind: str, names: list[str]):
    import numpy as np

    from chalicelib.recommend.selector import meta_features

    rows = [meta_features(kind, t.analysis["data"], t.analysis["probes"]) for t in tasks]
    return np.array([[r[n] for n in names] for r in rows], dtype=float)


def feature_names(kind: str, tasks: list[Task]) -> list[str]:
    from chalicelib.recommend.selector import meta_features

    probed = next(t for t in tasks if t.kind == kind and t.analysis["probes"])
    return list(meta_features(kind, probed.analysis["data"], probed.analysis["probes"]))


def _logistic(x, hit, weight, c: float):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    if hit.all() or not hit.any():  # one class only: a constant model
        p = float(hit.mean())
        return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": [0.0] * x.shape[1],
                "intercept": float(np.log((p + 1e-6) / (1 - p + 1e-6))), "calibration": []}
    model = LogisticRegression(C=c, max_iter=5000).fit(z, hit, sample_weight=weight)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0]), "calibration": []}


def _raw(model: dict, x):
    import numpy as np

    z = model["intercept"] + ((x - np.array(model["mean"])) / np.array(model["scale"])) @ np.array(model["coef"])
    return 1 / (1 + np.exp(-np.clip(z, -40, 40)))


def _boosted(x, hit, regret, weight, variant: Variant):
    """Shallow gradient-boosted trees (scikit-learn's HistGradientBoosting*) and their margin on new rows:
    the log-odds of a hit, or the predicted regret (`variant.family == "regret"`). Fixed number of trees, no
    early stopping: the only randomness of these estimators is its validation split. One OpenMP thread: the
    root's gradient sum is a parallel reduction, whose last bits depend on the thread count, and the shipped
    selector must be the same refitted on any machine."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    assert variant.trees <= MAX_TREES and variant.depth <= MAX_DEPTH, variant
    settings = {"max_iter": variant.trees, "max_depth": variant.depth, "learning_rate": variant.learning_rate,
                "min_samples_leaf": variant.min_leaf, "l2_regularization": 1.0, "early_stopping": False,
                "random_state": 0}
    if variant.family == "regret":
        with threadpool_limits(1, "openmp"):
            model = HistGradientBoostingRegressor(**settings).fit(x, regret, sample_weight=weight
                                                                   if variant.weighted else None)
        return export_trees(model, "regret"), model.predict
    if hit.all() or not hit.any():  # one class only: a constant model
        p = float(hit.mean())
        constant = float(np.log((p + 1e-6) / (1 - p + 1e-6)))
        return ({"kind": "boosted", "output": "log_odds", "baseline": constant, "trees": [], "platt": [1.0, 0.0]},
                lambda rows: np.full(len(rows), constant))
    # Without weights, no sample_weight at all: with one (even all ones) scikit-learn bins by weighted
    # quantiles, ~25 times slower here.
    with threadpool_limits(1, "openmp"):
        model = HistGradientBoostingClassifier(**settings).fit(x, hit, sample_weight=weight
                                                                if variant.weighted else None)
    return export_trees(model, "log_odds"), model.decision_function


def export_trees(model, output: str) -> dict:
    """A fitted HistGradientBoosting* model as plain JSON for `selector.BoostedModel`: the baseline and, per
    tree, nested [feature, threshold, left, right] lists with the (shrunk) leaf values as numbers. A row
    goes left when its value is <= the threshold, as in scikit-learn (the meta-features are never NaN, so
    its missing-value branch is not exported)."""
    def node(nodes, i: int):
        n = nodes[i]
        if n["is_leaf"]:
            return float(n["value"])
        return [int(n["feature_idx"]), float(n["num_threshold"]), node(nodes, int(n["left"])),
                node(nodes, int(n["right"]))]

    trees = []
    for predictors in model._predictors:  # one predictor per iteration (binary or regression)
        (predictor,) = predictors
        assert not predictor.nodes["is_categorical"].any()
        trees.append(node(predictor.nodes, 0))
    return {"kind": "boosted", "output": output, "baseline": float(model._baseline_prediction.ravel()[0]),
            "trees": trees, "platt": [1.0, 0.0]}


def _isotonic(raw, hit) -> list[list[float]]:
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, hit.astype(float))
    return [[round(float(a), 6), round(float(b), 6)] for a, b in zip(fitted.X_thresholds_, fitted.y_thresholds_,
                                                                    strict=True)]


def _platt(raw, hit) -> list[list[float]]:
    """Platt scaling (a logistic on the logit of the raw probability), as points on a grid for the
    route's piecewise-linear map: smoother at the ends than an isotonic fit on a few hundred tasks."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731
    model = LogisticRegression(C=1e6, max_iter=5000).fit(logit(raw).reshape(-1, 1), hit)
    grid = np.concatenate([[0.0], np.linspace(0.005, 0.995, 100), [1.0]])
    mapped = model.predict_proba(logit(grid).reshape(-1, 1))[:, 1]
    return [[round(float(a), 6), round(float(b), 6)] for a, b in zip(grid, mapped, strict=True)]


def platt_line(margin, hit) -> list[float]:
    """Platt scaling of a margin, exactly: P(hit) = 1 / (1 + exp(-(a * margin + b))); returns [a, b]."""
    from sklearn.linear_model import LogisticRegression

    if hit.all() or not hit.any():
        return [0.0, float(_logit_of(hit.mean()))]
    model = LogisticRegression(C=1e6, max_iter=5000).fit(margin.reshape(-1, 1), hit)
    return [float(model.coef_[0][0]), float(model.intercept_[0])]


def _logit_of(p: float) -> float:
    import math

    return math.log((p + 1e-6) / (1 - p + 1e-6))


def _group_folds(tasks: list[Task], folds: int) -> list[int]:
    """Fold of each task: datasets assigned to folds by hash (balanced by task count, deterministic)."""
    sizes: dict[str, int] = defaultdict(int)
    for t in tasks:
        sizes[t.dataset] += 1
    order = sorted(sizes, key=lambda d: (-sizes[d], hashlib.sha256(d.encode()).hexdigest()))
    load = [0] * folds
    fold_of: dict[str, int] = {}
    for dataset in order:
        k = min(range(folds), key=lambda i: (load[i], i))
        fold_of[dataset] = k
        load[k] += sizes[dataset]
    return [fold_of[t.dataset] for t in tasks]


def fit_type(x, hit, regret, weight, variant: Variant):
    """One type's model (a selector.json dict, uncalibrated) and its raw output on new rows: the raw
    probability for a logistic model, the margin for boosted trees (what the calibration is fitted on)."""
    if variant.family == "logistic":
        model = _logistic(x, hit, weight, variant.c)
        return model, lambda rows: _raw(model, rows)
    return _boosted(x, hit, regret, weight, variant)


def fit_kind(tasks: list[Task], kind: str, names: list[str], variant: Variant,
             calibrate: bool = True) -> dict[str, dict]:
    """The four type models of one task kind, each calibrated on its own nested leave-datasets-out predictions
    (a regret model: one Platt line for the four types of the kind, so the calibrated P(hit) keeps the order of
    the predicted regrets and the pick is the type with the least)."""
    import numpy as np

    from chalicelib.recommend.selector import MODEL_TYPES

    mine = [t for t in tasks if t.kind == kind and t.analysis["probes"]]
    x = _design(mine, kind, names)
    fold = np.array(_group_folds(mine, FOLDS))
    models, raws, hits = {}, {}, {}
    for model_type in MODEL_TYPES:
        hit = np.array([t.hits[model_type] for t in mine])
        regret = np.array([t.regrets[model_type] for t in mine])
        weight = np.array([1.0 if t.hits[model_type] else 1 + min(t.regrets[model_type], REGRET_WEIGHT_CAP)
                           / TOLERANCE for t in mine]) if variant.weighted else np.ones(len(mine))
        models[model_type], _ = fit_type(x, hit, regret, weight, variant)
        if calibrate:
            raw = np.zeros(len(mine))
            for k in range(FOLDS):
                inside = fold != k
                _, inner = fit_type(x[inside], hit[inside], regret[inside], weight[inside], variant)
                raw[fold == k] = inner(x[fold == k])
            raws[model_type], hits[model_type] = raw, hit
    if not calibrate:
        return models
    if variant.family == "logistic":
        for model_type, model in models.items():
            model["calibration"] = (_platt if CALIBRATION == "platt" else _isotonic)(raws[model_type],
                                                                                      hits[model_type])
    elif variant.family == "regret":
        line = platt_line(np.concatenate(list(raws.values())), np.concatenate(list(hits.values())))
        for model in models.values():
            model["platt"] = line
    else:
        for model_type, model in models.items():
            model["platt"] = platt_line(raws[model_type], hits[model_type])
    return models


def priors(tasks: list[Task]) -> dict[str, dict[str, float]]:
    from chalicelib.recommend.selector import MODEL_TYPES

    out = {}
    for kind in ("classification", "regression", "unknown"):
        mine = [t for t in tasks if kind in ("unknown", t.kind)]
        out[kind] = {m: round(sum(t.hits[m] for t in mine) / len(mine), 4) for m in MODEL_TYPES}
    return out


def fit(tasks: list[Task], variant: Variant, names: dict[str, list[str]]) -> dict:
    """A selector.json dict fitted on `tasks`."""
    return {
        "version": 1 if variant.family == "logistic" else 2,
        "tolerance": TOLERANCE,
        "features": names,
        "models": {kind: fit_kind(tasks, kind, names[kind], variant) for kind in ("classification",
                                                                                  "regression")},
        "priors": priors(tasks),
    }


# ---------------------------------------------------------------- evaluation


def decide(selector_dict: dict, tasks: list[Task]) -> list[dict]:
    """The route's decision (engine.decide) for each task, with this selector."""
    from chalicelib.recommend.engine import Analysis
    from chalicelib.recommend.engine import decide as route_decide
    from chalicelib.recommend.selector import Selector

    selector = Selector.from_dict(selector_dict)
    return [route_decide(Analysis.from_dict(t.analysis), selector=selector) for t in tasks]


def summarise(tasks: list[Task], answers: list[dict]) -> dict:
    picks = [a["recommended_type"] for a in answers]
    return {
        "tasks": len(tasks),
        "hit": statistics.fmean(t.hits[p] for t, p in zip(tasks, picks, strict=True)),
        "regret": statistics.fmean(t.regrets[p] for t, p in zip(tasks, picks, strict=True)),
        "picks": dict(sorted(defaultdict(int, {p: picks.count(p) for p in set(picks)}).items())),
    }


def constants(tasks: list[Task]) -> dict[str, dict]:
    from chalicelib.recommend.selector import MODEL_TYPES

    return {m: {"hit": statistics.fmean(t.hits[m] for t in tasks),
                "regret": statistics.fmean(t.regrets[m] for t in tasks)} for m in MODEL_TYPES}


def noise_ceiling(tasks: list[Task]) -> dict:
    """The best type by half of the repeated splits, judged on the other half (both ways, averaged)."""
    hits, regrets = [], []
    for t in tasks:
        for a, b in ((0, 1), (1, 0)):
            pick = max(t.halves[a], key=t.halves[a].get)
            best = max(t.halves[b].values())
            hits.append(t.halves[b][pick] >= best - TOLERANCE - 1e-9)
            regrets.append(best - t.halves[b][pick])
    return {"hit": statistics.fmean(hits), "regret": statistics.fmean(regrets)}


def reliability(tasks: list[Task], answers: list[dict], every_type: bool = False) -> list[dict]:
    """Predicted vs observed P(hit) by decile of the predicted probability."""
    pairs = []
    for t, a in zip(tasks, answers, strict=True):
        types = list(a["all_scores"]) if every_type else [a["recommended_type"]]
        pairs += [(a["all_scores"][m] / 100, t.hits[m]) for m in types]
    table = []
    for decile in range(10):
        low, high = decile / 10, (decile + 1) / 10
        inside = [(p, h) for p, h in pairs if low <= p < high or (decile == 9 and p == 1.0)]
        if inside:
            table.append({"bin": f"{low:.1f}-{high:.1f}", "n": len(inside),
                          "predicted": statistics.fmean(p for p, _ in inside),
                          "observed": statistics.fmean(h for _, h in inside)})
    return table


def expected_calibration_error(table: list[dict]) -> float:
    total = sum(row["n"] for row in table)
    return sum(row["n"] * abs(row["predicted"] - row["observed"]) for row in table) / total


def cross_validate(tasks: list[Task], variant: Variant, names: dict) -> tuple[list[Task], list[dict]]:
    """Out-of-fold answers for every task: each fold's selector never saw that fold's datasets."""
    fold = _group_folds(tasks, FOLDS)
    ordered, answers = [], []
    for k in range(FOLDS):
        train = [t for t, f in zip(tasks, fold, strict=True) if f != k]
        test = [t for t, f in zip(tasks, fold, strict=True) if f == k]
        answers += decide(fit(train, variant, names), test)
        ordered += test
    return ordered, answers


@dataclass
class Evaluation:
    corpus: dict
    variants: dict[str, dict]
    chosen: str
    cv: dict
    cv_constants: dict
    cv_ceiling: dict
    cv_reliability: list
    cv_reliability_all: list
    held_out: dict
    held_out_constants: dict
    held_out_ceiling: dict
    held_out_reliability: list
    selector: dict


def evaluate() -> Evaluation:
    tasks = load_tasks()
    fitting = [t for t in tasks if not held_out(t.dataset)]
    test = [t for t in tasks if held_out(t.dataset)]
    names = {kind: feature_names(kind, tasks) for kind in ("classification", "regression")}
    log(f"{len(tasks)} tasks ({len({t.dataset for t in tasks})} datasets): {len(fitting)} for fitting, "
        f"{len(test)} held out")
    variants, outcomes = {}, {}
    for label, variant in VARIANTS.items():
        ordered, answers = cross_validate(fitting, variant, names)
        variants[label] = summarise(ordered, answers)
        outcomes[label] = (ordered, answers)
        log(f"{label}: hit {variants[label]['hit']:.3f}, regret {variants[label]['regret']:.4f}")
    chosen = min(variants, key=lambda v: (variants[v]["regret"], -variants[v]["hit"]))
    ordered, answers = outcomes[chosen]
    selector = fit(fitting, VARIANTS[chosen], names)
    selector["variant"] = chosen
    selector["fitted_on_groups"] = sorted({t.group for t in fitting})
    held_answers = decide(selector, test)
    return Evaluation(
        corpus={"tasks": len(tasks), "classification": sum(t.kind == "classification" for t in tasks),
                "regression": sum(t.kind == "regression" for t in tasks),
                "tables": len({t.group for t in tasks}), "datasets": len({t.dataset for t in tasks}),
                "fitting_tasks": len(fitting), "held_out_tasks": len(test),
                "held_out_datasets": len({t.dataset for t in test})},
        variants=variants, chosen=chosen,
        cv=variants[chosen], cv_constants=constants(ordered), cv_ceiling=noise_ceiling(ordered),
        cv_reliability=reliability(ordered, answers), cv_reliability_all=reliability(ordered, answers, True),
        held_out=summarise(test, held_answers), held_out_constants=constants(test),
        held_out_ceiling=noise_ceiling(test), held_out_reliability=reliability(test, held_answers),
        selector=selector,
    )


def write_selector(selector: dict) -> None:
    SELECTOR_FILE.write_text(selector_text(selector))


def selector_text(selector: dict) -> str:
    """selector.json's text: indented, but each boosted tree on one line (indented, a few hundred trees would
    be thousands of lines)."""
    trees: list[str] = []

    def placeholder(model: dict) -> dict:
        if model.get("kind") != "boosted":
            return model
        marks = []
        for tree in model["trees"]:
            trees.append(json.dumps(tree, separators=(",", ":")))
            marks.append(f"@tree{len(trees) - 1}@")
        return {**model, "trees": marks}

    marked = {**selector, "models": {kind: {t: placeholder(m) for t, m in by_type.items()}
                                     for kind, by_type in selector["models"].items()}}
    text = json.dumps(marked, indent=1, sort_keys=True)
    text = re.sub(r'"@tree(\d+)@"', lambda match: trees[int(match.group(1))], text)
    assert json.loads(text) == json.loads(json.dumps(selector))
    return text + "\n"


def main() -> None:
    evaluation = evaluate()
    write_selector(evaluation.selector)
    print(json.dumps({k: v for k, v in evaluation.__dict__.items() if k != "selector"}, indent=1))


if __name__ == "__main__":
    main()
