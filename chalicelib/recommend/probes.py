"""Two tiny models fitted on the sample, in pure Python: how linear is the target, how much does a tree add?

- linear: ridge least squares on standardised numeric and one-hot categorical features
  (one output per class for classification, predicted class = the largest output);
- tree: a CART tree of depth at most `TREE_DEPTH` (Gini for classes, squared error for numbers).

Both are scored by `FOLDS`-fold cross-validation on at most `PROBE_ROWS` sampled rows with at
most `MAX_DIMS` encoded features: accuracy for classification, R² for regression. Row order
is shuffled with a fixed seed, so the same sample always gives the same scores. The cost is
bounded by those three numbers, never by the data's size.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from chalicelib.recommend.profile import Column, to_float

PROBE_ROWS = 800
MAX_DIMS = 48
MAX_LEVELS = 10
FOLDS = 3
TREE_DEPTH = 6
MIN_LEAF = 5
RIDGE = 1.0
SEED = 20240605
MIN_ROWS = 20


@dataclass
class Problem:
    x: list[list[float]]
    y: list[float] | list[int]
    task: str
    classes: int
    dims: int
    features_used: int
    features_total: int


def encode(features: list[Column], target: Column, task: str) -> Problem | None:
    """Rows with a target value, as standardised numbers; None when too few rows remain."""
    keep, y = _target(target, task)
    if len(keep) < MIN_ROWS:
        return None
    if len(keep) > PROBE_ROWS:
        rng = random.Random(SEED)
        keep_y = list(zip(keep, y, strict=True))
        rng.shuffle(keep_y)
        keep_y = sorted(keep_y[:PROBE_ROWS])
        keep, y = [k for k, _ in keep_y], [v for _, v in keep_y]
    columns: list[list[float]] = []
    used = 0
    for feature in features:
        encoded = _encode_column(feature, keep)
        if not encoded or len(columns) + len(encoded) > MAX_DIMS:
            continue
        columns += encoded
        used += 1
    if not columns:
        return None
    x = [list(row) for row in zip(*columns, strict=True)]
    classes = len(set(y)) if task == "classification" else 0
    return Problem(x, y, task, classes, len(columns), used, len(features))


def _target(target: Column, task: str) -> tuple[list[int], list]:
    if task == "regression":
        pairs = [(i, to_float(v)) for i, v in enumerate(target.values)]
        pairs = [(i, v) for i, v in pairs if v is not None]
        return [i for i, _ in pairs], [v for _, v in pairs]
    present = [(i, v) for i, v in enumerate(target.values) if v is not None]
    index = {label: k for k, label in enumerate(sorted({v for _, v in present}))}
    return [i for i, _ in present], [index[v] for _, v in present]


def _encode_column(column: Column, keep: list[int]) -> list[list[float]]:
    values = [column.values[i] for i in keep]
    if column.numeric:
        numbers = [to_float(v) for v in values]
        present = sorted(x for x in numbers if x is not None)
        if not present:
            return []
        median = present[len(present) // 2]
        filled = [median if x is None else x for x in numbers]
        return [_standardise(filled)] if len(set(filled)) > 1 else []
    if column.kind in ("string", "boolean"):
        counts = Counter(v for v in values if v is not None)
        levels = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LEVELS]]
        out = [_standardise([1.0 if v == level else 0.0 for v in values]) for level in levels]
        return [c for c in out if any(c)]
    return []  # datetime: the probes leave it out


def _standardise(values: list[float]) -> list[float]:
    """Zero mean, unit variance. Divided by the largest magnitude first, so values near the float limits
    (1e300) neither overflow the sums to inf nor make NaNs."""
    scale = max((abs(v) for v in values), default=0.0)
    if not scale:
        return [0.0] * len(values)
    scaled = [v / scale for v in values]
    mean = sum(scaled) / len(scaled)
    std = math.sqrt(sum((v - mean) ** 2 for v in scaled) / len(scaled))
    return [(v - mean) / std for v in scaled] if std > 0 else [0.0] * len(values)


def folds(n: int) -> list[int]:
    order = list(range(n))
    random.Random(SEED).shuffle(order)
    fold = [0] * n
    for position, row in enumerate(order):
        fold[row] = position % FOLDS
    return fold


def cross_validate(problem: Problem) -> dict[str, float]:
    """Cross-validated scores of both probes (accuracy or R²), each rounded to 4 places."""
    fold = folds(len(problem.y))
    linear_pred = _linear_predictions(problem, fold)
    tree_pred: list[Any] = [None] * len(problem.y)
    for f in range(FOLDS):
        train = [i for i, g in enumerate(fold) if g != f]
        test = [i for i, g in enumerate(fold) if g == f]
        tree = grow(problem, train, 0)
        for i in test:
            tree_pred[i] = predict(tree, problem.x[i])
    return {"linear": round(score(problem, linear_pred, fold), 4), "tree": round(score(problem, tree_pred, fold), 4)}


def score(problem: Problem, predicted: list, fold: list[int]) -> float:
    if problem.task == "classification":
        return sum(p == t for p, t in zip(predicted, problem.y, strict=True)) / len(problem.y)
    sse = sst = 0.0
    for f in range(FOLDS):
        rows = [i for i, g in enumerate(fold) if g == f]
        mean = sum(problem.y[i] for i in rows) / len(rows)
        sse += sum((problem.y[i] - predicted[i]) ** 2 for i in rows)
        sst += sum((problem.y[i] - mean) ** 2 for i in rows)
    return 1.0 - sse / sst if sst > 0 else 0.0


# --- linear probe -------------------------------------------------------------------------

def _targets(problem: Problem) -> list[list[float]]:
    if problem.task == "classification":
        return [[1.0 if y == k else 0.0 for k in range(problem.classes)] for y in problem.y]
    return [[float(y)] for y in problem.y]


def _linear_predictions(problem: Problem, fold: list[int]) -> list:
    """Ridge fits with an intercept; the Gram matrices are summed per fold once."""
    d = problem.dims + 1
    targets = _targets(problem)
    outputs = len(targets[0])
    gram = [[[0.0] * d for _ in range(d)] for _ in range(FOLDS)]
    cross = [[[0.0] * outputs for _ in range(d)] for _ in range(FOLDS)]
    for row, t, f in zip(problem.x, targets, fold, strict=True):
        xs = [1.0, *row]
        g, c = gram[f], cross[f]
        for i, xi in enumerate(xs):
            if xi:
                g[i] = [a + xi * b for a, b in zip(g[i], xs, strict=True)]
                c[i] = [a + xi * b for a, b in zip(c[i], t, strict=True)]
    predicted: list[Any] = [None] * len(problem.y)
    for f in range(FOLDS):
        a = [[sum(gram[g][i][j] for g in range(FOLDS) if g != f) for j in range(d)] for i in range(d)]
        b = [[sum(cross[g][i][k] for g in range(FOLDS) if g != f) for k in range(outputs)] for i in range(d)]
        for i in range(1, d):
            a[i][i] += RIDGE
        weights = solve(a, b)
        for i, row in enumerate(problem.x):
            if fold[i] == f:
                xs = [1.0, *row]
                out = [sum(w[k] * x for w, x in zip(weights, xs, strict=True)) for k in range(outputs)]
                predicted[i] = max(range(outputs), key=lambda k: (out[k], -k)) if problem.task == "classification" \
                    else out[0]
    return predicted


def solve(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    """Solve A W = B for symmetric positive (semi)definite A by Cholesky, with a small jitter if needed."""
    n = len(a)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = a[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                low[i][i] = math.sqrt(s) if s > 1e-9 else 1e-4
            else:
                low[i][j] = s / low[j][j]
    outputs = len(b[0])
    z = [[0.0] * outputs for _ in range(n)]
    for i in range(n):
        for k in range(outputs):
            z[i][k] = (b[i][k] - sum(low[i][j] * z[j][k] for j in range(i))) / low[i][i]
    w = [[0.0] * outputs for _ in range(n)]
    for i in reversed(range(n)):
        for k in range(outputs):
            w[i][k] = (z[i][k] - sum(low[j][i] * w[j][k] for j in range(i + 1, n))) / low[i][i]
    return w


# --- tree probe ---------------------------------------------------------------------------

def _leaf(problem: Problem, rows: list[int]) -> Any:
    if problem.task == "classification":
        counts = Counter(problem.y[i] for i in rows)
        return max(sorted(counts), key=lambda k: counts[k])
    return sum(problem.y[i] for i in rows) / len(rows)


def grow(problem: Problem, rows: list[int], depth: int) -> Any:
    """A node is (feature, threshold, left, right); a leaf is its prediction."""
    if depth >= TREE_DEPTH or len(rows) < 2 * MIN_LEAF or len({problem.y[i] for i in rows}) == 1:
        return _leaf(problem, rows)
    best = None
    for feature in range(problem.dims):
        found = _best_split(problem, rows, feature)
        if found is not None and (best is None or found[0] > best[0] + 1e-12):
            best = (found[0], feature, found[1])
    if best is None:
        return _leaf(problem, rows)
    _, feature, threshold = best
    left = [i for i in rows if problem.x[i][feature] <= threshold]
    right = [i for i in rows if problem.x[i][feature] > threshold]
    return (feature, threshold, grow(problem, left, depth + 1), grow(problem, right, depth + 1))


def _best_split(problem: Problem, rows: list[int], feature: int) -> tuple[float, float] | None:
    """The split maximising sum over sides of (class counts² or target sum²) / side size."""
    ordered = sorted(rows, key=lambda i: problem.x[i][feature])
    xs = [problem.x[i][feature] for i in ordered]
    if xs[0] == xs[-1]:
        return None
    ys = [problem.y[i] for i in ordered]
    n = len(ordered)
    if problem.task == "classification":
        gains = _class_gains(ys, problem.classes)
    else:
        gains = _sum_gains(ys)
    best = None
    for p in range(MIN_LEAF, n - MIN_LEAF + 1):
        if xs[p - 1] == xs[p]:
            continue
        if best is None or gains[p] > best[0] + 1e-12:
            best = (gains[p], _between(xs[p - 1], xs[p]))
    return best


def _between(low: float, high: float) -> float:
    """A threshold t with low <= t < high. The midpoint of two adjacent floats rounds to `high`, which
    would send every row left and leave an empty leaf."""
    middle = low + (high - low) / 2
    return middle if low <= middle < high else low


def _class_gains(ys: list, classes: int) -> list[float]:
    right = Counter(ys)
    left: Counter = Counter()
    left_sq, right_sq = 0, sum(c * c for c in right.values())
    n = len(ys)
    gains = [0.0] * (n + 1)
    for p in range(1, n):
        c = ys[p - 1]
        left_sq += 2 * left[c] + 1
        left[c] += 1
        right_sq -= 2 * right[c] - 1
        right[c] -= 1
        gains[p] = left_sq / p + right_sq / (n - p)
    return gains


def _sum_gains(ys: list[float]) -> list[float]:
    total = sum(ys)
    n = len(ys)
    gains = [0.0] * (n + 1)
    left = 0.0
    for p in range(1, n):
        left += ys[p - 1]
        gains[p] = left * left / p + (total - left) ** 2 / (n - p)
    return gains


def predict(node: Any, row: list[float]) -> Any:
    while isinstance(node, tuple):
        feature, threshold, left, right = node
        node = left if row[feature] <= threshold else right
    return node
