"""Synthetic training data from an ontology, for specs without storage ("demo" runs).

Each datatype property gets a column of its kind; the target is a seeded function of
the features plus noise, so a model that learns anything beats chance clearly.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.naming import is_identifier_name
from trainer.ontology import Column

CATEGORIES_PER_COLUMN = 5
MISSING_FRACTION = 0.02
NOISE = 0.2
CLASS_COUNT = 3
_TEXT_HINTS = ("description", "comment", "text", "note", "summary", "review")
_WORDS = "alpha beta gamma delta epsilon model data signal value metric sample feature".split()


def synthetic_frame(columns: list[Column], target: Column, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data, score = {}, np.zeros(rows)
    for column in columns:
        if column.name == target.name:
            continue
        values, signal = _feature(column, rows, rng)
        if signal is not None:
            score += rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0]) * signal
            values = _with_missing(values, rng)
        data[column.name] = values
    score = (score - score.mean()) / (score.std() or 1.0) + rng.normal(0.0, NOISE, rows)
    data[target.name] = _target(target, score)
    return pd.DataFrame(data)


def _feature(column: Column, rows: int, rng) -> tuple[pd.Series, np.ndarray | None]:
    """(values, standardised signal); identifiers and free text carry no signal."""
    if is_identifier_name(column.name):
        return pd.Series([f"{column.name}-{i:07d}" for i in range(rows)]), None
    if column.kind == "number":
        z = rng.normal(size=rows)
        return pd.Series(z * rng.uniform(1, 10) + rng.uniform(-50, 50)), z
    if column.kind == "integer":
        values = rng.integers(0, 100, size=rows)
        return pd.Series(values.astype("float64")), (values - 49.5) / 28.9
    if column.kind == "boolean":
        values = rng.random(rows) < 0.5
        return pd.Series(values, dtype=object), np.where(values, 1.0, -1.0)
    if column.kind == "datetime":
        days = rng.integers(0, 5 * 365, size=rows)
        stamps = pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")
        return pd.Series(stamps.strftime("%Y-%m-%dT%H:%M:%S")), np.sin(2 * np.pi * stamps.month.to_numpy() / 12) * 1.4
    if any(hint in column.name.lower() for hint in _TEXT_HINTS):
        sentences = [" ".join(rng.choice(_WORDS, size=12)) for _ in range(rows)]
        return pd.Series(sentences), None
    effects = rng.normal(size=CATEGORIES_PER_COLUMN)
    effects = (effects - effects.mean()) / (effects.std() or 1.0)
    picks = rng.integers(0, CATEGORIES_PER_COLUMN, size=rows)
    return pd.Series([f"{column.name}_{chr(97 + p)}" for p in picks]), effects[picks]


def _with_missing(values: pd.Series, rng) -> pd.Series:
    mask = rng.random(len(values)) < MISSING_FRACTION
    out = values.astype(object)
    out[mask] = None
    return out


def _target(target: Column, score: np.ndarray) -> pd.Series:
    if target.kind in ("number", "datetime"):
        return pd.Series(10.0 + 3.0 * score)
    if target.kind == "boolean":
        return pd.Series(score > np.median(score))
    cuts = np.quantile(score, np.linspace(0, 1, CLASS_COUNT + 1)[1:-1])
    bins = np.digitize(score, cuts)
    if target.kind == "integer":
        return pd.Series(bins.astype("int64"))
    return pd.Series([f"class_{chr(97 + b)}" for b in bins])
