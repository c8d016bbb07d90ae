"""Reference distributions and PSI (`trainer.drift`), checked against values worked out by hand; and the
reference the training pipeline puts in a manifest."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from trainer.drift import EPSILON, OTHER, bin_counts, psi, psi_from_counts, psi_report, reference


def term(a: float, e: float) -> float:
    """One bin's share of the PSI, with the epsilon floor on both sides."""
    a, e = max(a, EPSILON), max(e, EPSILON)
    return (a - e) * math.log(a / e)


# ---- references ------------------------------------------------------------------------------------------------

def test_a_numeric_reference_is_quantile_bins_with_open_ends_and_a_null_fraction():
    ref = reference(pd.Series([1, 2, 3, 4, None]), "integer", bins=2)
    # The one interior quantile of 1, 2, 3, 4 is the median 2.5: bins (-inf, 2.5] and (2.5, +inf).
    # Fractions are of all five values, so the two bins and the null share sum to 1.
    assert ref == {"type": "numeric", "edges": [2.5], "fractions": [0.4, 0.4], "null_fraction": 0.2, "count": 5}
    assert json.loads(json.dumps(ref, allow_nan=False)) == ref


def test_ten_bins_by_default_of_equal_mass():
    ref = reference(pd.Series(np.arange(1000, dtype="float64")), "number")
    assert len(ref["edges"]) == 9 and ref["fractions"] == [0.1] * 10 and ref["null_fraction"] == 0.0


def test_a_constant_feature_has_one_populated_bin():
    ref = reference(pd.Series([7.0] * 20), "number")
    # The deduplicated edges are [7]; 7 is also the minimum, so the float just below 7 is an edge too:
    # bins (-inf, 7-), (7-, 7] = [7, 7], (7, +inf).
    assert ref["edges"] == [np.nextafter(7.0, -math.inf), 7.0]
    assert ref["fractions"] == [0.0, 1.0, 0.0]


def test_a_categorical_reference_keeps_the_most_frequent_values_and_pools_the_rest():
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + [None] * 2
    ref = reference(pd.Series(values), "string")
    # Fractions of all 12 values, to 6 significant digits: 5/12, 3/12, 2/12; nulls 2/12; nothing pooled.
    assert ref == {"type": "categorical", "categories": {"a": 0.416667, "b": 0.25, "c": 0.166667, OTHER: 0.0},
                   "null_fraction": 0.166667, "count": 12}

    many = pd.Series([f"v{i:03d}" for i in range(60) for _ in range(60 - i)])  # v000 is the most frequent
    pooled = reference(many, "string")["categories"]
    assert list(pooled)[:3] == ["v000", "v001", "v002"] and len(pooled) == 51
    assert pooled[OTHER] == pytest.approx(sum(range(1, 11)) / len(many), abs=1e-6)  # v050..v059: 10+9+...+1


def test_booleans_and_datetimes_are_numeric():
    flags = reference(pd.Series(["yes", "no", "no", "no", None]), "boolean", bins=2)
    assert flags["type"] == "numeric" and flags["null_fraction"] == 0.2
    assert flags["fractions"] == [0.0, 0.6, 0.2]  # below 0 (empty), [0, 0], (0, +inf)
    stamps = reference(pd.Series(["2024-01-01", "2024-01-03", "junk"]), "datetime", bins=2)
    midpoint = pd.Timestamp("2024-01-02").timestamp()
    assert stamps["edges"] == [midpoint] and stamps["null_fraction"] == pytest.approx(1 / 3, abs=1e-6)


# ---- PSI -------------------------------------------------------------------------------------------------------

def test_psi_of_a_two_bin_reference_by_hand():
    ref = reference(pd.Series([1.0, 2.0, 3.0, 4.0]), "number", bins=2)  # (-inf, 2.5]: 0.5, (2.5, +inf): 0.5
    actual = pd.Series([1.0, 3.0, 4.0, 5.0, None])  # 1 low (0.2), 3 high (0.6), 1 null (0.2; reference: 0)
    by_hand = (0.2 - 0.5) * math.log(0.2 / 0.5) \
        + (0.6 - 0.5) * math.log(0.6 / 0.5) \
        + (0.2 - 1e-4) * math.log(0.2 / 1e-4)  # the empty null bin of the reference is floored at epsilon
    assert by_hand == pytest.approx(0.274887 + 0.018232 + 1.519420, abs=1e-5)
    assert psi(ref, actual, "number") == pytest.approx(by_hand, rel=1e-12)


def test_psi_of_a_three_category_reference_by_hand_with_an_unseen_category():
    ref = reference(pd.Series(["a", "a", "b", "c"]), "string")  # a 0.5, b 0.25, c 0.25, other 0, null 0
    actual = pd.Series(["a", "b", "b", "z"])  # a 0.25, b 0.5, c 0 (floored), "z" -> other 0.25, null 0
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) \
        + (0.5 - 0.25) * math.log(0.5 / 0.25) \
        + (1e-4 - 0.25) * math.log(1e-4 / 0.25) \
        + (0.25 - 1e-4) * math.log(0.25 / 1e-4) \
        + 0.0  # null: 1e-4 on both sides
    assert psi(ref, actual, "string") == pytest.approx(by_hand, rel=1e-12)
    assert list(bin_counts(ref, actual, "string")) == [1, 2, 0, 1, 0]


def test_identical_distributions_give_zero_and_empty_data_gives_none():
    series = pd.Series(np.random.default_rng(1).normal(size=500))
    assert psi(reference(series, "number"), series, "number") == pytest.approx(0.0, abs=1e-9)
    words = pd.Series(["x", "y", None, "y"] * 10)
    assert psi(reference(words, "string"), words, "string") == pytest.approx(0.0, abs=1e-9)
    assert psi(reference(series, "number"), pd.Series([], dtype="float64"), "number") is None
    assert psi_from_counts(reference(words, "string"), np.zeros(4)) is None


def test_empty_bins_on_either_side_are_floored_at_epsilon():
    ref = reference(pd.Series([1.0, 2.0, 3.0, 4.0]), "number", bins=2)
    only_low = pd.Series([0.0, 1.0])  # the high bin is empty in the data
    assert psi(ref, only_low, "number") == pytest.approx(term(1.0, 0.5) + term(0.0, 0.5), rel=1e-12)
    assert math.isfinite(psi(ref, only_low, "number"))


def test_a_constant_feature_shifted_either_way_gives_a_large_psi():
    ref = reference(pd.Series([5] * 100), "integer")
    assert psi(ref, pd.Series([5] * 30), "integer") == pytest.approx(0.0, abs=1e-12)
    # Every value moves to a bin that was empty: (1 - 1e-4) ln(1 / 1e-4) twice (the new bin, the old one).
    by_hand = 2 * (1 - 1e-4) * math.log(1 / 1e-4)
    assert psi(ref, pd.Series([6] * 30), "integer") == pytest.approx(by_hand, rel=1e-9)
    assert psi(ref, pd.Series([4] * 30), "integer") == pytest.approx(by_hand, rel=1e-9)


def test_nulls_form_their_own_bin():
    ref = reference(pd.Series([1.0, 2.0, None, None]), "number", bins=2)  # 0.25, 0.25, null 0.5
    assert ref["null_fraction"] == 0.5
    no_nulls = pd.Series([1.0, 2.0])  # 0.5, 0.5, null 0
    assert psi(ref, no_nulls, "number") == pytest.approx(2 * term(0.5, 0.25) + term(0.0, 0.5), rel=1e-12)
    unparseable = pd.Series(["1", "2", "n/a", ""])  # unparseable and blank values are missing ones
    assert psi(ref, unparseable, "number") == pytest.approx(0.0, abs=1e-12)


def test_a_two_standard_deviation_shift_is_major_and_a_fresh_sample_is_not():
    rng = np.random.default_rng(7)
    train = pd.Series(rng.normal(50.0, 10.0, size=5000))
    ref = reference(train, "number")
    same = pd.Series(rng.normal(50.0, 10.0, size=2000))
    shifted = same + 20.0
    assert psi(ref, same, "number") < 0.1
    assert psi(ref, shifted, "number") > 0.2
    assert psi(ref, shifted, "number") > 2.0  # most values land in the top bin: far beyond "major" (0.25)


def test_counts_of_batches_add_up_to_the_psi_of_the_whole():
    rng = np.random.default_rng(3)
    ref = reference(pd.Series(rng.normal(size=1000)), "number")
    data = pd.Series(rng.normal(0.3, 1.0, size=900))
    counts = sum(bin_counts(ref, part, "number") for part in (data[:100], data[100:500], data[500:]))
    assert psi_from_counts(ref, counts) == pytest.approx(psi(ref, data, "number"), rel=1e-12)


def test_psi_report_covers_every_referenced_column():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "b", "a"]})
    references = {"x": reference(frame["x"], "number"), "s": reference(frame["s"], "string"),
                  "gone": reference(frame["x"], "number")}
    report = psi_report(references, frame, {"x": "number", "s": "string", "gone": "number"})
    assert report == {"x": pytest.approx(0.0, abs=1e-9), "s": pytest.approx(0.0, abs=1e-9), "gone": None}


# ---- the manifest's reference -----------------------------------------------------------------------------------

def test_training_records_the_training_splits_distributions(tmp_path):
    from ontologies import CUSTOMER_TTL

    from trainer.ontology import choose_target, parse_columns
    from trainer.pipeline import train_and_evaluate
    from trainer.synthetic import synthetic_frame

    columns = parse_columns(CUSTOMER_TTL)
    frame = synthetic_frame(columns, choose_target(columns, None), rows=300, seed=5)
    result = train_and_evaluate(frame, CUSTOMER_TTL, "decision_tree", {"train_test_split": 0.8, "random_seed": 5})
    ref = result.reference
    train_rows = result.split["fit_rows"] + result.split["validation_rows"]
    assert ref["rows"] == train_rows == 240
    assert set(ref["features"]) == {entry["name"] for entry in result.input_schema}
    assert ref["features"]["age"]["type"] == "numeric" and ref["features"]["plan"]["type"] == "categorical"
    assert ref["features"]["signup_date"]["type"] == "numeric"
    assert all(feature["count"] == train_rows for feature in ref["features"].values())
    # The predictions' reference: class labels as text, over the same rows.
    assert ref["prediction"]["type"] == "categorical" and ref["prediction"]["count"] == train_rows
    assert set(ref["prediction"]["categories"]) <= {*map(str, result.target["classes"]), OTHER}
    assert sum(ref["prediction"]["categories"].values()) == pytest.approx(1.0, abs=1e-5)
    json.dumps(ref, allow_nan=False)

    spend = train_and_evaluate(frame, CUSTOMER_TTL, "regression",
                               {"train_test_split": 0.8, "random_seed": 5, "target_column": "spend"})
    assert spend.reference["prediction"]["type"] == "numeric" and len(spend.reference["prediction"]["edges"]) == 9
