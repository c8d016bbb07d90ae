"""The streamed training path (`trainer.pipeline.train_streamed`, 20 Parquet parts in moto S3) gives the
in-memory path's results (`train_and_evaluate` on the concatenated frame): every type, both tasks, the same
seed and split, the same test metrics, importances, split record and input schema."""
from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import DATA_BUCKET, put_frame

from trainer.ontology import ontology_from_frame
from trainer.pipeline import train_and_evaluate, train_streamed
from trainer.storage import list_data_objects, load_training_data
from trainer.stream import PartStream, s3_fetch

PARTS = 20
TYPES = ["decision_tree", "random_forest", "regression", "neural_network"]


def table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    city = rng.integers(0, 60, rows)  # more levels than the one-hot encoder keeps
    score = x[:, 0] - 0.5 * x[:, 1] + (city % 7) / 4 + rng.normal(0, 0.5, rows)
    frame = pd.DataFrame({
        "x0": x[:, 0], "x1": np.where(rng.random(rows) < 0.1, np.nan, x[:, 1]), "x2": x[:, 2],
        "plan": rng.choice(np.array(["basic", "plus", "pro", None], dtype=object), rows),
        "city": np.array([f"city-{v}" for v in city], dtype=object),
        "is_active": rng.random(rows) < 0.5,
        "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**7, rows), unit="s"),
        "label": np.where(score > 1.2, "high", np.where(score > 0.2, "mid", "low")).astype(object),
        "amount": np.round(10 * score, 3),
    })
    frame.loc[rng.random(rows) < 0.03, ["label", "amount"]] = None
    return frame


@pytest.fixture(scope="module")
def parts(s3):
    frame = table(3_000, seed=21)
    prefix = f"streamed-{uuid.uuid4().hex[:8]}"
    for index, rows in enumerate(np.array_split(np.arange(len(frame)), PARTS)):
        put_frame(s3, f"{prefix}/part-{index:03d}.parquet", frame.iloc[rows].reset_index(drop=True), "parquet")
    return f"s3://{DATA_BUCKET}/{prefix}", frame


def _paths(s3, uri: str, ttl: str, target: str, model_type: str, config: dict, fit_sample_rows):
    from types import SimpleNamespace

    from trainer.ontology import parse_columns

    columns = parse_columns(ttl)
    frame = load_training_data(s3, [SimpleNamespace(uri=uri, format="parquet")], columns, target).frame
    memory = train_and_evaluate(frame, ttl, model_type, config, fit_sample_rows=fit_sample_rows)
    streamed = train_streamed(_stream(s3, uri, columns, target, cache_bytes=0), ttl, model_type, config,
                              fit_sample_rows=fit_sample_rows)
    kept = _stream(s3, uri, columns, target, cache_bytes=1 << 30)  # every part read once, then from memory
    from_memory = train_streamed(kept, ttl, model_type, config, fit_sample_rows=fit_sample_rows)
    assert len(kept._cache) == len(kept.objects)
    assert _comparable(from_memory) == _comparable(streamed)
    return memory, streamed


def _stream(s3, uri: str, columns, target: str, cache_bytes: int) -> PartStream:
    from trainer.ontology import choose_target

    return PartStream(list_data_objects(s3, uri, "parquet"), [c.name for c in columns],
                      choose_target(columns, target).name, s3_fetch(s3), batch_rows=128, cache_bytes=cache_bytes)


def _comparable(result) -> tuple:
    return (result.performance_metrics, result.split, result.input_schema, result.reference)


@pytest.mark.parametrize("model_type", TYPES)
@pytest.mark.parametrize("target", ["label", "amount"])
def test_the_streamed_path_gives_the_in_memory_results(s3, parts, model_type, target, monkeypatch):
    # A forest predicting on several threads adds its trees' outputs in the order the threads finish, so two
    # runs of one path can differ in the last bits; one thread makes the comparison exact.
    monkeypatch.setattr("trainer.models.default_jobs", lambda: 1)
    uri, frame = parts
    other = "amount" if target == "label" else "label"
    ttl = ontology_from_frame(frame.drop(columns=[other]), target, "Rows")
    config = {"random_seed": 5, "target_column": target, "max_iterations": 4, "early_stopping_rounds": 2,
              "hyperparameters": {"n_estimators": 15} if model_type == "random_forest" else {}}
    memory, streamed = _paths(s3, uri, ttl, target, model_type, config, fit_sample_rows=1_500)

    assert streamed.task == memory.task == ("classification" if target == "label" else "regression")
    assert streamed.performance_metrics == memory.performance_metrics
    assert streamed.split == memory.split
    assert streamed.input_schema == memory.input_schema
    assert streamed.excluded_columns == memory.excluded_columns
    assert streamed.training_metrics == memory.training_metrics
    assert streamed.reference == memory.reference
    if model_type in ("decision_tree", "random_forest", "regression"):
        assert streamed.split["fit_sample"]["rows_sampled"] == 1_500  # both sampled the same rows


def test_a_network_streamed_through_a_small_buffer_still_trains_on_every_fit_row(s3, parts, monkeypatch):
    """A buffer smaller than the fit rows shuffles differently (by part, then within the buffer), so the
    network differs from the in-memory one, but every epoch still sees each fit row exactly once."""
    import trainer.sources as sources
    from trainer.ontology import choose_target, parse_columns

    uri, frame = parts
    ttl = ontology_from_frame(frame.drop(columns=["amount"]), "label", "Rows")
    columns = parse_columns(ttl)
    seen: list[int] = []
    epoch = sources.StreamBatches.epoch

    def counting(self, number, batch_size):
        for x, y in epoch(self, number, batch_size):
            seen.append(len(y))
            yield x, y

    monkeypatch.setattr(sources.StreamBatches, "epoch", counting)
    stream = PartStream(list_data_objects(s3, uri, "parquet"), [c.name for c in columns],
                        choose_target(columns, "label").name, s3_fetch(s3), batch_rows=128)
    result = train_streamed(stream, ttl, "neural_network", {"random_seed": 5, "target_column": "label",
                                                             "max_iterations": 2, "early_stopping_rounds": 2},
                            buffer_rows=300)
    assert sum(seen) == 2 * result.split["fit_rows"]
    assert max(seen) == 128 and sum(n != 128 for n in seen) <= 2  # a short mini-batch ends an epoch, no other
    assert 0.0 < result.performance_metrics["accuracy"] <= 1.0
