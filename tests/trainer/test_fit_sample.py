"""The tree types and the linear model fit on a bounded, reproducible sample of the fit rows
(TRAINER_FIT_SAMPLE_ROWS, trainer.pipeline.sample_fit_rows); the test metrics stay over the whole test split."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from trainer.config import Settings
from trainer.ontology import ontology_from_frame
from trainer.pipeline import DEFAULT_FIT_SAMPLE_ROWS, train_and_evaluate

CONFIG = {"random_seed": 11, "target_column": "label"}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, str]:
    x, y = make_classification(3000, 5, n_informative=3, weights=[0.8, 0.2], random_state=4)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    frame["label"] = np.where(y == 1, "rare", "common")
    return frame, ontology_from_frame(frame, "label", "Rows")


def test_a_tree_over_the_cap_fits_on_a_stratified_sample_and_says_so(data):
    frame, ttl = data
    whole = train_and_evaluate(frame, ttl, "decision_tree", CONFIG, fit_sample_rows=None)
    sampled = train_and_evaluate(frame, ttl, "decision_tree", CONFIG, fit_sample_rows=500)

    record = sampled.split["fit_sample"]
    assert record["rows_total"] == whole.split["fit_rows"] > 500
    assert record["rows_sampled"] == sampled.split["fit_rows"] == 500 and record["cap"] == 500
    assert "stratified" in record["method"] and record["random_seed"] == 11
    assert sampled.model.pipeline[-1].tree_.n_node_samples[0] == 500  # the estimator saw the sample only
    # The test split is the same whole split either way, and the metrics are over it.
    assert sampled.split["test_positions_sha256"] == whole.split["test_positions_sha256"]
    assert sampled.performance_metrics["test_rows"] == whole.performance_metrics["test_rows"]
    assert any("sample of 500" in w and "TRAINER_FIT_SAMPLE_ROWS" in w for w in sampled.warnings)
    assert "fit_sample" not in whole.split


def test_the_sample_keeps_the_class_shares_and_is_reproducible(data):
    frame, ttl = data
    first = train_and_evaluate(frame, ttl, "regression", CONFIG, fit_sample_rows=400)
    second = train_and_evaluate(frame, ttl, "regression", CONFIG, fit_sample_rows=400)
    assert first.performance_metrics == second.performance_metrics
    assert first.split == second.split
    share = (frame["label"] == "rare").mean()
    fitted = first.model.pipeline[-1]
    assert fitted.n_features_in_ == 5
    # Stratified: the sample's rare share is the data's (within one row of 400).
    from trainer.ontology import Column
    from trainer.pipeline import encode_target, prepare_rows, sample_fit_rows, split_positions
    from trainer.spec import TrainingConfig

    rows, y_raw, task = prepare_rows(frame, Column(name="label", kind="string"))
    classes, y = encode_target(y_raw, task)
    fit = split_positions(y, task, TrainingConfig.from_dict(CONFIG))["fit"]
    chosen, _ = sample_fit_rows(y, fit, 400, task, 11)
    rare = classes.index("rare")
    assert abs((y[chosen] == rare).sum() - share * 400) <= 1
    assert set(chosen) <= set(fit)


def test_a_forest_is_sampled_and_a_network_never(data):
    frame, ttl = data
    forest = train_and_evaluate(frame, ttl, "random_forest", {**CONFIG, "max_iterations": 5}, fit_sample_rows=300)
    assert forest.split["fit_rows"] == 300 and forest.split["fit_sample"]["rows_sampled"] == 300
    network = train_and_evaluate(frame, ttl, "neural_network", {**CONFIG, "max_iterations": 2}, fit_sample_rows=300)
    assert network.split["fit_rows"] > 300 and "fit_sample" not in network.split


def test_at_or_under_the_cap_nothing_is_sampled(data):
    frame, ttl = data
    result = train_and_evaluate(frame, ttl, "decision_tree", CONFIG, fit_sample_rows=len(frame))
    assert "fit_sample" not in result.split


def test_the_cap_is_the_trainer_setting_with_a_documented_default():
    base = {"TRAINER_MODEL_ID": "m", "TRAINER_RUN_ID": "r", "TRAINER_CALLBACK_URL": "http://x",
            "TRAINER_CALLBACK_TOKEN": "t", "TRAINER_ARTIFACT_BUCKET": "b", "TRAINER_SPEC": "{}"}
    assert Settings.from_env(base).fit_sample_rows == DEFAULT_FIT_SAMPLE_ROWS == 2_000_000
    assert Settings.from_env({**base, "TRAINER_FIT_SAMPLE_ROWS": "1000"}).fit_sample_rows == 1000
    assert Settings.from_env({**base, "TRAINER_FIT_SAMPLE_ROWS": "0"}).fit_sample_rows == 0  # 0: every row
    assert Settings.from_env(base).cache_bytes == 512 * 1024 * 1024
    assert Settings.from_env({**base, "TRAINER_CACHE_BYTES": "0"}).cache_bytes == 0  # 0: read every pass
