"""How a raw column becomes values of its kind: the rule training, prediction and drift share.

Only numpy and pandas: `trainer.drift` (and anything else that must not load scikit-learn) uses it;
`trainer.features` re-exports `coerce_column` for the preprocessing pipeline.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


def coerce_column(series: pd.Series, kind: str) -> pd.Series:
    """`series` as the column kind: float64 for integer/number/boolean, datetime64 for datetime, object for string."""
    if kind in ("integer", "number"):
        return pd.to_numeric(series, errors="coerce").astype("float64")
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.astype("float64")
        text = series.astype(object).map(lambda v: str(v).strip().lower() if pd.notna(v) else None)
        return text.map(lambda v: 1.0 if v in _TRUE else (0.0 if v in _FALSE else np.nan)).astype("float64")
    if kind == "datetime":
        values = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
        return values.dt.tz_localize(None)
    values = series.astype(object).where(series.notna(), np.nan)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values  # already text: skip the per-value conversion (it dominates on millions of rows)
    return values.map(lambda v: v if isinstance(v, str) or pd.isna(v) else str(v))
