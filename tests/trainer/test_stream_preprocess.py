"""`trainer.stream_preprocess`: the network's preprocessor fitted from streamed statistics transforms rows as
`build_preprocessor(...).fit(frame)` on the same rows does: the same columns, levels, frequent levels,
medians and scaling, on data with missing values, constant and empty columns, datetimes, ties in the level
counts and more levels than the encoder keeps."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainer.features import build_preprocessor, input_schema
from trainer.naming import MAX_ONE_HOT_CATEGORIES
from trainer.ontology import Column
from trainer.stream import EXACT_ALL, fixed_blocks, statistics_of
from trainer.stream_preprocess import preprocessor_from_stats, preprocessor_of_frame

FEATURES = [
    Column("age", "integer"), Column("income", "number"), Column("flat", "number"), Column("empty", "number"),
    Column("active", "boolean"), Column("signup", "datetime"), Column("plan", "string"), Column("city", "string"),
    Column("shop", "string"), Column("blank", "string"),
]


def frame_of(n: int, seed: int, city_levels: int, shop_levels: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 1, n).round(2)
    income[rng.random(n) < 0.1] = np.nan
    # City: heavy-tailed counts, so the encoder must choose which levels it keeps. Shop: uniform, so many
    # levels tie on their count and the stable order of the ties decides.
    city = rng.zipf(1.3, n) % city_levels
    return pd.DataFrame({
        "age": np.where(rng.random(n) < 0.05, np.nan, rng.integers(18, 90, n)),
        "income": income,
        "flat": np.full(n, 3.25),
        "empty": np.full(n, np.nan),
        "active": rng.choice(np.array(["yes", "no", None], dtype=object), n),
        "signup": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s"),
        "plan": rng.choice(np.array(["basic", "pro", None], dtype=object), n, p=[0.6, 0.3, 0.1]),
        "city": np.array([f"c{v:03d}" for v in city], dtype=object),
        "shop": np.array([f"s{v}" for v in np.arange(n) % shop_levels], dtype=object),
        "blank": np.full(n, None, dtype=object),
    })


@pytest.mark.parametrize("city_levels, shop_levels", [(10, 5), (MAX_ONE_HOT_CATEGORIES - 1, MAX_ONE_HOT_CATEGORIES),
                                                      (MAX_ONE_HOT_CATEGORIES + 1, 300)])
@pytest.mark.parametrize("block_rows", [700, 100_000])
def test_streamed_preprocessor_transforms_like_one_fitted_on_the_frame(city_levels, shop_levels, block_rows):
    frame = frame_of(3_001, seed=city_levels, city_levels=city_levels, shop_levels=shop_levels)
    expected = build_preprocessor(FEATURES, scale=True).fit(frame)
    stats = statistics_of(FEATURES, lambda: fixed_blocks([frame.iloc[:1200], frame.iloc[1200:]], block_rows),
                          seed=3, reservoir_size=256, collect_limit=500)
    streamed = preprocessor_from_stats(FEATURES, stats)

    names = [list(p.named_steps["encode"].get_feature_names_out()) for p in (streamed, expected)]
    assert names[0] == names[1]
    assert input_schema(streamed, FEATURES) == input_schema(expected, FEATURES)
    unseen = frame_of(500, seed=99, city_levels=city_levels + 5, shop_levels=shop_levels + 5)
    for rows in (frame, unseen):
        np.testing.assert_allclose(streamed.transform(rows), expected.transform(rows), rtol=1e-9, atol=1e-9)
    num_expected = expected.named_steps["encode"].named_transformers_["num"].named_steps
    num_streamed = streamed.named_steps["encode"].named_transformers_["num"].named_steps
    # Exact where training imputes (a column with missing values); elsewhere the reservoir's estimate, which only
    # fills later rows' missing values (the rows above transform the same either way).
    imputed = [stats.numeric[name].missing > 0 for name in stats.numeric]
    assert any(imputed) and not all(imputed)
    np.testing.assert_array_equal(num_streamed["impute"].statistics_[imputed],
                                  num_expected["impute"].statistics_[imputed])
    assert all(stats.numeric[name].median_exact for name, yes in zip(stats.numeric, imputed, strict=True) if yes)
    np.testing.assert_allclose(num_streamed["scale"].var_, num_expected["scale"].var_, rtol=1e-12)
    np.testing.assert_array_equal(num_streamed["scale"].scale_ == 1.0, num_expected["scale"].scale_ == 1.0)
    assert num_streamed["scale"].n_samples_seen_ == num_expected["scale"].n_samples_seen_


def test_more_levels_than_the_encoder_keeps_keeps_the_same_frequent_levels():
    frame = frame_of(2_000, seed=5, city_levels=200, shop_levels=120)
    stats = statistics_of(FEATURES, lambda: [frame], seed=0)
    streamed = preprocessor_from_stats(FEATURES, stats)
    expected = build_preprocessor(FEATURES, scale=True).fit(frame)
    for name in ("cat1", "cat2"):  # city, shop
        ours = streamed.named_steps["encode"].named_transformers_[name].named_steps["onehot"]
        theirs = expected.named_steps["encode"].named_transformers_[name].named_steps["onehot"]
        kept = [c for c in ours.get_feature_names_out() if not c.endswith("infrequent_sklearn")]
        assert len(kept) == MAX_ONE_HOT_CATEGORIES - 1
        assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())
        assert [list(v) for v in ours.infrequent_categories_] == [list(v) for v in theirs.infrequent_categories_]


def test_a_frame_with_only_numbers_or_only_strings():
    frame = frame_of(400, seed=1, city_levels=7, shop_levels=3)
    for features in (FEATURES[:3], FEATURES[6:8]):
        expected = build_preprocessor(features, scale=True).fit(frame)
        streamed = preprocessor_from_stats(features, statistics_of(features, lambda: [frame], seed=0))
        np.testing.assert_allclose(streamed.transform(frame), expected.transform(frame), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("city_levels, shop_levels", [(10, 5), (MAX_ONE_HOT_CATEGORIES + 1, 300)])
def test_a_preprocessor_of_a_frame_is_the_one_its_own_fit_makes(scale, city_levels, shop_levels):
    """`preprocessor_of_frame` (the tree types' and the linear model's) equals scikit-learn's fit to the bit:
    the same medians, scaling, levels and frequent levels, so the same design rows, seen and unseen."""
    frame = frame_of(2_501, seed=city_levels + scale, city_levels=city_levels, shop_levels=shop_levels)
    expected = build_preprocessor(FEATURES, scale=scale).fit(frame)
    ours, design = preprocessor_of_frame(FEATURES, frame, scale=scale)

    np.testing.assert_array_equal(design, expected.transform(frame))
    assert input_schema(ours, FEATURES) == input_schema(expected, FEATURES)
    unseen = frame_of(400, seed=7, city_levels=city_levels + 5, shop_levels=shop_levels + 5)
    np.testing.assert_array_equal(ours.transform(unseen), expected.transform(unseen))
    steps = [p.named_steps["encode"].named_transformers_["num"].named_steps for p in (ours, expected)]
    for name in ("impute", "scale") if scale else ("impute",):
        for attribute in ("statistics_", "mean_", "var_", "scale_"):
            if hasattr(steps[1][name], attribute):
                np.testing.assert_array_equal(getattr(steps[0][name], attribute), getattr(steps[1][name], attribute))
    for name in ("cat1", "cat2"):
        encoders = [p.named_steps["encode"].named_transformers_[name].named_steps["onehot"] for p in (ours, expected)]
        assert list(encoders[0].get_feature_names_out()) == list(encoders[1].get_feature_names_out())


def test_only_columns_with_missing_values_cost_a_median_search_pass():
    """Data whose numeric columns are complete is read once; a column with a missing value gets its exact median
    (its imputed values, and so the scaler, are what scikit-learn's fit gives); a complete one keeps the
    reservoir's estimate, within its rank error, and says so."""
    frame = frame_of(5_000, seed=11, city_levels=10, shop_levels=5)
    passes = []

    def blocks():
        passes.append(1)
        return [frame.iloc[:2500], frame.iloc[2500:]]

    stats = statistics_of(FEATURES, blocks, seed=1, reservoir_size=256, collect_limit=500)
    assert len(passes) > 1  # age and income have missing values: searched
    for name in ("age", "income"):
        expected = float(np.nanmedian(frame[name]))
        assert stats.numeric[name].median_exact and stats.numeric[name].median == expected
    complete = [n for n, s in stats.numeric.items() if s.missing == 0 and s.count > 256]
    assert complete, "the frame has complete numeric columns with more values than the reservoir"
    for name in complete:
        column = stats.numeric[name]
        assert not column.median_exact
        values = np.sort(coerced_values(frame, name))
        below, up_to = (np.searchsorted(values, column.median, side=side) / len(values) for side in ("left", "right"))
        assert below < 0.6 and up_to > 0.4, (name, below, up_to)  # a median of the values, within 10% in rank

    passes.clear()
    complete_only = [c for c in FEATURES if c.name in ("flat", "signup", "plan")]
    statistics_of(complete_only, blocks, seed=1, reservoir_size=256, collect_limit=500)
    assert len(passes) == 1  # nothing to impute: one pass
    passes.clear()
    statistics_of(complete_only, blocks, seed=1, reservoir_size=256, collect_limit=500, exact_median=EXACT_ALL)
    assert len(passes) > 1


def coerced_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    from trainer.features import FrameCoercer

    coerced = FrameCoercer(names=[c.name for c in FEATURES], kinds=[c.kind for c in FEATURES]).transform(frame)
    return coerced[name].to_numpy(dtype="float64")


def test_a_run_with_a_datetime_feature_reports_no_library_deprecation_warning():
    """A run's warnings are the user's to read: a datetime feature once added pandas' own deprecation notice
    (`Series.dt.dayofweek`) to every such run. The part keeps its name (`__dayofweek`, which saved models use)."""
    from trainer.ontology import ontology_from_frame
    from trainer.pipeline import train_and_evaluate

    frame = frame_of(600, seed=4, city_levels=6, shop_levels=4)
    frame["label"] = np.where(frame["income"].fillna(0) > 20_000, "high", "low")
    result = train_and_evaluate(frame, ontology_from_frame(frame, "label", "Row"), "decision_tree", {"random_seed": 1})
    assert not [w for w in result.warnings if "deprecat" in w.lower()], result.warnings
    assert any(entry["name"] == "signup" for entry in result.input_schema)
    names = result.model.pipeline[:-1].named_steps["encode"].get_feature_names_out()
    assert "num__signup__dayofweek" in names
