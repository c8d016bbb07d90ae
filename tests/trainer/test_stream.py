"""`trainer.stream`: the part-file stream against the in-memory path it must equal (moto S3), its statistics
against pandas and scikit-learn, the shuffled batches, the sample, and a tracemalloc bound on memory
(`stream_memory_probe.py`)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import DATA_BUCKET, put_frame

from trainer.errors import TrainingFailed
from trainer.features import FrameCoercer, target_values
from trainer.ontology import Column
from trainer.pipeline import encode_target, prepare_rows, split_positions
from trainer.spec import TrainingConfig
from trainer.splitting import METHOD as SPLIT_METHOD
from trainer.storage import list_data_objects, load_training_data
from trainer.stream import (
    EXACT_ALL,
    PartStream,
    parts_holding,
    s3_fetch,
    sample_positions,
    scan,
    statistics,
)
from trainer.stream_stats import FeatureStats, exact_medians

COLUMNS = [
    Column("age", "integer"), Column("income", "number"), Column("plan", "string"), Column("code", "string"),
    Column("zone", "string"), Column("is_active", "boolean"), Column("signup", "datetime"), Column("label", "string"),
]
FEATURES = [c for c in COLUMNS if c.name != "label"]
LABEL, INCOME = COLUMNS[-1], COLUMNS[1]
POISON = "POISON"


def part_frames(seed: int = 7, sizes=(400, 350, 300)) -> list[pd.DataFrame]:
    """Parts whose dtypes differ (integers with and without missing values, string-kind columns holding
    numbers of different dtypes per part), with missing targets and features."""
    rng = np.random.default_rng(seed)
    parts = []
    for index, n in enumerate(sizes):
        age = rng.integers(18, 80, n).astype("float64")
        if index == 1:
            age[rng.random(n) < 0.1] = np.nan
        frame = pd.DataFrame({
            "age": age if index == 1 else age.astype("int64"),
            "income": np.where(rng.random(n) < 0.05, np.nan, rng.lognormal(10, 1, n).round(2)),
            "plan": rng.choice(np.array(["basic", "plus", "pro", None], dtype=object), n, p=[.5, .3, .15, .05]),
            "code": _codes(rng, n, index),
            "zone": _zones(rng, n, index),
            "is_active": rng.random(n) < 0.6,
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
            "label": rng.choice(np.array(["churn", "stay", "maybe", None], dtype=object), n, p=[.4, .4, .15, .05]),
        })
        parts.append(frame)
    return parts


def _codes(rng, n, index):
    values = rng.integers(1, 6, n)
    if index == 0:
        return values  # int64
    if index == 1:
        return np.where(np.arange(n) > n - 30, np.nan, values)  # float64 (int64 in its first Parquet batches)
    return np.array([f"c{v}" for v in values], dtype=object)


def _zones(rng, n, index):
    """String-kind numbers: int64 parts next to a float64 one (missing values late in the part, so its first
    Parquet batches are int64 too). Concatenated whole, every part reads "3.0", not "3"."""
    values = rng.integers(1, 4, n)
    if index != 1:
        return values
    return np.where(np.arange(n) > n - 30, np.nan, values)


def write_parts(s3, parts: list[pd.DataFrame], fmt: str) -> str:
    prefix = f"stream-{uuid.uuid4().hex[:8]}"
    for index, frame in enumerate(parts):
        put_frame(s3, f"{prefix}/part-{index:03d}.{fmt}", frame, fmt)
    put_frame(s3, f"{prefix}/_SUCCESS", pd.DataFrame(), "csv")
    return f"s3://{DATA_BUCKET}/{prefix}"


def open_stream(s3, uri: str, fmt: str, batch_rows: int = 97) -> PartStream:
    objects = list_data_objects(s3, uri, fmt)
    return PartStream(objects, [c.name for c in COLUMNS], LABEL.name, s3_fetch(s3), batch_rows=batch_rows)


def in_memory(s3, uri: str, fmt: str) -> pd.DataFrame:
    storage = [SimpleNamespace(uri=uri, format=fmt)]
    return load_training_data(s3, storage, COLUMNS, LABEL.name).frame


@pytest.fixture(scope="module", params=["parquet", "csv"])
def dataset(request, s3):
    parts = part_frames()
    # Poison the rows that will be the test split: they must never appear in a stream of the fit rows.
    uri = write_parts(s3, parts, request.param)
    frame = in_memory(s3, uri, request.param)
    kept, y_raw, task = prepare_rows(frame, LABEL)
    _, y = encode_target(y_raw, task)
    test = np.flatnonzero(target_values(LABEL, frame["label"], task).notna())[
        split_positions(y, task, TrainingConfig(random_seed=3))["test"]]
    for part, start in zip(parts, np.cumsum([0] + [len(p) for p in parts[:-1]]), strict=True):
        local = test[(test >= start) & (test < start + len(part))] - start
        part["plan"] = part["plan"].astype(object)
        part.iloc[local, part.columns.get_loc("plan")] = POISON
    uri = write_parts(s3, parts, request.param)
    return SimpleNamespace(fmt=request.param, uri=uri, frame=in_memory(s3, uri, request.param), test=test)


def test_rows_are_numbered_as_load_training_data_concatenates_them(s3, dataset):
    stream = open_stream(s3, dataset.uri, dataset.fmt)
    first = list(stream.batches())
    assert all(len(b.frame) <= 97 for b in first)
    assert np.array_equal(np.concatenate([b.positions for b in first]), np.arange(len(dataset.frame)))
    assert [b.part for b in first] == sorted(b.part for b in first)  # objects in listing order
    assert stream.part_rows == [400, 350, 300]
    assert [entry["rows"] for entry in stream.lineage()] == [400, 350, 300]
    # After the first pass every batch has the concatenated frame's dtypes: the same frame, cell for cell.
    again = pd.concat([b.frame for b in stream.batches()])
    pd.testing.assert_frame_equal(again, dataset.frame)


class RecordingS3:
    """The test's S3 client, recording each GetObject's Range (None for a whole read); `break_after` bodies
    raise once, after that many reads, as a dropped connection does."""

    def __init__(self, s3, break_after: int | None = None) -> None:
        self.s3, self.ranges, self.break_after, self.broken = s3, [], break_after, 0

    def get_object(self, **kwargs):
        self.ranges.append(kwargs.get("Range"))
        response = self.s3.get_object(**kwargs)
        if self.break_after is not None and not self.broken:
            response["Body"] = BreakingBody(response["Body"], self)
        return response


class BreakingBody:
    def __init__(self, body, owner: RecordingS3) -> None:
        self.body, self.owner, self.reads = body, owner, 0

    def read(self, amount=None):
        self.reads += 1
        if self.reads > self.owner.break_after and not self.owner.broken:
            self.owner.broken += 1
            raise ConnectionResetError("connection reset by peer")
        return self.body.read(amount)

    def close(self):
        self.body.close()


def _large_part(s3, columns: int = 6, rows: int = 30_000):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"label": rng.choice(["a", "b"], rows), **{f"x{i}": rng.normal(size=rows)
                                                                    for i in range(columns)}})
    key = f"ranged-{uuid.uuid4().hex[:8]}/part-000.parquet"
    put_frame(s3, key, frame, "parquet")
    return frame, list_data_objects(s3, f"s3://{DATA_BUCKET}/{key.split('/')[0]}", "parquet")


def _spans(recording: RecordingS3) -> list[tuple[int, int]]:
    assert None not in recording.ranges  # never the whole object
    return [tuple(map(int, r.removeprefix("bytes=").split("-"))) for r in recording.ranges]


def test_a_large_parquet_part_is_read_by_ranges_into_the_same_rows_one_get_per_column_chunk(s3, monkeypatch):
    import pyarrow.parquet as pq

    from trainer import stream as stream_module

    # Readers' buffers far smaller than a column chunk: each chunk is many reads, and still one GET.
    monkeypatch.setattr(stream_module, "PARQUET_READ_BYTES", 4096)
    frame, objects = _large_part(s3)
    wanted = list(frame.columns)
    recording = RecordingS3(s3)
    ranged = PartStream(objects, wanted, "label", s3_fetch(recording, ranged_above=0), batch_rows=4096)
    whole = PartStream(objects, wanted, "label", s3_fetch(s3), batch_rows=4096)
    pd.testing.assert_frame_equal(pd.concat([b.frame for b in ranged.batches()]),
                                  pd.concat([b.frame for b in whole.batches()]))
    size = objects[0].size
    body = s3.get_object(Bucket=objects[0].bucket, Key=objects[0].key)["Body"].read()
    metadata = pq.ParquetFile(io.BytesIO(body)).metadata
    chunks = []
    for group in range(metadata.num_row_groups):
        for column in range(metadata.num_columns):
            chunk = metadata.row_group(group).column(column)
            begin = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
            chunks.append((begin, begin + chunk.total_compressed_size))
    assert sum(end - begin > 4 * 4096 for begin, end in chunks) >= 6  # the numeric columns: many reads each
    spans = _spans(recording)
    # The footer's reads (to the object's end, before the chunk ends are known), then exactly one GET per
    # column chunk, each within that chunk.
    data_gets = [(a, b) for a, b in spans if b < size - 1]
    assert len(data_gets) == len(chunks)
    assert all(any(begin <= a and b < end for begin, end in chunks) for a, b in data_gets)
    assert len(spans) - len(data_gets) <= 2


def test_a_ranged_read_survives_a_dropped_connection_and_more_columns_than_open_gets(s3, monkeypatch):
    from trainer import storage
    from trainer import stream as stream_module

    monkeypatch.setattr(stream_module, "PARQUET_READ_BYTES", 4096)
    monkeypatch.setattr(storage, "MAX_OPEN_RANGES", 3)  # 9 columns read side by side: GETs are closed and reopened
    frame, objects = _large_part(s3, columns=8)
    wanted = list(frame.columns)
    recording = RecordingS3(s3, break_after=2)
    ranged = PartStream(objects, wanted, "label", s3_fetch(recording, ranged_above=0), batch_rows=4096)
    pd.testing.assert_frame_equal(pd.concat([b.frame for b in ranged.batches()]).reset_index(drop=True), frame)
    assert recording.broken == 1


def test_parts_within_the_cache_budget_are_read_once_and_give_the_same_rows(s3, dataset):
    objects = list_data_objects(s3, dataset.uri, dataset.fmt)
    wanted = [c.name for c in COLUMNS]
    recording = RecordingS3(s3)
    uncached = pd.concat([b.frame for b in open_stream(s3, dataset.uri, dataset.fmt).batches()])
    everything = PartStream(objects, wanted, LABEL.name, s3_fetch(recording), batch_rows=97, cache_bytes=1 << 30)
    first = pd.concat([b.frame for b in everything.batches()])
    reads = len(recording.ranges)
    assert reads == len(objects)
    for batch in everything.batches():  # a consumer changing a batch does not change what is kept
        batch.frame.index = batch.frame.index + 10**9
        batch.frame.iloc[:, 0] = batch.frame.iloc[::-1, 0].to_numpy()  # in place
    again = pd.concat([b.frame for b in everything.batches()])
    by_part = pd.concat([b.frame for b in everything.batches([2, 0])])
    assert len(recording.ranges) == reads  # no part read again
    pd.testing.assert_frame_equal(again, uncached)
    pd.testing.assert_frame_equal(first, uncached, check_dtype=False)  # the first pass's dtypes are per part
    assert everything.cached_bytes <= 1 << 30 and len(everything._cache) == len(objects)
    pd.testing.assert_frame_equal(by_part, pd.concat([uncached.loc[b.positions] for b in everything.batches([2, 0])]))


def test_data_over_the_cache_budget_keeps_nothing_and_is_read_each_pass(s3, dataset):
    objects = list_data_objects(s3, dataset.uri, dataset.fmt)
    wanted = [c.name for c in COLUMNS]
    measuring = PartStream(objects, wanted, LABEL.name, s3_fetch(s3), batch_rows=97, cache_bytes=1 << 30)
    list(measuring.batches())
    decoded, stored = measuring.cached_bytes, sum(o.size for o in objects)
    # Stored bytes under the budget, decoded over it (Parquet: compressed): the first parts are kept, then let
    # go; else (text) the stored size alone passes it and nothing is ever kept.
    budget = stored if stored < decoded else decoded - 1
    recording = RecordingS3(s3)
    stream = PartStream(objects, wanted, LABEL.name, s3_fetch(recording), batch_rows=97, cache_bytes=budget)
    first = pd.concat([b.frame for b in stream.batches()])
    assert stream._cache == {} and stream.cached_bytes == 0
    again = pd.concat([b.frame for b in stream.batches()])
    list(stream.batches([1]))
    assert stream._cache == {}
    assert len(recording.ranges) == 2 * len(objects) + 1
    pd.testing.assert_frame_equal(first, again, check_dtype=False)


def test_data_stored_in_more_bytes_than_the_cache_budget_is_never_kept(s3, dataset, monkeypatch):
    objects = list_data_objects(s3, dataset.uri, dataset.fmt)
    stream = PartStream(objects, [c.name for c in COLUMNS], LABEL.name, s3_fetch(s3), batch_rows=97,
                        cache_bytes=sum(o.size for o in objects) - 1)
    measured = []
    monkeypatch.setattr(pd.DataFrame, "memory_usage", lambda *a, **k: measured.append(1) or pd.Series([0]))
    list(stream.batches())
    assert measured == [] and stream._cache == {}


def test_a_part_replaced_while_it_is_read_by_ranges_fails_the_run(s3):
    frame = pd.DataFrame({"label": ["a", "b"] * 500, "x0": np.arange(1000.0)})
    key = f"ranged-{uuid.uuid4().hex[:8]}/part-000.parquet"
    put_frame(s3, key, frame, "parquet")
    objects = list_data_objects(s3, f"s3://{DATA_BUCKET}/{key.split('/')[0]}", "parquet")
    put_frame(s3, key, frame.iloc[::-1], "parquet")  # a new version after the listing: another ETag
    stream = PartStream(objects, ["label", "x0"], "label", s3_fetch(s3, ranged_above=0))
    with pytest.raises(TrainingFailed, match=f"s3://{DATA_BUCKET}/{key}"):
        list(stream.batches())


@pytest.mark.parametrize("target", [LABEL, INCOME, Column("age", "integer")], ids=lambda c: c.name)
def test_scan_gives_the_in_memory_target_and_rows(s3, dataset, target):
    stream = open_stream(s3, dataset.uri, dataset.fmt)
    result = scan(stream, target, [c for c in COLUMNS if c.name != target.name])
    kept, y_raw, task = prepare_rows(dataset.frame, target)
    classes, y = encode_target(y_raw, task)
    assert (result.task, result.classes) == (task, classes)
    assert result.y.dtype == y.dtype and np.array_equal(result.y, y)
    expected_rows = np.flatnonzero(target_values(target, dataset.frame[target.name], task).notna())
    assert np.array_equal(result.rows, expected_rows)
    assert result.rows_read == len(dataset.frame)
    pd.testing.assert_frame_equal(stream.gather(result.rows).reset_index(drop=True), kept)


def _fit_rows(result):
    return result.rows[split_positions(result.y, result.task, TrainingConfig(random_seed=3))["fit"]]


@pytest.mark.parametrize("reservoir_size,collect_limit", [(8192, 65536), (16, 40)], ids=["reservoir", "search"])
def test_statistics_equal_pandas_and_the_fitted_preprocessor(s3, dataset, reservoir_size, collect_limit):
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    stream = open_stream(s3, dataset.uri, dataset.fmt)
    fit = _fit_rows(scan(stream, LABEL))
    stats = statistics(stream, FEATURES, fit, reservoir_size=reservoir_size, collect_limit=collect_limit, seed=5,
                       exact_median=EXACT_ALL)
    coercer = FrameCoercer(names=[c.name for c in FEATURES], kinds=[c.kind for c in FEATURES])
    coerced = coercer.transform(dataset.frame.iloc[fit])
    numeric, categorical = coercer.output_columns()
    assert list(stats.numeric) == numeric and list(stats.categorical) == categorical and stats.rows == len(fit)
    for name in numeric:
        values, got = coerced[name], stats.numeric[name]
        assert (got.count, got.missing) == (values.notna().sum(), values.isna().sum()), name
        assert got.mean == pytest.approx(values.mean(), rel=1e-9), name
        assert got.variance(1) == pytest.approx(values.var(), rel=1e-9), name
        imputer = SimpleImputer(strategy="median").fit(values.to_frame())
        assert got.median_exact and got.median == imputer.statistics_[0], name
        scaler = StandardScaler().fit(imputer.transform(values.to_frame()))
        mean, variance = got.imputed_moments(got.median)
        assert mean == pytest.approx(scaler.mean_[0], rel=1e-9) and variance == pytest.approx(scaler.var_[0], rel=1e-9)
    for name in categorical:
        values, got = coerced[name], stats.categorical[name]
        assert got.counts == values.dropna().value_counts().to_dict(), name
        assert got.missing == values.isna().sum() and got.complete
    assert set(stats.categorical["zone"].counts) == {"1.0", "2.0", "3.0"}  # as the concatenated frame reads
    assert {"1", "1.0", "c1"} <= set(stats.categorical["code"].counts)
    assert POISON not in stats.categorical["plan"].counts  # the test rows are not in the fit rows' statistics


def test_scan_statistics_are_of_every_row_with_a_target(s3, dataset):
    stream = open_stream(s3, dataset.uri, dataset.fmt)
    result = scan(stream, LABEL, FEATURES)
    coerced = FrameCoercer(names=[c.name for c in FEATURES], kinds=[c.kind for c in FEATURES]).transform(
        dataset.frame.iloc[result.rows])
    for name in ("age", "income", "signup__hour", "is_active"):
        assert result.stats.numeric[name].mean == pytest.approx(coerced[name].mean(), rel=1e-9)
        assert result.stats.numeric[name].median == coerced[name].median()
    assert result.stats.categorical["plan"].counts == coerced["plan"].dropna().value_counts().to_dict()


@pytest.mark.parametrize("n", [1, 2, 999, 1000, 5001])
@pytest.mark.parametrize("shape", ["normal", "ties", "zero_inflated", "skewed"])
def test_exact_median_search_equals_numpy(n, shape):
    rng = np.random.default_rng(n)
    values = {"normal": rng.normal(0, 1, n), "ties": rng.integers(0, 4, n).astype(float),
              "zero_inflated": np.where(rng.random(n) < 0.7, 0.0, rng.exponential(1, n)),
              "skewed": rng.pareto(1.2, n) * -1}[shape]
    values[rng.random(n) < 0.1] = np.nan
    frames = [pd.DataFrame({"x": chunk}) for chunk in np.array_split(values, 7)]
    stats = FeatureStats.empty(["x"], [], seed=1, reservoir_size=32)
    for frame in frames:
        stats.update(frame)
    pending = stats.medians_from_reservoir()
    exact_medians(stats, pending, lambda: iter(frames), collect_limit=50)
    present = values[~np.isnan(values)]
    expected = float(np.median(present)) if len(present) else 0.0
    assert stats.numeric["x"].median_exact and stats.numeric["x"].median == expected


def test_level_counts_are_capped_and_say_so():
    stats = FeatureStats.empty([], ["s"], max_levels=3)
    stats.update(pd.DataFrame({"s": ["a", "b", "c", "d", "a", np.nan]}))
    stats.update(pd.DataFrame({"s": ["d", "a", "e"]}))
    got = stats.categorical["s"]
    assert len(got.counts) == 3 and got.counts["a"] == 3
    assert got.overflow_rows == 3 and not got.complete and got.count == 8 and got.missing == 1


def test_batches_for_yields_each_requested_row_once_per_epoch_in_a_seeded_order(s3, dataset):
    stream = open_stream(s3, dataset.uri, dataset.fmt)
    result = scan(stream, LABEL)
    fit_index = split_positions(result.y, result.task, TrainingConfig(random_seed=3))["fit"]
    fit, y_fit = result.rows[fit_index], result.y[fit_index]
    assert len(np.intersect1d(fit, dataset.test)) == 0

    def epoch(number, seed=11):
        return list(stream.batches_for(fit, y_fit, seed=seed, epoch=number, buffer_rows=250, batch_rows=64))

    first = epoch(0)
    order = np.concatenate([b.positions for b in first])
    assert np.array_equal(np.sort(order), np.sort(fit)) and len(order) == len(fit)
    assert all(len(b.positions) <= 64 for b in first)
    frames = pd.concat([b.frame for b in first])
    assert POISON not in set(frames["plan"].dropna()) and not np.isin(order, dataset.test).any()
    assert np.array_equal(frames.index.to_numpy(), order)
    pd.testing.assert_frame_equal(frames, dataset.frame.iloc[order])
    lookup = dict(zip(fit.tolist(), y_fit.tolist(), strict=True))
    assert np.concatenate([b.y for b in first]).tolist() == [lookup[p] for p in order.tolist()]
    assert np.array_equal(order, np.concatenate([b.positions for b in epoch(0)]))  # reproducible
    assert not np.array_equal(order, np.concatenate([b.positions for b in epoch(1)]))  # reshuffled per epoch
    assert not np.array_equal(order, np.sort(order))


def test_gather_returns_frame_iloc(s3, dataset):
    stream = open_stream(s3, dataset.uri, dataset.fmt)
    positions = np.random.default_rng(2).choice(len(dataset.frame), 300, replace=False)
    pd.testing.assert_frame_equal(stream.gather(positions), dataset.frame.iloc[positions])
    only_last_part = np.array([1049, 800, 1000])
    pd.testing.assert_frame_equal(stream.gather(only_last_part), dataset.frame.iloc[only_last_part])
    with pytest.raises(ValueError):
        stream.gather(np.array([len(dataset.frame)]))


def test_parts_holding_names_the_parts_with_a_wanted_row():
    offsets = np.array([0, 10, 10, 25, 40])  # part 1 is empty
    for wanted in ([], [0], [9, 10], [24], [25, 39], [3, 12, 30], list(range(40))):
        wanted = np.array(wanted, dtype="int64")
        expected = sorted({int(np.searchsorted(offsets, w, side="right") - 1) for w in wanted})
        assert parts_holding(offsets, wanted).tolist() == expected, wanted


def test_sample_positions_is_stratified_reproducible_and_recorded():
    rng = np.random.default_rng(0)
    y = rng.choice([0, 1, 2], 5000, p=[0.7, 0.25, 0.05])
    positions = np.arange(10_000, 15_000)
    chosen, record = sample_positions(y, positions, 1000, "classification", seed=4)
    again, _ = sample_positions(y, positions, 1000, "classification", seed=4)
    assert np.array_equal(chosen, again) and np.array_equal(chosen, np.sort(chosen))
    assert len(chosen) == 1000 and np.isin(chosen, positions).all()
    picked = y[chosen - 10_000]
    for label in (0, 1, 2):
        assert abs((picked == label).mean() - (y == label).mean()) < 0.002
    assert record == {"rows_total": 5000, "cap": 1000, "random_seed": 4, "rows_sampled": 1000,
                      "method": f"{SPLIT_METHOD}: stratified by target"}
    everything, record = sample_positions(y, positions, 6000, "classification", seed=4)
    assert np.array_equal(everything, positions) and record["rows_sampled"] == 5000
    _, record = sample_positions(rng.normal(size=5000), positions, 100, "regression", seed=4)
    assert record["method"].endswith(": uniform") and record["rows_sampled"] == 100


# --- memory ---------------------------------------------------------------------------------------------

def test_a_pass_keeps_peak_memory_bounded_as_rows_grow():
    # Measured in a fresh interpreter (`stream_memory_probe.py`): tracemalloc traces every thread, and in the
    # test session the servers other tests leave running would be counted too.
    probe = Path(__file__).with_name("stream_memory_probe.py")
    done = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    growth = json.loads(done.stdout.strip().splitlines()[-1])
    # The 1-D target and positions (8 bytes a row each, plus the transient copies of concatenating and
    # encoding them) may grow with rows; the 25 columns (200 bytes a row as float64) must not.
    assert growth["whole"] > 190, growth  # the measure sees a frame that grows: the bound below means something
    assert growth["scan"] < 64, growth
    assert growth["epoch"] < 64, growth
