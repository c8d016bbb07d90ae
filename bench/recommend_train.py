"""Ground truth for the recommender benchmark: every model type trained on every dataset.

Each dataset is trained with our trainer (`trainer.pipeline.train_and_evaluate`) for the four
types on the same split and seed; the held-out metric (accuracy or R²) is cached in
`bench/recommend_scores.json`, keyed by the CSV's sha256 and the training config, so reruns
only train what changed.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

SCORES = Path(__file__).resolve().parent / "recommend_scores.json"
MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
TRAINING_CONFIG = {"train_test_split": 0.75, "random_seed": 42}


def csv_bytes(frame) -> bytes:
    return frame.to_csv(index=False).encode()


def load_cache() -> dict:
    if SCORES.exists():
        return json.loads(SCORES.read_text())
    return {"training_config": TRAINING_CONFIG, "datasets": {}}


def save_cache(cache: dict) -> None:
    cache["datasets"] = dict(sorted(cache["datasets"].items()))
    SCORES.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")


def train_all_types(dataset, ontology_ttl: str) -> dict:
    from trainer.pipeline import train_and_evaluate

    metric = "accuracy" if dataset.task == "classification" else "r2"
    scores, seconds, errors = {}, {}, {}
    for model_type in MODEL_TYPES:
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = train_and_evaluate(dataset.frame, ontology_ttl, model_type,
                                            {**TRAINING_CONFIG, "target_column": dataset.target})
            scores[model_type] = round(float(result.performance_metrics[metric]), 6)
            if result.task != dataset.task:
                errors[model_type] = f"trainer inferred {result.task}"
        except Exception as exc:  # a failed type is recorded, and the dataset is left out of the scores
            errors[model_type] = f"{type(exc).__name__}: {exc}"[:300]
        seconds[model_type] = round(time.perf_counter() - started, 2)
    return {"task": dataset.task, "metric": metric, "rows": len(dataset.frame),
            "columns": len(dataset.frame.columns), "scores": scores, "seconds": seconds, "errors": errors}


def ground_truth(datasets: list, ontologies: dict[str, str], log=print) -> dict[str, dict]:
    """Scores per dataset and type, from the cache where the data and config are unchanged."""
    cache = load_cache()
    if cache.get("training_config") != TRAINING_CONFIG:
        cache = {"training_config": TRAINING_CONFIG, "datasets": {}}
    for dataset in datasets:
        digest = hashlib.sha256(csv_bytes(dataset.frame)).hexdigest()
        entry = cache["datasets"].get(dataset.name)
        if entry is not None and entry.get("csv_sha256") == digest:
            continue
        started = time.perf_counter()
        entry = train_all_types(dataset, ontologies[dataset.name])
        entry["csv_sha256"] = digest
        cache["datasets"][dataset.name] = entry
        save_cache(cache)
        log(f"trained {dataset.name} in {time.perf_counter() - started:.1f}s: {entry['scores']} {entry['errors']}")
    return {d.name: cache["datasets"][d.name] for d in datasets}
