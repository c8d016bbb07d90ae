"""Reference distributions of a model's inputs and outputs, and the population stability index (PSI).

Pure (numpy and pandas): no I/O, no scikit-learn. Values are coerced the way the model coerces them
(`trainer.coercion.coerce_column`), so an unparseable value counts as missing here too (as does an infinite
number).

**Reference** (`reference(series, kind)`), computed on the training split when a model is trained and
stored in its manifest (`manifest["reference"]`):

- integer, number, boolean (0/1) and datetime (seconds since 1970-01-01 UTC) columns are numeric:
  ``{"type": "numeric", "edges": [...], "fractions": [...], "null_fraction", "count"}``. The edges are the
  deduplicated interior quantiles q(1/k) .. q((k-1)/k) of the non-null values (k = 10 bins by default);
  the bins are the right-closed intervals between consecutive edges, open at both ends:
  (-inf, e0], (e0, e1], ..., (e_last, +inf). When the smallest value is itself the first edge (a point
  mass at the minimum: a constant column, a zero-inflated or clipped one), the largest float below it is
  added as an edge, so values below the training range get a bin of their own, as values above it already
  do. A constant column thus has a single populated bin, [c, c], between two empty ones. Edges are kept
  at full float precision: a bin's membership must not change on the way through JSON.
- string columns are categorical: ``{"type": "categorical", "categories": {value: fraction},
  "null_fraction", "count"}`` with the MAX_CATEGORIES most frequent values (ties by value) and
  ``"__other__"`` for the rest (always present, 0 when nothing was pooled).
- fractions are of all `count` values, so the bins' fractions plus `null_fraction` sum to 1; they are
  rounded to 6 significant digits.

**PSI** (`psi(reference, series, kind)`) compares the distribution of `series` (a, "actual") with the
reference (e, "expected") over the reference's bins plus one bin for missing values:

    PSI = sum over bins of (a_i - e_i) * ln(a_i / e_i),  a_i, e_i floored at EPSILON = 1e-4

A value that fits no numeric bin cannot exist (the ends are open); a category outside the reference's
goes to ``"__other__"``. The floor keeps an empty bin on either side finite: a bin that is empty in
training but holds 20 % of the new values adds 0.2 * ln(0.2 / 1e-4) = 1.52. No values at all gives
None (not enough data). Rules of thumb: below 0.1 no significant shift, 0.1-0.25 moderate, above 0.25
a major shift. With B bins and n, m values on the two sides, two samples of one distribution give
PSI ≈ (B - 1) * (1/n + 1/m) by chance alone.

For data read in batches, sum `bin_counts` over the batches and call `psi_from_counts`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from trainer.coercion import coerce_column

DEFAULT_BINS = 10
MAX_CATEGORIES = 50
OTHER = "__other__"
EPSILON = 1e-4
NUMERIC_KINDS = frozenset({"integer", "number", "boolean", "datetime"})


def reference(series: pd.Series, kind: str, bins: int = DEFAULT_BINS) -> dict:
    """The distribution of `series` (one column of the training split) as a JSON-ready reference."""
    count = len(series)
    if kind in NUMERIC_KINDS:
        values = numeric_values(series, kind)
        present = values[~np.isnan(values)]
        edges = _edges(present, bins)
        binned = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
        return {"type": "numeric", "edges": edges.tolist(), "fractions": _fractions(binned, count),
                "null_fraction": _fraction(count - len(present), count), "count": count}
    text = coerce_column(series, "string")
    frequencies = text.value_counts(dropna=True)
    ranked = sorted(frequencies.items(), key=lambda item: (-item[1], str(item[0])))
    kept = dict(ranked[:MAX_CATEGORIES])
    kept.pop(OTHER, None)  # a real value named like the pool is pooled with it
    pooled = int(frequencies.sum()) - sum(kept.values())
    categories = {str(name): _fraction(n, count) for name, n in kept.items()}
    categories[OTHER] = _fraction(pooled, count)
    return {"type": "categorical", "categories": categories,
            "null_fraction": _fraction(count - int(frequencies.sum()), count), "count": count}


def bin_counts(ref: Mapping, series: pd.Series, kind: str) -> np.ndarray:
    """How many values of `series` fall in each of the reference's bins; the last entry counts missing values."""
    if ref["type"] == "numeric":
        values = numeric_values(series, kind)
        missing = np.isnan(values)
        edges = np.asarray(ref["edges"], dtype="float64")
        counts = np.bincount(np.searchsorted(edges, values[~missing], side="left"), minlength=len(edges) + 1)
        return np.append(counts, int(missing.sum()))
    text = coerce_column(series, "string")
    missing = text.isna()
    names = list(ref["categories"])
    position = {name: i for i, name in enumerate(names)}
    index = text[~missing].map(position).fillna(position[OTHER]).to_numpy(dtype="int64")
    return np.append(np.bincount(index, minlength=len(names)), int(missing.sum()))


def psi_from_counts(ref: Mapping, counts: np.ndarray) -> float | None:
    """PSI of observed `bin_counts` against the reference; None when nothing was observed."""
    total = int(np.sum(counts))
    if total == 0:
        return None
    expected = np.maximum(expected_fractions(ref), EPSILON)
    actual = np.maximum(np.asarray(counts, dtype="float64") / total, EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi(ref: Mapping, series: pd.Series, kind: str) -> float | None:
    """The population stability index of `series` against `ref` (None for an empty series)."""
    if len(series) == 0:
        return None
    return psi_from_counts(ref, bin_counts(ref, series, kind))


def psi_report(references: Mapping[str, Mapping], frame: pd.DataFrame,
               kinds: Mapping[str, str]) -> dict[str, float | None]:
    """PSI of each referenced column of `frame` (None: the column is absent, or there are no rows)."""
    return {name: (psi(ref, frame[name], kinds[name]) if name in frame.columns else None)
            for name, ref in references.items()}


def expected_fractions(ref: Mapping) -> np.ndarray:
    """The reference's fractions in `bin_counts` order: its bins, then missing values."""
    shares = ref["fractions"] if ref["type"] == "numeric" else list(ref["categories"].values())
    return np.asarray([*shares, ref["null_fraction"]], dtype="float64")


def numeric_values(series: pd.Series, kind: str) -> np.ndarray:
    """float64 values of a numeric kind (datetimes as seconds since the epoch), NaN where missing."""
    coerced = coerce_column(series, kind)
    if kind != "datetime":
        values = coerced.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        values[np.isinf(values)] = np.nan  # no bin edge may be infinite (JSON has no infinity)
        return values
    stamps = coerced.to_numpy(dtype="datetime64[ns]")
    seconds = stamps.astype("int64").astype("float64") / 1e9
    seconds[np.isnat(stamps)] = np.nan
    return seconds


def _edges(present: np.ndarray, bins: int) -> np.ndarray:
    if len(present) == 0 or bins < 2:
        return np.empty(0, dtype="float64")
    edges = np.unique(np.quantile(present, np.arange(1, bins) / bins))
    low = float(present.min())
    if edges[0] == low:  # a point mass at the minimum: keep what falls below it apart
        edges = np.concatenate([[np.nextafter(low, -math.inf)], edges])
    return edges


def _fractions(counts: np.ndarray, total: int) -> list[float]:
    return [_fraction(int(n), total) for n in counts]


def _fraction(part: int, total: int) -> float:
    return float(f"{part / total:.6g}") if total else 0.0
