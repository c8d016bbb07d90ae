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
* Each (task kind, type) model is a logistic regression on standardised meta-features
  (`chalicelib.recommend.selector.meta_features`) with regret-weighted samples (a miss counts more the
  more score it loses), calibrated by Platt scaling (`CALIBRATION`) fitted on its own leave-datasets-out predictions
  (nested inside every outer fold, so the reported calibration is never fitted on what it is judged on).

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
VARIANTS = {  # name: (C of the logistic regression, regret-weighted?)
    "logistic C=0.1": (0.1, False),
    "logistic C=1": (1.0, False),
    "logistic C=0.1, regret-weighted": (0.1, True),
    "logistic C=1, regret-weighted": (1.0, True),
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


def fit_kind(tasks: list[Task], kind: str, names: list[str], c: float, weighted: bool,
             calibrate: bool = True) -> dict[str, dict]:
    """The four type models of one task kind, each calibrated on its own nested leave-datasets-out predictions."""
    import numpy as np

    from chalicelib.recommend.selector import MODEL_TYPES

    mine = [t for t in tasks if t.kind == kind and t.analysis["probes"]]
    x = _design(mine, kind, names)
    models = {}
    for model_type in MODEL_TYPES:
        hit = np.array([t.hits[model_type] for t in mine])
        weight = np.array([1.0 if t.hits[model_type] else 1 + min(t.regrets[model_type], REGRET_WEIGHT_CAP)
                           / TOLERANCE for t in mine]) if weighted else np.ones(len(mine))
        model = _logistic(x, hit, weight, c)
        if calibrate:
            fold = np.array(_group_folds(mine, FOLDS))
            raw = np.zeros(len(mine))
            for k in range(FOLDS):
                inner = _logistic(x[fold != k], hit[fold != k], weight[fold != k], c)
                raw[fold == k] = _raw(inner, x[fold == k])
            model["calibration"] = (_platt if CALIBRATION == "platt" else _isotonic)(raw, hit)
        models[model_type] = model
    return models


def priors(tasks: list[Task]) -> dict[str, dict[str, float]]:
    from chalicelib.recommend.selector import MODEL_TYPES

    out = {}
    for kind in ("classification", "regression", "unknown"):
        mine = [t for t in tasks if kind in ("unknown", t.kind)]
        out[kind] = {m: round(sum(t.hits[m] for t in mine) / len(mine), 4) for m in MODEL_TYPES}
    return out


def fit(tasks: list[Task], c: float, weighted: bool, names: dict[str, list[str]]) -> dict:
    """A selector.json dict fitted on `tasks`."""
    return {
        "version": 1,
        "tolerance": TOLERANCE,
        "features": names,
        "models": {kind: fit_kind(tasks, kind, names[kind], c, weighted) for kind in ("classification",
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


def cross_validate(tasks: list[Task], c: float, weighted: bool, names: dict) -> tuple[list[Task], list[dict]]:
    """Out-of-fold answers for every task: each fold's selector never saw that fold's datasets."""
    fold = _group_folds(tasks, FOLDS)
    ordered, answers = [], []
    for k in range(FOLDS):
        train = [t for t, f in zip(tasks, fold, strict=True) if f != k]
        test = [t for t, f in zip(tasks, fold, strict=True) if f == k]
        answers += decide(fit(train, c, weighted, names), test)
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
    for label, (c, weighted) in VARIANTS.items():
        ordered, answers = cross_validate(fitting, c, weighted, names)
        variants[label] = summarise(ordered, answers)
        outcomes[label] = (ordered, answers)
        log(f"{label}: hit {variants[label]['hit']:.3f}, regret {variants[label]['regret']:.4f}")
    chosen = min(variants, key=lambda v: (variants[v]["regret"], -variants[v]["hit"]))
    ordered, answers = outcomes[chosen]
    c, weighted = VARIANTS[chosen]
    selector = fit(fitting, c, weighted, names)
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
    SELECTOR_FILE.write_text(json.dumps(selector, indent=1, sort_keys=True) + "\n")


def main() -> None:
    evaluation = evaluate()
    write_selector(evaluation.selector)
    print(json.dumps({k: v for k, v in evaluation.__dict__.items() if k != "selector"}, indent=1))


if __name__ == "__main__":
    main()
