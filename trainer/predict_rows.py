"""One batch of rows in, one table of output rows out: the pure step of a batch prediction job.

Output columns, in order: the passthrough columns (values as read), `prediction`, for classifiers one
`probability_<class>` per class in the loader's `classes` order, then `error`. The predictions are the
loader's own (`LoadedModel.predict` / `predict_proba` on the batch as read). A row with a non-null value
that the model's coercion (`trainer.features.coerce_column`) cannot parse as its feature's type gets a
null prediction and probabilities, and `error` names the column(s); null and blank values are not
errors (the model imputes them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from trainer.errors import TrainingFailed
from trainer.features import coerce_column
from trainer.predict_input import Batch, InputObject
from trainer.predict_spec import PROBABILITY_PREFIX

PREDICTION = "prediction"
ERROR = "error"


@dataclass(frozen=True)
class OutputLayout:
    """The output's columns and their Arrow types: the same for every part of a job."""

    passthrough: tuple[tuple[str, Any], ...]
    prediction_type: Any
    classes: tuple | None

    @property
    def schema(self) -> pa.Schema:
        fields = [pa.field(name, kind) for name, kind in self.passthrough]
        fields.append(pa.field(PREDICTION, self.prediction_type))
        fields += [pa.field(name, pa.float64()) for name in self.probability_columns]
        fields.append(pa.field(ERROR, pa.string()))
        return pa.schema(fields)

    @property
    def probability_columns(self) -> list[str]:
        return [f"{PROBABILITY_PREFIX}{label}" for label in self.classes or ()]

    @property
    def columns(self) -> list[str]:
        return self.schema.names


def output_layout(model, passthrough: list[str], objects: list[InputObject]) -> OutputLayout:
    """The layout for `model` and these inputs. A passthrough column keeps its Parquet type when every input
    object is Parquet and they agree on it; otherwise (CSV, JSON lines, or types that differ) it is text."""
    readable = [item for item in objects if item.columns is not None]
    columns = []
    for name in passthrough:
        types = {item.arrow_types.get(name) for item in readable}
        kind = types.pop() if len(types) == 1 and all(item.arrow_types for item in readable) else pa.string()
        if kind is None or pa.types.is_null(kind):
            kind = pa.string()
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        columns.append((name, kind))
    if model.task == "classification":
        classes = tuple(model.classes)
        return OutputLayout(tuple(columns), pa.array(list(classes)).type, classes)
    return OutputLayout(tuple(columns), pa.float64(), None)


def predict_batch(model, batch: Batch, layout: OutputLayout) -> tuple[pa.Table, int]:
    """(output table, rows with unparseable values) for one batch."""
    errors = unparseable(batch.features, model.manifest["input_schema"])
    failed = np.array([e is not None for e in errors], dtype=bool)
    arrays = [_as(batch.passthrough[name], kind, name) for name, kind in layout.passthrough]
    if layout.classes is None:
        arrays.append(pa.array(np.asarray(model.predict(batch.features), dtype="float64"), mask=failed))
    else:
        predicted, proba = model.predict_with_proba(batch.features)  # one prediction for both
        arrays.append(pa.array(np.asarray(predicted, dtype=object), mask=failed, type=layout.prediction_type))
        arrays += [pa.array(proba[:, index], mask=failed) for index in range(len(layout.classes))]
    arrays.append(pa.array(errors, type=pa.string()))
    return pa.Table.from_arrays(arrays, schema=layout.schema), int(failed.sum())


def unparseable(frame: pd.DataFrame, input_schema: list[dict]) -> list[str | None]:
    """Per row: None, or which columns hold a value the model's coercion turns into a missing one."""
    flagged = []
    for entry in input_schema:
        name, kind = entry["name"], entry["type"]
        if kind == "string" or name not in frame.columns:
            continue  # any value is a string; an absent column is all missing
        raw = frame[name]
        if _always_parses(raw, kind):
            continue
        bad = raw.notna().to_numpy(dtype=bool) & coerce_column(raw, kind).isna().to_numpy(dtype=bool)
        if bad.any():  # blank text is a missing value, not an unparseable one
            positions = np.flatnonzero(bad)
            blank = np.array([isinstance(v, str) and not v.strip() for v in raw.iloc[positions]], dtype=bool)
            bad[positions[blank]] = False
        if bad.any():
            flagged.append((f"{name} ({kind})", bad))
    errors: list[str | None] = [None] * len(frame)
    if flagged:
        for row in np.flatnonzero(np.logical_or.reduce([bad for _, bad in flagged])):
            errors[row] = "unparseable: " + ", ".join(label for label, bad in flagged if bad[row])
    return errors


def _always_parses(raw: pd.Series, kind: str) -> bool:
    """Whether the column's dtype alone guarantees a value for every non-null entry (no per-value check)."""
    if kind in ("integer", "number"):
        return pd.api.types.is_numeric_dtype(raw.dtype)
    if kind == "boolean":
        return pd.api.types.is_bool_dtype(raw.dtype)
    if kind == "datetime":
        return pd.api.types.is_datetime64_any_dtype(raw.dtype)
    return False


def _as(array, kind, name: str):
    if array.type == kind:
        return array
    try:
        return array.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise TrainingFailed(f"passthrough column {name!r} ({array.type}) cannot be written as {kind}: "
                             f"{str(exc)[:200]}") from None
