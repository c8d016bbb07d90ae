"""Tuning benchmark (`make bench-tuning`, part of `make bench`): the recommended type tuned for 60 s against
the same type with its defaults and against FLAML given 20 s, on datasets the recommender never saw.

    python -m bench.bench_tuning [--budget 60] [--flaml-budget 20] [--datasets N]

For each of N tasks of the corpus (`heldout_tasks`: a deterministic spread over both task kinds and sizes
of 300 to 5,000 rows, taken from the groups the shipped recommender was not fitted on when it lists them):
the recommended type (the route's own function, `chalicelib.recommend.engine.recommend`,
on a sample built as the route builds it) is trained by our trainer (`trainer.pipeline.train_and_evaluate`,
train_test_split 0.75, random_seed 42) twice, with its defaults and with `training_config.tuning =
{"budget_seconds": budget}`; FLAML (`flaml.AutoML`, its default learners, `time_budget` = the FLAML budget,
same seed) is fitted on exactly the trainer's training rows (fit + validation split) and its features, and
scored on exactly the trainer's test rows. Scores: test accuracy (classification) or R² (regression).
FLAML is a benchmark dependency only (bench/requirements.txt), never in the trainer.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

from bench.report import markdown_table, write_section

SECTION = "bench/bench_tuning.py"
SPLIT = {"train_test_split": 0.75, "random_seed": 42}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def trainer_split(dataset, ontology_ttl: str):
    """The trainer's own training and test rows and input columns for `dataset` (what a run trains on)."""
    from trainer.ontology import choose_target, parse_columns
    from trainer.pipeline import encode_target, plan_features, prepare_rows, split_positions
    from trainer.spec import TrainingConfig

    config = TrainingConfig.from_dict({**SPLIT, "target_column": dataset.target})
    columns = parse_columns(ontology_ttl)
    target = choose_target(columns, dataset.target)
    frame, y_raw, task = prepare_rows(dataset.frame, target)
    _, y = encode_target(y_raw, task)
    features = [c.name for c in plan_features(frame, columns, target).features]
    positions = split_positions(y, task, config)
    train = sorted([*positions["fit"], *positions["validation"]])
    x = frame[features].copy()
    for name in features:
        if x[name].dtype == object or str(x[name].dtype) in ("string", "str"):
            x[name] = x[name].astype("category")
    return task, x.iloc[train], y[train], x.iloc[positions["test"]], y[positions["test"]]


def flaml_score(dataset, ontology_ttl: str, budget: float, seed: int) -> tuple[float, str]:
    from flaml import AutoML
    from sklearn.metrics import accuracy_score, r2_score

    task, x_train, y_train, x_test, y_test = trainer_split(dataset, ontology_ttl)
    automl = AutoML()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(x_train, y_train, task=task, time_budget=budget, seed=seed, verbose=0,
                   metric="accuracy" if task == "classification" else "r2")
        predicted = automl.predict(x_test)
    score = accuracy_score(y_test, predicted) if task == "classification" else r2_score(y_test, predicted)
    return float(score), str(automl.best_estimator)


def our_score(dataset, ontology_ttl: str, model_type: str, tuning: dict | None) -> tuple[float, dict]:
    from trainer.pipeline import train_and_evaluate

    config = {**SPLIT, "target_column": dataset.target, **({"tuning": tuning} if tuning else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train_and_evaluate(dataset.frame, ontology_ttl, model_type, config)
    metric = "accuracy" if result.task == "classification" else "r2"
    return float(result.performance_metrics[metric]), result.training_metrics.get("tuning") or {}


class MemoryS3:
    """The sampler's S3 adapter over one in-memory CSV object: the route's own sampling, without S3."""

    def __init__(self, key: str, data: bytes) -> None:
        self.key, self.data = key, data

    def list_objects(self, location, max_objects: int = 1000):
        from chalicelib.adapters.s3 import S3Object

        return [S3Object(key=self.key, size=len(self.data), etag="bench")]

    def read_range(self, location, key: str, start: int, end: int) -> bytes:
        return self.data[start:end + 1]


def recommended_type(dataset, ontology_ttl: str) -> str:
    """What POST /api/ml-models/recommend answers for this data: the route's function on its own sample."""
    from chalicelib.ontology import summarize
    from chalicelib.recommend.engine import recommend
    from chalicelib.recommend.sample import sample_storage

    uri = "s3://bench/data/"
    s3 = MemoryS3("data/part-0.csv", dataset.frame.to_csv(index=False).encode())
    sample = sample_storage(s3, {"id": "bench", "uri": uri, "format": "csv"})
    return recommend(summarize(ontology_ttl), [sample], dataset.target)["recommended_type"]


def heldout_tasks(n: int) -> list[str]:
    """n trained corpus tasks, alternating classification and regression, spread evenly over their sizes
    (300-5,000 rows), from groups outside the shipped selector's fitting set when selector.json lists one."""
    import json
    from pathlib import Path

    from bench import recommend_corpus as corpus

    selector = Path(__file__).resolve().parent.parent / "chalicelib" / "recommend" / "selector.json"
    fitted = set(json.loads(selector.read_text()).get("fitted_on_groups", [])) if selector.exists() else set()
    trained = corpus.load_corpus()["tasks"]
    by_kind: dict[str, list] = {"classification": [], "regression": []}
    for name, entry in trained.items():
        if not entry.get("errors") and 300 <= entry["rows"] <= 5000 and entry["group"] not in fitted:
            by_kind[entry["task"]].append((entry["rows"], name))
    chosen: list[str] = []
    used: set[str] = set()
    for kind, items in by_kind.items():
        items.sort()
        k = (n + (kind == "classification")) // 2
        step = max(1, len(items) // max(k, 1))
        picked = 0
        for start in range(0, len(items), step):  # one task per table: the first of its step not yet used
            for _, name in items[start:start + step]:
                if trained[name]["group"] not in used:
                    chosen.append(name)
                    used.add(trained[name]["group"])
                    picked += 1
                    break
            if picked == k:
                break
    return sorted(chosen)[:n]


def measure(task_names: list[str], budget: int, flaml_budget: int) -> list[dict]:
    from bench import recommend_corpus as corpus

    specs = {spec.name: spec for spec in corpus.tasks()}
    rows = []
    for name in task_names:
        dataset = corpus.load(specs[name])
        ttl = corpus.ontology_for(dataset)
        model_type = recommended_type(dataset, ttl)
        default, _ = our_score(dataset, ttl, model_type, None)
        started = time.perf_counter()
        tuned, search = our_score(dataset, ttl, model_type, {"budget_seconds": budget})
        tuned_wall = time.perf_counter() - started
        flaml, learner = flaml_score(dataset, ttl, flaml_budget, SPLIT["random_seed"])
        row = {"name": name, "task": dataset.task, "rows": len(dataset.frame), "type": model_type,
               "default": default, "tuned": tuned, "flaml": flaml, "flaml_learner": learner,
               "search_seconds": search.get("wall_seconds"), "run_seconds": tuned_wall,
               "trials": len(search.get("trials", [])), "best_params": search.get("best_params"),
               "selection": search.get("selection") or {}}
        rows.append(row)
        log(f"{name}: {model_type} default {default:.4f} tuned {tuned:.4f} ({row['trials']} trials, "
            f"{tuned_wall:.0f} s) FLAML {flaml:.4f} ({learner})")
    return rows


def report(rows: list[dict], budget: int, flaml_budget: int) -> str:
    table = markdown_table(
        ["task", "kind", "rows", "recommended type", "default", f"tuned {budget} s", f"FLAML {flaml_budget} s",
         "FLAML learner", "trials", "fitted", "CV gain ± SE", "search wall (s)", "run wall (s)"],
        [[r["name"], r["task"], r["rows"], r["type"], f"{r['default']:.4f}", f"{r['tuned']:.4f}",
          f"{r['flaml']:.4f}", r["flaml_learner"], r["trials"], fitted(r["selection"]), gain(r["selection"]),
          f"{r['search_seconds']:.1f}" if r["search_seconds"] is not None else "-", f"{r['run_seconds']:.1f}"]
         for r in rows])
    mean = {key: statistics.fmean(r[key] for r in rows) for key in ("default", "tuned", "flaml")}
    below = [r["name"] for r in rows if r["tuned"] < r["default"]]
    kept = sum(1 for r in rows if r["selection"].get("kept_defaults"))
    longest = max(r["search_seconds"] or 0 for r in rows)
    return (
        f"The recommended type of each held-out task (the route's own choice), trained by our trainer with its "
        f"defaults and with `training_config.tuning = {{\"budget_seconds\": {budget}}}` (Optuna, 3-fold CV on "
        f"the training split, repeated twice below 2,000 rows; the top trial is fitted only if it beats the "
        f"defaults by more than one standard error of the per-fold differences; see README, Tuning), "
        f"against FLAML (`flaml.AutoML`, default learners, "
        f"`time_budget={flaml_budget}`) fitted on the trainer's own training rows and scored on its test rows. "
        "Scores: test accuracy (classification) or R² (regression), one split (train_test_split 0.75, "
        "random_seed 42).\n\n"
        f"{table}\n\n"
        f"**Means over {len(rows)} tasks**: default {mean['default']:.4f}, tuned {mean['tuned']:.4f}, "
        f"FLAML {mean['flaml']:.4f} (tuned − FLAML: {mean['tuned'] - mean['flaml']:+.4f}; tuned − default: "
        f"{mean['tuned'] - mean['default']:+.4f}).\n\n"
        f"Tuned below its default on the test split: {len(below)} of {len(rows)}"
        f"{' (' + ', '.join(below) + ')' if below else ''}. The defaults were kept (gain within one standard "
        f"error) on {kept} of {len(rows)}. The longest search took {longest:.1f} s of its "
        f"{budget} s budget.\n"
    )


def fitted(selection: dict) -> str:
    if not selection:
        return "-"
    if selection.get("kept_defaults"):
        return "defaults (kept)"
    return "defaults" if selection.get("top_trial") == 0 else f"trial {selection['top_trial']}"


def gain(selection: dict) -> str:
    if selection.get("gain_over_defaults") is None or selection.get("standard_error") is None:
        return "-"
    return f"{selection['gain_over_defaults']:+.4f} ± {selection['standard_error']:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--flaml-budget", type=int, default=20)
    parser.add_argument("--datasets", type=int, default=12)
    args = parser.parse_args(argv)
    rows = measure(heldout_tasks(args.datasets), args.budget, args.flaml_budget)
    body = report(rows, args.budget, args.flaml_budget)
    print(body)
    write_section(SECTION, "Tuning: tuned type vs its defaults vs FLAML", body, order=75)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
