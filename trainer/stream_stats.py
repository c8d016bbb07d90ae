"""Preprocessing statistics of a stream of coerced feature frames, in memory that does not grow with rows.

What it hides: mergeable moments (Chan et al.'s pairwise update: count, mean, sum of squared deviations, in
float64), a seeded bounded reservoir per numeric column, capped level counts per string column, and an exact
median by order-statistic search over further passes (`exact_medians`).

The frames it is fed are `trainer.features.FrameCoercer` output (numeric columns float64 with NaN for
missing, datetime columns expanded into float parts, string columns object with NaN), so the statistics are
of the values the in-memory preprocessor (`build_preprocessor`) is fitted on.

Why an exact median: `build_preprocessor` imputes numeric columns with `SimpleImputer(strategy="median")`,
and the scaler is then fitted on the imputed values. An approximate median would change every imputed value
and, through them, the scaler's mean and variance; an exact one keeps the streamed preprocessor equal to the
in-memory one on any data size. The search costs passes, not memory: a column with at most
`reservoir_size` values has its median from the reservoir (which then holds every value); one with at most
`collect_limit` values needs one more pass; a larger one needs a histogram pass over bins cut at the
reservoir's values (about count / reservoir_size values per bin) and then one collecting pass of the one bin
holding the median rank (repeated, within that bin, in the rare case it is still over `collect_limit`).
A column with no missing value imputes nothing in training, so the trainer searches only the columns that
have one (`trainer.stream.statistics_of`, EXACT_WHERE_IMPUTED): data without missing values is read once.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DEFAULT_RESERVOIR_SIZE = 8192
# Distinct levels counted per string column. The one-hot encoder keeps MAX_ONE_HOT_CATEGORIES (50) of them and
# the free-text / high-cardinality rules need to know whether a column has more distinct values than half the
# rows: 10,000 exact counts (a few hundred KiB per column) decide both for any column that has fewer levels,
# and say `complete=False` (with the rows that fell outside) for one that has more.
DEFAULT_MAX_LEVELS = 10_000
# Values one order-statistic search may hold at once (8 bytes each).
DEFAULT_COLLECT_LIMIT = 65_536
_MAX_SEARCH_PASSES = 12
_SPLIT_BINS = 1024


@dataclass
class NumericStats:
    """Moments of the non-missing values of one numeric column (NaN is missing, as for SimpleImputer)."""

    count: int = 0
    missing: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    minimum: float = math.inf
    maximum: float = -math.inf
    reservoir: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="float64"))
    reservoir_size: int = DEFAULT_RESERVOIR_SIZE
    median: float | None = None
    median_exact: bool = False

    def update(self, values: np.ndarray, rng: np.random.Generator) -> None:
        values = np.asarray(values, dtype="float64")
        present = values[~np.isnan(values)]
        self.missing += len(values) - len(present)
        if not len(present):
            return
        self._sample(present, rng)
        mean = float(present.mean())
        self.merge_moments(len(present), mean, float(np.square(present - mean).sum()))
        self.minimum = min(self.minimum, float(present.min()))
        self.maximum = max(self.maximum, float(present.max()))

    def merge_moments(self, count: int, mean: float, m2: float) -> None:
        """Chan's pairwise merge of another group's (count, mean, m2) into this one."""
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.count * count / total
        self.mean += delta * count / total
        self.count = total

    def _sample(self, present: np.ndarray, rng: np.random.Generator) -> None:
        """Algorithm R, vectorised: value t (0-based, over the stream) replaces slot j ~ U[0, t] when j < size."""
        seen = self.count
        free = max(0, min(self.reservoir_size - seen, len(present)))
        if free:
            self.reservoir = np.concatenate([self.reservoir, present[:free]])
        rest = present[free:]
        if not len(rest):
            return
        ranks = np.arange(seen + free, seen + free + len(rest))
        slots = rng.integers(0, ranks + 1)
        hit = slots < self.reservoir_size
        slots, chosen = slots[hit], rest[hit]
        # A later value overwrites an earlier one drawn into the same slot, as the sequential algorithm does.
        last = len(slots) - 1 - np.unique(slots[::-1], return_index=True)[1]
        self.reservoir[slots[last]] = chosen[last]

    def variance(self, ddof: int = 0) -> float:
        return self.m2 / (self.count - ddof) if self.count > ddof else math.nan

    def imputed_moments(self, fill: float) -> tuple[float, float]:
        """(mean, population variance) of the column once its missing values are `fill`: what a StandardScaler
        after the imputer is fitted on."""
        merged = NumericStats(count=self.count, mean=self.mean, m2=self.m2)
        merged.merge_moments(self.missing, fill, 0.0)
        return merged.mean, merged.variance(0)

    def public(self) -> dict:
        return {"count": self.count, "missing": self.missing, "mean": self.mean, "variance": self.variance(0),
                "min": self.minimum, "max": self.maximum, "median": self.median, "median_exact": self.median_exact}


@dataclass
class CategoricalStats:
    """Level counts of one string column, capped at `max_levels` distinct levels.

    Once the cap is reached, rows with a level not yet counted go to `overflow_rows` (and `complete` is False);
    levels already counted keep counting exactly."""

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    length_sum: int = 0  # characters over the non-missing values (the free-text rule's mean length)
    overflow_rows: int = 0
    max_levels: int = DEFAULT_MAX_LEVELS

    def update(self, values: pd.Series) -> None:
        present = values[values.notna()].astype(str)
        self.missing += len(values) - len(present)
        self.length_sum += int(present.str.len().sum())
        for level, count in present.value_counts(sort=False).items():
            if level in self.counts:
                self.counts[level] += int(count)
            elif len(self.counts) < self.max_levels:
                self.counts[level] = int(count)
            else:
                self.overflow_rows += int(count)

    @property
    def count(self) -> int:
        return sum(self.counts.values()) + self.overflow_rows

    @property
    def complete(self) -> bool:
        return self.overflow_rows == 0

    def public(self) -> dict:
        return {"count": self.count, "missing": self.missing, "levels": len(self.counts), "complete": self.complete,
                "overflow_rows": self.overflow_rows, "length_sum": self.length_sum}


@dataclass
class FeatureStats:
    """The statistics of every coerced output column: numeric (FrameCoercer order) and categorical."""

    numeric: dict[str, NumericStats]
    categorical: dict[str, CategoricalStats]
    rows: int = 0
    seed: int = 0
    _rng: np.random.Generator | None = None

    @classmethod
    def empty(cls, numeric: Iterable[str], categorical: Iterable[str], *, seed: int = 0,
              reservoir_size: int = DEFAULT_RESERVOIR_SIZE, max_levels: int = DEFAULT_MAX_LEVELS) -> FeatureStats:
        return cls(numeric={name: NumericStats(reservoir_size=reservoir_size) for name in numeric},
                   categorical={name: CategoricalStats(max_levels=max_levels) for name in categorical},
                   seed=seed, _rng=np.random.default_rng(seed))

    def update(self, coerced: pd.DataFrame) -> None:
        self.rows += len(coerced)
        for name, stats in self.numeric.items():
            stats.update(coerced[name].to_numpy(dtype="float64", na_value=np.nan), self._rng)
        for name, stats in self.categorical.items():
            stats.update(coerced[name])

    def medians_from_reservoir(self) -> list[str]:
        """Set the exact median of every column whose reservoir holds all its values; the names of the others."""
        pending = []
        for name, stats in self.numeric.items():
            if stats.count == 0:
                stats.median, stats.median_exact = 0.0, True  # SimpleImputer(keep_empty_features=True) fills 0
            elif stats.count <= len(stats.reservoir):
                stats.median, stats.median_exact = float(np.median(stats.reservoir)), True
            else:
                stats.median = float(np.median(stats.reservoir))  # an estimate until exact_medians runs
                pending.append(name)
        return pending

    def public(self) -> dict:
        return {"rows": self.rows, "numeric": {k: v.public() for k, v in self.numeric.items()},
                "categorical": {k: v.public() for k, v in self.categorical.items()}}


@dataclass
class _RankSearch:
    """Where the `rank`-th smallest (0-based) value of a column lies: inside the open interval (low, high)
    holding `count` values, at position `rank` among them; `value` once known."""

    column: str
    rank: int
    low: float = -math.inf
    high: float = math.inf
    count: int = 0
    edges: np.ndarray | None = None
    value: float | None = None
    floor: float = -math.inf  # the column's minimum and maximum: where an open end is cut
    ceiling: float = math.inf

    def inside(self, values: np.ndarray) -> np.ndarray:
        return values[(values > self.low) & (values < self.high)]


def exact_medians(stats: FeatureStats, names: list[str], values_pass: Callable[[], Iterable[pd.DataFrame]],
                  collect_limit: int = DEFAULT_COLLECT_LIMIT) -> int:
    """Replace the estimated medians of `names` by exact ones; returns the passes made.

    `values_pass()` must stream the same coerced frames (the same rows) the statistics were computed on.
    Each search narrows an interval around its rank: with a histogram (first at the reservoir's distinct
    values, then at evenly spaced points) while the interval holds more than `collect_limit` values, then by
    collecting them. A column still unresolved after a dozen passes keeps its reservoir estimate with
    `median_exact` False (it would take adversarial data: the reservoir bins hold ~count/size values each).
    """
    searches = []
    for name in names:
        column = stats.numeric[name]
        for rank in sorted({(column.count - 1) // 2, column.count // 2}):
            searches.append(_RankSearch(name, rank, count=column.count, edges=np.unique(column.reservoir),
                                        floor=column.minimum, ceiling=column.maximum))
    passes = 0
    while any(s.value is None for s in searches) and passes < _MAX_SEARCH_PASSES:
        _search_pass([s for s in searches if s.value is None], values_pass, collect_limit)
        passes += 1
    for name in names:
        found = [s.value for s in searches if s.column == name]
        if all(v is not None for v in found):
            stats.numeric[name].median = float(np.mean(found)) if len(found) == 2 else float(found[0])
            stats.numeric[name].median_exact = True
    return passes


def _search_pass(searches: list[_RankSearch], values_pass, collect_limit: int) -> None:
    collecting = [s for s in searches if s.count <= collect_limit]
    splitting = [s for s in searches if s.count > collect_limit]
    for s in splitting:
        if s.edges is None:
            low, high = max(s.low, s.floor), min(s.high, s.ceiling)
            s.edges = np.unique(np.linspace(low, high, _SPLIT_BINS))
    collected: dict[int, list[np.ndarray]] = {id(s): [] for s in collecting}
    tally = {id(s): _Tally(len(s.edges)) for s in splitting}
    for frame in values_pass():
        for s in searches:
            values = s.inside(frame[s.column].to_numpy(dtype="float64", na_value=np.nan))
            if id(s) in collected:
                collected[id(s)].append(values)
            else:
                tally[id(s)].add(s.edges, values)
    for s in collecting:
        values = np.sort(np.concatenate(collected[id(s)] or [np.empty(0)]))
        s.value = float(values[s.rank])
    for s in splitting:
        _narrow(s, tally[id(s)])


class _Tally:
    """One histogram pass of a search: values equal to each edge, values between edges, and the extremes."""

    def __init__(self, edges: int) -> None:
        self.equal = np.zeros(edges, dtype="int64")
        self.between = np.zeros(edges + 1, dtype="int64")
        self.low, self.high = math.inf, -math.inf

    def add(self, edges: np.ndarray, values: np.ndarray) -> None:
        if not len(values):
            return
        left = np.searchsorted(edges, values, side="left")
        on_edge = np.searchsorted(edges, values, side="right") > left
        self.equal += np.bincount(left[on_edge], minlength=len(edges))
        self.between += np.bincount(left[~on_edge], minlength=len(edges) + 1)
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))


def _narrow(s: _RankSearch, tally: _Tally) -> None:
    """Move the search into the class holding its rank: an edge value (found) or the open bin between edges."""
    if tally.low == tally.high:  # every value left in the interval is one value (a point mass)
        s.value = tally.low
        return
    # Classes in value order: between[0], equal[0], between[1], equal[1], ..., equal[-1], between[-1].
    order = np.empty(len(tally.equal) + len(tally.between), dtype="int64")
    order[0::2], order[1::2] = tally.between, tally.equal
    cumulative = np.cumsum(order)
    index = int(np.searchsorted(cumulative, s.rank, side="right"))
    if index % 2:
        s.value = float(s.edges[index // 2])
        return
    bin_index = index // 2
    s.low = float(s.edges[bin_index - 1]) if bin_index else s.low
    s.high = float(s.edges[bin_index]) if bin_index < len(s.edges) else s.high
    s.rank -= int(cumulative[index - 1]) if index else 0
    s.count, s.edges = int(order[index]), None
    s.floor, s.ceiling = tally.low, tally.high
