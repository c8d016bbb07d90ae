"""One recommendation from an ontology summary and data samples: analysis, scores, choice, reasons.

Pure (no I/O): the service reads the ontology and the samples, this decides. The benchmark
calls the same functions, so what it measures is what the route answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.ontology import OntologySummary
from chalicelib.recommend import probes as probe_lib
from chalicelib.recommend import scoring
from chalicelib.recommend.profile import analyze_ontology, choose_target, profile_data
from chalicelib.recommend.sample import BOUND, Sample, merge_rows
from chalicelib.recommend.selector import TOLERANCE, Selector, load_selector


@dataclass
class Analysis:
    """What the recommender learns from the ontology and the samples before it scores any type: the input of
    the selector, and what the benchmark caches per corpus task (`bench/recommend_meta.py`)."""

    target: str | None
    target_source: str
    task: str
    ontology: dict[str, Any]
    data: dict[str, Any]
    probes: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "target_source": self.target_source, "task": self.task,
                "ontology": self.ontology, "data": self.data, "probes": self.probes}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Analysis:
        return cls(raw["target"], raw["target_source"], raw["task"], raw["ontology"], raw["data"], raw["probes"])


def analyze(summary: OntologySummary, samples: list[Sample], target_column: str | None = None) -> Analysis:
    target, source = choose_target(summary, target_column)
    ontology = analyze_ontology(summary, target)
    data, features, target_col = analyze_data(summary, samples, target)
    task = data.get("target", {}).get("task", "unknown")
    probes = run_probes(features, target_col, task)
    if probes is not None:
        data["probes"] = probes
    return Analysis(target, source, task, ontology, data, probes)


def recommend(summary: OntologySummary, samples: list[Sample], target_column: str | None = None,
              selector: Selector | None = None) -> dict[str, Any]:
    return decide(analyze(summary, samples, target_column), selector)


def decide(analysis: Analysis, selector: Selector | None = None) -> dict[str, Any]:
    """Scores, choice and reasons from an analysis: what the route answers and the benchmark measures."""
    selector = selector or load_selector()
    target, source = analysis.target, analysis.target_source
    ontology, data, probes = analysis.ontology, dict(analysis.data), analysis.probes
    task = analysis.task
    if task == "unknown" and data.get("status") != "sampled" and ontology.get("target_task") in selector.priors:
        task = ontology["target_task"]  # no rows: the ontology's range decides (boolean/enumerated: classes)
    if probes is not None and task in selector.models:
        probabilities = selector.probabilities(task, data, probes)
        basis = "calibrated_probability"
        facts = probe_facts(task, probes)
    else:
        probabilities = selector.prior(task)
        basis = "base_rate"
        facts = [base_rate_fact(task, selector)]
    scores = {t: round(100 * probabilities[t], 1) for t in scoring.MODEL_TYPES}
    pick = scoring.choose(scores)
    reasoning = [ontology_sentence(ontology), data_sentence(data),
                 target_sentence(data, ontology, target, source, task, basis)]
    reasoning += facts + [choice_sentence(pick, scores, basis)]
    data.pop("profile_summary", None)
    return {
        "recommended_type": pick,
        "score": scores[pick],
        "all_scores": scores,
        "score_basis": basis,
        "task": task,
        "reasoning": " ".join(reasoning),
        "ontology_analysis": ontology,
        "data_analysis": data,
    }


def analyze_data(summary: OntologySummary, samples: list[Sample], target: str | None) -> tuple[dict, list, Any]:
    data: dict[str, Any] = {
        "storage_configs": [s.describe() for s in samples],
        "sampling_bound": BOUND,
        "problems": [p for s in samples for p in s.problems],
    }
    if not samples:
        data["status"] = "no_data"
        data["message"] = "no storage config holds data for this ontology; the recommendation uses the ontology only"
        return data, [], None
    estimates = [s.estimated_rows for s in samples]
    data["estimated_rows"] = sum(e for e in estimates if e is not None) if any(e is not None for e in estimates) \
        else None
    data["row_count_exact"] = all(s.row_count_exact for s in samples)
    data["bytes_read"] = sum(s.bytes_read for s in samples)
    data["total_bytes"] = sum(s.total_bytes for s in samples)
    names, rows = merge_rows(samples)
    data["rows_sampled"] = len(rows)
    if not rows:
        data["status"] = "unreadable"
        data["message"] = "no rows could be sampled; the recommendation uses the ontology only"
        return data, [], None
    data["status"] = "sampled"
    analysed = profile_data(summary, names, rows, target)
    data.update(analysed["profile"])
    data["profile_summary"] = analysed["profile"]
    return data, analysed["features"], analysed["target_column"]


def run_probes(features: list, target_col: Any, task: str) -> dict[str, Any] | None:
    if target_col is None or task not in ("classification", "regression") or not features:
        return None
    problem = probe_lib.encode(features, target_col, task)
    if problem is None or (task == "classification" and problem.classes < 2):
        return None
    scores = probe_lib.cross_validate(problem)
    return {
        **scores,
        "metric": "accuracy" if task == "classification" else "r2",
        "rows": len(problem.y),
        "folds": probe_lib.FOLDS,
        "tree_depth": probe_lib.TREE_DEPTH,
        "encoded_dims": problem.dims,
        "features_used": problem.features_used,
        "features_total": problem.features_total,
    }


def ontology_sentence(o: dict[str, Any]) -> str:
    return (
        f"The ontology declares {o['classes']} class(es), {o['datatype_properties']} datatype properties "
        f"({o['numeric_properties']} numeric, {o['categorical_properties']} categorical, "
        f"{o['datetime_properties']} date/time) and {o['object_properties']} object properties; "
        f"its complexity is {o['complexity']}."
    )


def data_sentence(d: dict[str, Any]) -> str:
    if d["status"] == "no_data":
        return "No data is bound to this ontology, so the recommendation falls back on the ontology alone."
    if d["status"] == "unreadable":
        problem = d["problems"][0] if d["problems"] else "no rows"
        return f"No rows could be sampled ({problem}), so the recommendation falls back on the ontology."
    total = d["estimated_rows"]
    size = f"{'exactly' if d['row_count_exact'] else 'about'} {total:,} rows" if total is not None else "unknown size"
    text = (
        f"Sampled {d['rows_sampled']:,} rows ({d['bytes_read']:,} of {d['total_bytes']:,} bytes read) from "
        f"{len(d['storage_configs'])} storage config(s) of {size}: {d['feature_count']} usable features, "
        f"{d['numeric_features']} numeric and {d['categorical_features']} categorical, "
        f"{100 * d['missing_share']:.1f}% of values missing."
    )
    if d["has_free_text"]:
        text += f" Free-text columns ({', '.join(d['free_text_columns'][:5])}) are left out by training."
    if d["problems"]:
        text += f" {len(d['problems'])} problem(s) were found in the data (see data_analysis.problems)."
    return text


def target_sentence(d: dict[str, Any], o: dict[str, Any], target: str | None, source: str, task: str,
                    basis: str) -> str:
    if target is None:
        return ("There is no target (no target_column, and no datatype property named 'label' or 'target'), "
                "so the task is unknown and the scores are base rates over every corpus task.")
    described = d.get("target")
    if described is None:
        if task != "unknown":
            return (f"The target is '{target}' (from {source}); without sampled rows the ontology decides the "
                    f"task: its range is {o.get('target_kind')}, which makes this {task}.")
        return (f"The target is '{target}' (from {source}); without sampled rows its task is unknown "
                f"(an integer range can be classes or a quantity).")
    if described["task"] == "unknown":
        return f"The target is '{target}' (from {source}) but {described['why']}, so the scores are base rates."
    text = f"The target '{target}' (from {source}) makes this {described['task']}, because {described['why']}"
    balance = described.get("class_balance")
    if balance and balance.get("classes"):
        text += (f"; {balance['classes']} classes, the largest holds {100 * balance['majority_share']:.0f}% of "
                 f"sampled rows and the smallest {100 * balance['minority_share']:.0f}%")
    if basis == "base_rate":
        text += "; too few usable rows for the probes, so the scores are base rates"
    return text + "."


def probe_facts(task: str, probes: dict[str, Any]) -> list[str]:
    metric = "accuracy" if task == "classification" else "R²"
    linear, tree = probes["linear"], probes["tree"]
    facts = [
        f"On {probes['rows']:,} sampled rows ({probes['folds']}-fold cross-validation), a linear model reaches "
        f"{metric} {linear:.3f} and a depth-{probes['tree_depth']} tree {tree:.3f}."
    ]
    if tree - linear > 0.02:
        facts.append(f"The tree beats the linear fit by {tree - linear:.3f}: the target depends on the features "
                     "non-linearly.")
    elif linear - tree > 0.02:
        facts.append(f"The linear fit beats the tree by {linear - tree:.3f}: the relation is close to linear.")
    else:
        facts.append("The linear fit and the tree are within 0.02 of each other.")
    return facts


def base_rate_fact(task: str, selector: Selector) -> str:
    kind = f"{task} tasks" if task in ("classification", "regression") else "tasks of either kind"
    return (f"No probe could run, so each score is how often that type was within {TOLERANCE} of the best "
            f"type on the {kind} of the selector's corpus.")


def choice_sentence(pick: str, scores: dict[str, float], basis: str) -> str:
    ranked = sorted(scores, key=lambda t: (-scores[t], scoring.TIE_ORDER.index(t)))
    runner = ranked[1]
    what = ("the calibrated probability" if basis == "calibrated_probability"
            else "the base rate")
    text = (f"Recommended: {pick}; {what} that it scores within {TOLERANCE} of the best of the four types is "
            f"{scores[pick]:.1f}%, ahead of {runner} ({scores[runner]:.1f}%).")
    if scores[runner] == scores[pick]:
        text += f" The tie is broken by the fixed order {', '.join(scoring.TIE_ORDER)}."
    return text
