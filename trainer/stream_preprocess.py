"""The network's preprocessor fitted from streamed statistics (`trainer.stream_stats.FeatureStats`) instead of
from a DataFrame in memory; and the other types' (`preprocessor_of_frame`), fitted from a frame's exact
statistics in vectorised passes instead of by scikit-learn's own, much slower, fit.

The result is the very pipeline `trainer.features.build_preprocessor` makes (so it saves, loads and serves
like any other), fitted so that it transforms rows as one fitted on all the rows would:

- string columns: the one-hot encoder is fitted on a small prototype frame holding each level once, or, when
  there are more levels than `MAX_ONE_HOT_CATEGORIES` keeps, the levels the encoder would keep twice and the
  rest once. `OneHotEncoder` picks its frequent levels by a stable sort of the counts in category order, so
  the prototype's counts pick the same ones the real counts do (computed here with the same sort);
- numeric columns: the imputer's medians and the scaler's mean and variance are the statistics' own (the
  exact median; moments of the imputed values, `NumericStats.imputed_moments`), written over those of the
  prototype's fit, and the scaler's zero-variance rule is scikit-learn's.

Both the in-memory and the streamed training paths fit the network's preprocessor here, from the same blocks
of the same rows, so they agree to the bit; `tests/trainer/test_stream_preprocess.py` checks the result against
`build_preprocessor(...).fit(frame)` on the same rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.naming import MAX_ONE_HOT_CATEGORIES
from trainer.ontology import Column
from trainer.stream_stats import CategoricalStats, FeatureStats, NumericStats

MISSING_LEVEL = "__missing__"  # the string imputer's fill value (build_preprocessor)


def preprocessor_from_stats(features: list[Column], stats: FeatureStats, scale: bool = True):
    """A fitted `build_preprocessor(features, scale)` whose fitted state comes from `stats`."""
    from sklearn.preprocessing._data import _handle_zeros_in_scale, _is_constant_feature

    from trainer.features import build_preprocessor

    preprocessor, numeric, medians = _fitted_but_scaler(build_preprocessor(features, scale=scale), features, stats)
    if numeric and scale:
        steps = preprocessor.named_steps["encode"].named_transformers_["num"].named_steps
        moments = [stats.numeric[name].imputed_moments(median) for name, median in zip(numeric, medians,
                                                                                      strict=True)]
        scaler = steps["scale"]
        scaler.mean_ = np.array([mean for mean, _ in moments], dtype="float64")
        scaler.var_ = np.array([variance for _, variance in moments], dtype="float64")
        scaler.n_samples_seen_ = int(stats.rows)
        constant = _is_constant_feature(scaler.var_, scaler.mean_, scaler.n_samples_seen_)
        scaler.scale_ = _handle_zeros_in_scale(np.sqrt(scaler.var_), copy=False, constant_mask=constant)
    return preprocessor


def preprocessor_of_frame(features: list[Column], frame: pd.DataFrame, scale: bool):
    """`build_preprocessor(features, scale).fit(frame)`, fitted state and all, and the frame's transform.

    The same state, found faster on a large frame: scikit-learn's imputer finds a median by sorting a masked
    copy of every column, and the one-hot encoder (with `max_categories`) counts levels in a Python loop over
    every value, which together take most of a 1,000,000-row linear fit. Here the frame is coerced once, each
    median is `np.median` of the column's present values, the levels are counted by pandas, the encoder is
    fitted on the prototype those counts make (as `preprocessor_from_stats` does) and the scaler on the imputed
    values, as the pipeline's own fit would. Returns (preprocessor, design matrix of `frame`)."""
    from trainer.features import build_preprocessor

    preprocessor = build_preprocessor(features, scale=scale)
    numeric, categorical = preprocessor.named_steps["coerce"].output_columns()
    coerced = preprocessor.named_steps["coerce"].transform(frame)
    stats = FeatureStats(numeric={}, categorical={}, rows=len(coerced))
    for name in numeric:
        values = coerced[name].to_numpy(dtype="float64", na_value=np.nan)
        present = values[~np.isnan(values)]
        stats.numeric[name] = NumericStats(count=len(present), missing=len(values) - len(present),
                                           median=float(np.median(present)) if len(present) else 0.0,
                                           median_exact=True)
    for name in categorical:
        stats.categorical[name] = CategoricalStats(max_levels=len(coerced) + 1)  # every level counted
        stats.categorical[name].update(coerced[name])
    _fitted_but_scaler(preprocessor, features, stats)  # fits `preprocessor` in place
    encode = preprocessor.named_steps["encode"]
    if numeric and scale:
        steps = encode.named_transformers_["num"].named_steps
        steps["scale"].fit(steps["impute"].transform(coerced[numeric]))
    return preprocessor, encode.transform(coerced)


def _fitted_but_scaler(preprocessor, features: list[Column], stats: FeatureStats):
    """A `build_preprocessor` pipeline fitted on the prototype of `stats`, with the imputer's medians set from
    them: (preprocessor, numeric output columns, medians). The scaler's state, if any, is the caller's."""
    numeric, categorical = preprocessor.named_steps["coerce"].output_columns()
    preprocessor.fit(_prototype(features, categorical, stats))
    medians = np.array([_median(stats, name) for name in numeric], dtype="float64")
    if numeric:
        preprocessor.named_steps["encode"].named_transformers_["num"].named_steps["impute"].statistics_ = medians
    return preprocessor, numeric, medians


def _median(stats: FeatureStats, name: str) -> float:
    column = stats.numeric[name]
    if column.count == 0:
        return 0.0  # SimpleImputer(keep_empty_features=True) fills an all-missing column with 0
    return float(column.median)


def _prototype(features: list[Column], categorical: list[str],
               stats: FeatureStats) -> pd.DataFrame:
    """Raw rows whose fit gives the encoder the levels (and frequent levels) of `stats`. Numeric columns hold
    nothing (the imputer keeps empty columns), and their fitted state is overwritten afterwards."""
    levels = {name: _prototype_levels(stats.categorical[name]) for name in categorical}
    rows = max([len(values) for values, _ in levels.values()] + [1])
    columns: dict[str, object] = {}
    for name in categorical:
        values, pad = levels[name]
        columns[name] = pd.Series(values + [pad] * (rows - len(values)) if values else [np.nan] * rows,
                                  dtype=object)
    for column in features:
        if column.name not in columns:  # imputed as empty features here; their fitted state is overwritten
            columns[column.name] = pd.Series([np.nan] * rows, dtype="float64")
    return pd.DataFrame(columns)


def _prototype_levels(levels: CategoricalStats) -> tuple[list[str], str | None]:
    """Each level once, or twice for those `OneHotEncoder(max_categories=...)` keeps when it must choose; and
    the level that pads the column to the prototype's length (a kept one, so padding changes no choice)."""
    counts = dict(levels.counts)
    if levels.missing:
        counts[MISSING_LEVEL] = counts.get(MISSING_LEVEL, 0) + levels.missing
    names = sorted(counts)  # the encoder's category order
    if len(names) + 1 <= MAX_ONE_HOT_CATEGORIES:  # every level kept (the +1: the infrequent bucket's slot)
        return names, (names[0] if names else None)
    by_count = np.argsort(np.array([counts[name] for name in names]), kind="mergesort")
    kept = by_count[len(names) - (MAX_ONE_HOT_CATEGORIES - 1):]
    frequent = {names[i] for i in kept}
    return [name for name in names for _ in range(2 if name in frequent else 1)], names[kept[-1]]
