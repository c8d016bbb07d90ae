"""From ontology columns and a DataFrame to features, a task, and a preprocessing pipeline.

The preprocessing pipeline (type coercion, datetime parts, imputation, one-hot
encoding, optional scaling) is a scikit-learn object that is saved with the
model, so the artifact is the whole inference path from raw rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from trainer.coercion import coerce_column  # re-exported: the one coercion rule
from trainer.errors import TrainingFailed
from trainer.naming import (  # the thresholds the API's recommender applies too
    FREE_TEXT_MEAN_LENGTH,
    HIGH_CARDINALITY_RATIO,
    MAX_CLASSES_FOR_INTEGER_TARGET,
    MAX_ONE_HOT_CATEGORIES,
    MIN_ROWS_FOR_UNIQUENESS_RULE,
    is_identifier_name,
)
from trainer.ontology import Column

# A datetime column becomes these float columns, named `{column}__{part}` (names saved models depend on), each
# read from the pandas `.dt` accessor named beside it (pandas 3 deprecates `dayofweek` for `day_of_week`).
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour")
_DATETIME_ACCESSORS = {"year": "year", "month": "month", "day": "day", "dayofweek": "day_of_week", "hour": "hour"}


class FrameCoercer(TransformerMixin, BaseEstimator):
    """Selects the schema's feature columns from raw rows, coerces their types and expands datetimes.

    Missing columns become all-missing (and are then imputed); extra columns are ignored.
    Stateless apart from its parameters, so it persists safely with skops.
    """

    def __init__(self, names: list[str] | None = None, kinds: list[str] | None = None) -> None:
        self.names = names
        self.kinds = kinds

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn signature
        return self

    def transform(self, X):  # noqa: N803
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
        out = {}
        for name, kind in zip(self.names or [], self.kinds or [], strict=True):
            raw = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
            values = coerce_column(raw, kind)
            if kind == "datetime":
                for part in DATETIME_PARTS:
                    out[f"{name}__{part}"] = getattr(values.dt, _DATETIME_ACCESSORS[part]).astype("float64")
            else:
                out[name] = values
        return pd.DataFrame(out, index=frame.index)

    def output_columns(self) -> tuple[list[str], list[str]]:
        """(numeric, categorical) output column names, in output order."""
        numeric, categorical = [], []
        for name, kind in zip(self.names or [], self.kinds or [], strict=True):
            if kind == "datetime":
                numeric += [f"{name}__{part}" for part in DATETIME_PARTS]
            elif kind == "string":
                categorical.append(name)
            else:
                numeric.append(name)
        return numeric, categorical


@dataclass(frozen=True)
class FeaturePlan:
    features: list[Column]
    excluded: dict[str, str] = field(default_factory=dict)


def plan_features(frame: pd.DataFrame, columns: list[Column], target: Column) -> FeaturePlan:
    """Keep the ontology's columns except the target, identifier-like and free-text ones (with reasons)."""
    kept, excluded = [], {}
    for column in columns:
        if column.name == target.name:
            continue
        reason = _exclusion_reason(frame[column.name], column) if column.name in frame.columns else None
        if reason:
            excluded[column.name] = reason
        else:
            kept.append(column)
    return _plan(kept, excluded, target)


def _plan(kept: list[Column], excluded: dict[str, str], target: Column) -> FeaturePlan:
    if not kept:
        raise TrainingFailed(
            f"no usable feature columns besides target {target.name!r}"
            + (f" (excluded: {', '.join(f'{k}: {v}' for k, v in excluded.items())})" if excluded else "")
        )
    return FeaturePlan(features=kept, excluded=excluded)


def _exclusion_reason(series: pd.Series, column: Column) -> str | None:
    if is_identifier_name(column.name) or column.kind != "string":
        return column_exclusion(column, 0, 0, 0)
    values = series.dropna()
    if values.empty:
        return None
    text = values.astype(str)
    return column_exclusion(column, len(text), text.nunique(), int(text.str.len().sum()))


def plan_features_from_stats(columns: list[Column], target: Column, stats) -> FeaturePlan:
    """`plan_features` for data read as a stream: the same rules, decided from the level counts of every string
    column over the rows with a target (`trainer.stream.scan`'s `FeatureStats`)."""
    kept, excluded = [], {}
    for column in columns:
        if column.name == target.name:
            continue
        levels = stats.categorical.get(column.name) if column.kind == "string" else None
        reason = (column_exclusion(column, levels.count, len(levels.counts), levels.length_sum,
                                   more_levels=not levels.complete)
                  if levels is not None else column_exclusion(column, 0, 0, 0))
        if reason:
            excluded[column.name] = reason
        else:
            kept.append(column)
    return _plan(kept, excluded, target)


def column_exclusion(column: Column, count: int, distinct: int, length_sum: int, *,
                     more_levels: bool = False) -> str | None:
    """Why `column` is not a feature, or None: the one rule of both plans. `count` non-missing values as text,
    `distinct` of them distinct, `length_sum` characters in all; `more_levels`: `distinct` is only a lower
    bound (a streamed count stopped at its cap), and the column then counts as high-cardinality."""
    if is_identifier_name(column.name):
        return "identifier-like name"
    if column.kind != "string" or count == 0:
        return None
    if length_sum / count > FREE_TEXT_MEAN_LENGTH:
        return f"free text: mean length over {FREE_TEXT_MEAN_LENGTH} characters"
    if count >= MIN_ROWS_FOR_UNIQUENESS_RULE and distinct == count:
        return "identifier-like: a distinct value in every row"
    if count >= MIN_ROWS_FOR_UNIQUENESS_RULE and (distinct > HIGH_CARDINALITY_RATIO * count or more_levels):
        over = "over " if more_levels else ""
        return f"free text / high cardinality: {over}{distinct} distinct values in {count} rows"
    return None


def infer_task(target: Column, values: pd.Series) -> str:
    """classification for string/boolean targets and integers with few distinct values, else regression."""
    if target.kind in ("string", "boolean"):
        return "classification"
    if target.kind == "integer":
        numeric = pd.to_numeric(values, errors="coerce").dropna()
        if numeric.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
            return "classification"
        return "regression"
    if target.kind == "number":
        return "regression"
    raise TrainingFailed(f"target column {target.name!r} has kind {target.kind!r}, which cannot be predicted")


def target_values(target: Column, series: pd.Series, task: str) -> pd.Series:
    """The target with its kind's type (nullable booleans/integers, missing values NA), ready to encode."""
    if task == "regression":
        return coerce_column(series, "number")
    if target.kind == "boolean":
        return coerce_column(series, "boolean").astype("boolean")
    if target.kind == "integer":
        return coerce_column(series, "integer").round().astype("Int64")
    return coerce_column(series, "string")


def build_preprocessor(features: list[Column], scale: bool, dense: bool = True):
    """FrameCoercer -> ColumnTransformer(numeric: median impute [+ scale], strings: impute + one-hot)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    coercer = FrameCoercer(names=[c.name for c in features], kinds=[c.kind for c in features])
    numeric, categorical = coercer.output_columns()
    steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if scale:
        steps.append(("scale", StandardScaler()))
    transformers = []
    if numeric:
        transformers.append(("num", Pipeline(steps), numeric))
    for index, name in enumerate(categorical):
        encoder = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="__missing__", keep_empty_features=True)),
                (
                    "onehot",
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist",
                        max_categories=MAX_ONE_HOT_CATEGORIES,
                        sparse_output=not dense,
                    ),
                ),
            ]
        )
        transformers.append((f"cat{index}", encoder, [name]))
    encode = ColumnTransformer(transformers, sparse_threshold=0.0 if dense else 0.3, verbose_feature_names_out=True)
    return Pipeline([("coerce", coercer), ("encode", encode)])


def input_schema(preprocessor, features: list[Column]) -> list[dict]:
    """Names, kinds and (for strings) the categories seen in training, from a fitted preprocessor."""
    encode = preprocessor.named_steps["encode"]
    categories = {}
    for name, transformer, cols in encode.transformers_:
        if name.startswith("cat"):
            seen = transformer.named_steps["onehot"].categories_[0]
            categories[cols[0]] = sorted(str(v) for v in seen if v != "__missing__")
    schema = []
    for column in features:
        entry = {"name": column.name, "type": column.kind}
        if column.kind == "string":
            entry["categories"] = categories.get(column.name, [])
        if column.iri:
            entry["iri"] = column.iri
        schema.append(entry)
    return schema
