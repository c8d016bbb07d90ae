"""Which rows a split or a sample takes: a seeded choice of `n` of them, stratified by the target when it can be.

One function for the train/test and fit/validation splits (`trainer.pipeline.split_positions`) and the capped
samples (`trainer.stream.sample_positions`), on any row count: memory is about 18 bytes a row while it runs (a
stable argsort of the class codes and a boolean mask), where scikit-learn's `train_test_split` builds Python lists
of every chosen index (some 70 bytes a row: 700 MB at 10 million rows).

Stratified: each class gets `n * count / total` of the chosen rows, rounded by largest remainder (ties to the
class that comes first), and within a class the rows are a seeded permutation's first ones. Uniform: the first
`n` of a seeded permutation of all rows. The choice depends on the seed and the target alone.
"""
from __future__ import annotations

import numpy as np

METHOD = "trainer.splitting.choose (seeded; stratified by target when possible, largest-remainder quotas)"
# The method earlier trainers recorded; `held_out_split` rebuilds such a manifest's split with it.
SKLEARN_METHOD = "sklearn.model_selection.train_test_split(positions, stratified when possible)"


def can_stratify(y: np.ndarray, n_chosen: int) -> bool:
    """Every class has two rows, and both the chosen rows and the rest can hold one of each."""
    counts = class_counts(y)
    return bool(len(counts)) and counts.min() >= 2 and n_chosen >= len(counts) and len(y) - n_chosen >= len(counts)


def class_counts(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind in "iu" and (not len(y) or y.min() >= 0):
        counts = np.bincount(y)
        return counts[counts > 0]
    return np.unique(y, return_counts=True)[1]


def choose(y: np.ndarray, n_chosen: int, seed: int, stratify: bool) -> np.ndarray:
    """A boolean mask over the rows of `y` with `n_chosen` rows set."""
    total = len(y)
    if not 0 <= n_chosen <= total:
        raise ValueError(f"cannot choose {n_chosen} of {total} rows")
    rng = np.random.default_rng(seed)
    mask = np.zeros(total, dtype=bool)
    if not stratify:
        mask[rng.permutation(total)[:n_chosen]] = True
        return mask
    order = np.argsort(np.asarray(y), kind="stable")  # rows grouped by class, in row order within a class
    values = np.asarray(y)[order]
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    counts = np.diff(np.r_[starts, total])
    quotas = _largest_remainder(counts, n_chosen)
    for start, count, quota in zip(starts.tolist(), counts.tolist(), quotas.tolist(), strict=True):
        if quota:
            mask[order[start + rng.permutation(count)[:quota]]] = True
    return mask


def _largest_remainder(counts: np.ndarray, n_chosen: int) -> np.ndarray:
    exact = counts * (n_chosen / counts.sum())
    quotas = np.floor(exact).astype("int64")
    short = n_chosen - int(quotas.sum())
    if short:
        remainders = exact - quotas
        quotas[np.argsort(-remainders, kind="stable")[:short]] += 1
    return quotas
