"""`trainer.splitting.choose`: exact counts, class quotas by largest remainder, a function of the seed and the
target alone; and `split_positions` / `held_out_split` over it (older manifests rebuilt with scikit-learn's)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainer.pipeline import held_out_split, positions_digest, sorted_union_at, split_positions
from trainer.spec import TrainingConfig
from trainer.splitting import METHOD, SKLEARN_METHOD, can_stratify, choose


@pytest.mark.parametrize("n_chosen", [1, 3, 250, 999])
def test_stratified_quotas_are_exact_and_near_proportional(n_chosen):
    rng = np.random.default_rng(1)
    y = rng.choice([0, 1, 2, 5], 1000, p=[0.6, 0.25, 0.1, 0.05])
    mask = choose(y, n_chosen, seed=3, stratify=True)
    assert mask.dtype == bool and mask.sum() == n_chosen
    counts = {c: int((y == c).sum()) for c in np.unique(y)}
    for c, count in counts.items():
        assert abs(int(mask[y == c].sum()) - n_chosen * count / len(y)) < 1  # largest remainder: within one row


def test_the_choice_is_a_function_of_the_seed_and_the_target():
    y = np.random.default_rng(2).integers(0, 3, 5000)
    a, b = choose(y, 1000, seed=7, stratify=True), choose(y.copy(), 1000, seed=7, stratify=True)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, choose(y, 1000, seed=8, stratify=True))
    uniform = choose(y, 1000, seed=7, stratify=False)
    assert uniform.sum() == 1000 and not np.array_equal(uniform, a)
    # String classes stratify as their codes do.
    labels = np.array(["a", "b", "c"])[y]
    assert np.array_equal(choose(labels, 1000, seed=7, stratify=True), a)


def test_a_choice_out_of_range_is_refused():
    with pytest.raises(ValueError):
        choose(np.zeros(5, dtype=int), 6, seed=0, stratify=False)
    assert choose(np.zeros(5, dtype=int), 0, seed=0, stratify=False).sum() == 0


def test_stratification_needs_two_rows_per_class_on_both_sides():
    y = np.array([0] * 50 + [1] * 2)
    assert can_stratify(y, 10) and not can_stratify(y, 1) and not can_stratify(y, 51)
    assert not can_stratify(np.array([0] * 50 + [1]), 10)


def test_split_positions_partition_the_rows_in_order_and_stratify():
    y = np.random.default_rng(4).choice([0, 1], 10_000, p=[0.9, 0.1])
    config = TrainingConfig(train_test_split=0.8, validation_split=0.2, random_seed=5)
    split = split_positions(y, "classification", config)
    everything = np.concatenate(list(split.values()))
    assert sorted(everything.tolist()) == list(range(10_000))
    assert all(np.all(np.diff(p) > 0) for p in split.values())
    assert len(split["test"]) == 2000 and len(split["validation"]) == 1600
    assert abs(y[split["test"]].mean() - y.mean()) < 0.001
    assert np.array_equal(split["test"], split_positions(y, "classification", config)["test"])


def test_held_out_split_rebuilds_a_manifest_of_either_method():
    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"x": rng.normal(size=400), "label": rng.choice(["no", "yes"], 400)})
    config = TrainingConfig(train_test_split=0.75, validation_split=0.2, random_seed=9)
    encoded = (frame["label"] == "yes").to_numpy(dtype="int64")
    for method in (METHOD, SKLEARN_METHOD):
        test = split_positions(encoded, "classification", config, method)["test"]
        manifest = {"task": "classification", "target": {"name": "label", "type": "string", "classes": ["no", "yes"]},
                    "split": {"method": method, "train_test_split": 0.75, "validation_split": 0.2, "random_seed": 9,
                              "test_positions_sha256": positions_digest(test)}}
        rows, truth = held_out_split(frame, manifest)
        assert rows["x"].tolist() == frame["x"].iloc[test].tolist() and truth == frame["label"].iloc[test].tolist()
    assert not np.array_equal(split_positions(encoded, "classification", config, METHOD)["test"],
                              split_positions(encoded, "classification", config, SKLEARN_METHOD)["test"])


@pytest.mark.parametrize("sizes", [(7_000, 300), (300, 7_000), (5_000, 0), (0, 40), (1, 1)])
def test_sorted_union_at_is_the_sorted_concatenation_indexed_without_making_it(sizes):
    rng = np.random.default_rng(sum(sizes))
    everything = rng.permutation(3 * sum(sizes) + 2)
    first, second = everything[:sizes[0]], everything[sizes[0]:sum(sizes)]
    first = np.sort(first)  # one sorted (as the split's are), one in any order
    union = np.sort(np.concatenate([first, second]))
    ranks = np.sort(rng.choice(len(union), min(len(union), 500), replace=False))
    ranks = np.unique(np.concatenate([ranks, [0, len(union) - 1]]))
    assert np.array_equal(sorted_union_at(first, second, ranks), union[ranks])
