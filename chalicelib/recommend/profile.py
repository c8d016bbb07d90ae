"""What the recommender knows about a dataset: the ontology's shape and the sampled columns.

The ontology is read with rdflib (`chalicelib.ontology.summarize`), never by string
matching. Columns are typed by the ontology's xsd ranges, as the trainer types them;
the rules that decide a task, free text and identifier columns mirror the trainer's
(`trainer/features.py`), so the recommender analyses the data the trainer will see.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chalicelib.naming import (  # the rules the trainer applies (trainer/naming.py)
    FREE_TEXT_MEAN_LENGTH,
    HIGH_CARDINALITY_RATIO,
    MAX_CLASSES_FOR_INTEGER_TARGET,
    MAX_ONE_HOT_CATEGORIES,
    MIN_ROWS_FOR_UNIQUENESS_RULE,
    TARGET_NAMES,
    is_identifier_name,
)
from chalicelib.ontology import OntologySummary

# More distinct values than the trainer one-hot encodes (the rest share one bucket).
HIGH_CARDINALITY = MAX_ONE_HOT_CATEGORIES


@dataclass
class Column:
    name: str
    kind: str  # integer, number, string, boolean, datetime
    values: list[str | None] = field(default_factory=list, repr=False)

    @property
    def numeric(self) -> bool:
        return self.kind in ("integer", "number")


def column_kind(prop: Any) -> str:
    return prop.column_kind


def analyze_ontology(summary: OntologySummary, target: str | None) -> dict[str, Any]:
    props = summary.datatype_properties
    kinds = Counter(column_kind(p) for p in props)
    numeric = kinds["integer"] + kinds["number"]
    categorical = kinds["string"] + kinds["boolean"]
    n_classes, n_object = len(summary.classes), len(summary.object_properties)
    weight = n_classes + n_object + len(props) / 5
    complexity = "simple" if weight <= 6 else "moderate" if weight <= 20 else "complex"
    declared = next((p for p in props if p.name == target), None) if target else None
    target_kind = column_kind(declared) if declared is not None else None
    return {
        "target_kind": target_kind,
        "target_task": ontology_task(target_kind),
        "classes": n_classes,
        "class_names": [c["name"] for c in summary.classes][:50],
        "datatype_properties": len(props),
        "object_properties": n_object,
        "properties_by_range": dict(sorted(Counter(p.range or "(none)" for p in props).items())),
        "numeric_properties": numeric,
        "categorical_properties": categorical,
        "datetime_properties": kinds["datetime"],
        "numeric_share": _share(numeric, len(props)),
        "categorical_share": _share(categorical, len(props)),
        "complexity": complexity,
        "complexity_weight": round(weight, 2),
        "target": target,
        "triples": summary.triples,
    }


def ontology_task(kind: str | None) -> str:
    """The task the target's declared range alone implies, as the trainer would type the column: a
    boolean, string or enumerated (`owl:oneOf`, any non-XSD range) target is classes; a decimal is a
    quantity; an integer can be either (the trainer decides by its distinct values), so it is unknown."""
    if kind in ("string", "boolean"):
        return "classification"
    if kind == "number":
        return "regression"
    return "unknown"


def choose_target(summary: OntologySummary, target_column: str | None) -> tuple[str | None, str]:
    """The target property's name and where it came from ('' when there is none)."""
    names = {p.name for p in summary.datatype_properties}
    if target_column is not None:
        return target_column, "target_column"
    for name in TARGET_NAMES:
        if name in names:
            return name, f"the ontology's '{name}' property"
    return None, ""


def _share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def to_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def typed_columns(summary: OntologySummary, names: list[str], rows: list[dict]) -> tuple[list[Column], list[str]]:
    """Sample columns typed by the ontology (those it declares), plus notes on mismatches."""
    props = {p.name: p for p in summary.datatype_properties}
    notes = []
    declared = [n for n in names if n in props]
    missing = sorted(set(props) - set(names))
    extra = [n for n in names if n not in props]
    if missing:
        notes.append(f"declared in the ontology but missing from the data: {', '.join(missing[:20])}")
    if extra:
        notes.append(f"in the data but not in the ontology (training ignores them): {', '.join(extra[:20])}")
    if declared:
        return [Column(n, column_kind(props[n]), [r.get(n) for r in rows]) for n in declared], notes
    notes.append("no sampled column is declared by the ontology; column types were inferred from the values")
    return [Column(n, _infer_kind([r.get(n) for r in rows]), [r.get(n) for r in rows]) for n in names], notes


def _infer_kind(values: list[str | None]) -> str:
    present = [v for v in values if v is not None]
    if present and sum(to_float(v) is not None for v in present) >= 0.95 * len(present):
        return "number"
    return "string"


def column_stats(column: Column) -> dict[str, Any]:
    present = [v for v in column.values if v is not None]
    n = len(column.values)
    stats: dict[str, Any] = {
        "name": column.name, "kind": column.kind, "missing_share": _share(n - len(present), n),
        "distinct": len(set(present)),
    }
    if column.numeric:
        bad = sum(to_float(v) is None for v in present)
        if bad:
            stats["non_numeric_values"] = bad
    elif column.kind == "string" and present:
        stats["mean_length"] = round(sum(len(v) for v in present) / len(present), 1)
    stats["excluded"] = exclusion_reason(column, present, stats)
    return stats


def exclusion_reason(column: Column, present: list[str], stats: dict[str, Any]) -> str | None:
    """Why the trainer would drop this column (identifier or free text), as trainer/features.py decides."""
    if is_identifier_name(column.name):
        return "identifier-like name"
    if column.kind != "string" or not present:
        return None
    if len(present) >= MIN_ROWS_FOR_UNIQUENESS_RULE and stats["distinct"] == len(present):
        return "identifier-like: a distinct value in every row"
    if stats.get("mean_length", 0) > FREE_TEXT_MEAN_LENGTH:
        return "free text"
    if len(present) >= MIN_ROWS_FOR_UNIQUENESS_RULE and stats["distinct"] > HIGH_CARDINALITY_RATIO * len(present):
        return "free text / high cardinality"
    return None


def target_task(column: Column) -> tuple[str, str]:
    """(task, why) as the trainer infers it from the target's kind and values."""
    if column.kind in ("string", "boolean"):
        return "classification", f"its range is {column.kind}"
    if column.kind == "integer":
        distinct = len({to_float(v) for v in column.values if to_float(v) is not None})
        if distinct <= MAX_CLASSES_FOR_INTEGER_TARGET:
            return "classification", f"it is an integer with {distinct} distinct values"
        return "regression", f"it is an integer with {distinct} distinct values (over {MAX_CLASSES_FOR_INTEGER_TARGET})"
    if column.kind == "number":
        return "regression", "its range is a decimal number"
    return "unknown", f"a {column.kind} target cannot be predicted"


def class_balance(values: list[str | None]) -> dict[str, Any]:
    counts = Counter(v for v in values if v is not None)
    total = sum(counts.values())
    if not total:
        return {"classes": 0}
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "classes": len(counts),
        "majority_share": _share(ordered[0][1], total),
        "minority_share": _share(ordered[-1][1], total),
        "counts": dict(ordered[:20]),
    }


def profile_data(summary: OntologySummary, names: list[str], rows: list[dict], target: str | None) -> dict[str, Any]:
    """The data part of the analysis, plus the typed feature and target columns the probes use."""
    columns, notes = typed_columns(summary, names, rows)
    stats = [column_stats(c) for c in columns]
    by_name = {c.name: c for c in columns}
    features = [c for c, s in zip(columns, stats, strict=True) if c.name != target and not s["excluded"]]
    feature_stats = [s for s in stats if s["name"] != target and not s["excluded"]]
    numeric = sum(c.numeric for c in features)
    categorical = sum(c.kind in ("string", "boolean") for c in features)
    cells = sum(len(c.values) for c in features)
    missing = sum(v is None for c in features for v in c.values)
    high = [s["name"] for s in feature_stats if s["kind"] == "string" and s["distinct"] > HIGH_CARDINALITY]
    free_text = [s["name"] for s in stats if s.get("excluded") == "free text"]
    profile = {
        "feature_count": len(features),
        "numeric_features": numeric,
        "categorical_features": categorical,
        "datetime_features": sum(c.kind == "datetime" for c in features),
        "numeric_share": _share(numeric, len(features)),
        "missing_share": _share(missing, cells),
        "max_cardinality": max((s["distinct"] for s in feature_stats if s["kind"] == "string"), default=0),
        "high_cardinality_features": high,
        "has_free_text": bool(free_text),
        "free_text_columns": free_text,
        "excluded_columns": {s["name"]: s["excluded"] for s in stats if s["excluded"]},
        "columns": stats[:100],
        "notes": notes,
        "target": describe_target(by_name.get(target), target),
    }
    return {"profile": profile, "features": features, "target_column": by_name.get(target)}


def describe_target(column: Column | None, name: str | None) -> dict[str, Any]:
    if name is None:
        return {"name": None, "task": "unknown",
                "why": "no target: give target_column, or name a datatype property 'label' or 'target'"}
    if column is None:
        return {"name": name, "task": "unknown", "why": f"the target '{name}' is not in the sampled data"}
    task, why = target_task(column)
    described: dict[str, Any] = {"name": name, "kind": column.kind, "task": task, "why": why}
    if task == "classification":
        described["class_balance"] = class_balance(column.values)
    elif task == "regression":
        numbers = [x for x in (to_float(v) for v in column.values) if x is not None]
        if numbers:
            mean = sum(numbers) / len(numbers)
            std = math.sqrt(sum((x - mean) ** 2 for x in numbers) / len(numbers))
            described["summary"] = {"min": min(numbers), "max": max(numbers), "mean": round(mean, 6),
                                    "std": round(std, 6)}
    return described
