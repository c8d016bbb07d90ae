"""The training data as a stream of batches over its part files, with one part in memory at a time.

What it hides: fetching and parsing each part (`fetch` returns its bytes; Parquet is read with
`pyarrow.parquet.ParquetFile.iter_batches`, CSV / JSON lines with `trainer.storage.parse_bytes` and sliced),
the global row numbering, dtype harmonisation across parts, the seeded file-and-buffer shuffle, and the passes
that compute the target and the preprocessing statistics.

Row numbering. Parts are read in the order given (`trainer.storage.list_data_objects`: location, then key),
and rows are numbered 0..N-1 across them: exactly the row labels of the frame `load_training_data`
concatenates from the same objects. Functions here take and return these global positions ("rows"); the
in-memory pipeline's split positions are positions among the rows with a target value, so map them with
`Scan.rows[split_positions]`.

Dtypes. `load_training_data` concatenates whole parts, so a column's pandas dtype is promoted across them
(a part of integers next to one with a missing value becomes float64; a string-kind column then reads
"1.0", not "1"). Every full pass records each column's dtype per batch; later passes cast every batch to the
dtype the concatenation would have had, so `gather`, `batches_for` and `statistics` see the in-memory values.
The first pass (`scan`) cannot know it yet: its target is concatenated whole (identical by construction),
but its feature statistics see each part's own dtype (only string-kind columns holding numbers in parts of
different dtypes can differ; `statistics` over the fit rows, after the scan, is exact).
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pandas as pd

from trainer.errors import TrainingFailed
from trainer.ontology import Column
from trainer.storage import DataObject, RangedObject, _describe, parse_bytes, with_declared_columns
from trainer.stream_stats import (
    DEFAULT_COLLECT_LIMIT,
    DEFAULT_MAX_LEVELS,
    DEFAULT_RESERVOIR_SIZE,
    FeatureStats,
    exact_medians,
)

DEFAULT_BATCH_ROWS = 50_000
# Passes whose result must not depend on how rows were cut into parts (statistics, predictions) run over
# blocks of exactly this many rows (`fixed_blocks`); it is also the network's evaluation chunk.
BLOCK_ROWS = 65_536
DEFAULT_BUFFER_ROWS = 200_000

# A part: its bytes, or (a Parquet part) a seekable binary file Parquet reads by ranges.
Fetch = Callable[[DataObject], "bytes | BinaryIO"]
# A Parquet part larger than this is read by ranged GETs, one per column chunk, its body read
# `PARQUET_READ_BYTES` at a time, never whole: a part's memory is then its decoded batch and the readers'
# buffers, not its size. Smaller parts cost one GET each.
RANGED_READ_ABOVE_BYTES = 32 * 1024 * 1024
# Which numeric columns `statistics_of` finds the exact median of, by further passes when needed.
EXACT_WHERE_IMPUTED, EXACT_ALL, EXACT_NONE = "where imputed", "all", "none"
PARQUET_READ_BYTES = 1024 * 1024


def column_chunk_ends(metadata) -> list[int]:
    """The byte offsets where a Parquet file's column chunks end (a chunk starts at its dictionary page, when it
    has one, else its first data page)."""
    ends = []
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for column in range(row_group.num_columns):
            chunk = row_group.column(column)
            start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
            ends.append(start + chunk.total_compressed_size)
    return ends


def s3_fetch(client, ranged_above: int = RANGED_READ_ABOVE_BYTES) -> Fetch:
    """A part from S3, every GET with If-Match on its listed ETag (as `read_data_object` reads it): the bytes,
    or for a Parquet part over `ranged_above` bytes a `RangedObject`."""

    def fetch(obj: DataObject) -> bytes | BinaryIO:
        if obj.format == "parquet" and obj.size > ranged_above:
            return RangedObject(client, obj)
        try:
            return client.get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')["Body"].read()
        except Exception as exc:
            raise TrainingFailed(f"cannot read {obj.uri}: {_describe(exc)}") from None

    return fetch


@dataclass(frozen=True)
class Batch:
    """Consecutive rows of one part: `frame` (the wanted columns, indexed by global position) from `offset`."""

    frame: pd.DataFrame
    offset: int
    part: int

    @property
    def positions(self) -> np.ndarray:
        return np.arange(self.offset, self.offset + len(self.frame))


@dataclass(frozen=True)
class Selected:
    """Requested rows in stream order (`batches_for`): the frame indexed by global position, and their y."""

    frame: pd.DataFrame
    positions: np.ndarray
    y: np.ndarray | None


@dataclass
class PartStream:
    """The rows of `objects` (in this order), restricted to `wanted` columns, `batch_rows` at a time."""

    objects: Sequence[DataObject]
    wanted: list[str]
    target: str
    fetch: Fetch
    batch_rows: int = DEFAULT_BATCH_ROWS
    part_rows: list[int] | None = None  # rows per part, known after one full pass
    _witness: dict[str, dict[str, pd.Series]] = field(default_factory=dict)
    dtypes: dict[str, object] | None = None  # the concatenated frame's dtype per column, after one full pass
    _part_dtypes: list[dict[str, object]] = field(default_factory=list)
    # The decoded parts are kept in memory when all of them fit this many bytes (`DataFrame.memory_usage(deep=
    # True)`), so that passes after the first slice memory instead of reading the data again. All or nothing:
    # data whose stored size passes the budget is never kept, and once what the parts read so far take passes
    # it, everything kept is let go and no part is kept (memory: one part, as with 0, which keeps none). So
    # memory is the budget at most, and data larger than it streams exactly as without. TRAINER_CACHE_BYTES.
    cache_bytes: int = 0
    _cache: dict[int, list[pd.DataFrame]] = field(default_factory=dict)
    cached_bytes: int = 0
    _over_budget: bool = False

    def __post_init__(self) -> None:
        # Data whose stored bytes alone pass the budget will not fit it decoded either: never kept.
        self._over_budget = sum(o.size for o in self.objects) > self.cache_bytes

    def batches(self, parts: Iterable[int] | None = None) -> Iterator[Batch]:
        """Every row, in order (or the rows of `parts`, in that order); each batch at most `batch_rows` rows."""
        if parts is None:
            yield from self._full_pass()
            return
        offsets = self.offsets()
        for part in parts:
            yield from self._part_batches(part, int(offsets[part]))

    def offsets(self) -> np.ndarray:
        """The global position of each part's first row (and, last, the total): a counting pass if needed."""
        if self.part_rows is None:
            for _ in self._full_pass():
                pass
        return np.concatenate([[0], np.cumsum(self.part_rows, dtype="int64")])

    @property
    def total_rows(self) -> int:
        return int(self.offsets()[-1])

    def lineage(self) -> list[dict]:
        """The run record's data lineage, as `load_training_data` writes it."""
        counts = self.part_rows if self.part_rows is not None else [None] * len(self.objects)
        return [{"uri": o.uri, "etag": o.etag, "size": o.size, "format": o.format, "rows": n}
                for o, n in zip(self.objects, counts, strict=True)]

    def _full_pass(self) -> Iterator[Batch]:
        counts, offset = [], 0
        witness: dict[str, dict[str, pd.Series]] = {}
        part_dtypes = []
        for part in range(len(self.objects)):
            rows, part_witness = 0, {}
            for batch in self._part_batches(part, offset + rows):
                rows += len(batch.frame)
                _observe(part_witness, batch.frame)
                yield batch
            counts.append(rows)
            offset += rows
            # A part's dtype is what its whole read gives (Parquet batches of one part may differ: int64 in a
            # batch without a missing value, float64 in one with); the parts' dtypes then promote together.
            part_dtypes.append(_common_dtypes(part_witness, self.wanted))
            _observe(witness, pd.DataFrame({name: _concat(samples.values()) for name, samples in part_witness.items()}))
        self.part_rows = counts
        if self.dtypes is None:
            self._part_dtypes, self.dtypes = part_dtypes, _common_dtypes(witness, self.wanted)

    def _part_batches(self, part: int, offset: int) -> Iterator[Batch]:
        for frame in self._part_frames(part):
            if not len(frame):
                continue
            if self.dtypes is not None:
                frame = _harmonise(_harmonise(frame, self._part_dtypes[part]), self.dtypes)
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            yield Batch(frame=frame, offset=offset, part=part)
            offset += len(frame)

    def _part_frames(self, part: int) -> Iterator[pd.DataFrame]:
        """The part's frames as read, from memory when kept (`cache_bytes`). What is kept is never handed out,
        only shallow copies: under pandas' copy-on-write (pandas 3) a consumer that changes one, its values or
        its index, changes its own copy, so it cannot change what is kept, and one that only reads or selects
        rows (most passes) copies nothing."""
        kept = self._cache.get(part)
        if kept is not None:
            for frame in kept:
                yield frame.copy(deep=False)
            return
        keeping: list[pd.DataFrame] | None = None if self._over_budget else []
        size = 0
        for frame in self._frames(self.objects[part]):
            if keeping is not None:
                size += int(frame.memory_usage(index=False, deep=True).sum())
                if self.cached_bytes + size > self.cache_bytes:
                    keeping = None
                    self._let_go()
                else:
                    keeping.append(frame)
                    frame = frame.copy(deep=False)
            yield frame
        if keeping is not None:
            self._cache[part] = keeping
            self.cached_bytes += size

    def _let_go(self) -> None:
        """The data does not fit the budget: keep nothing, now or later."""
        self._over_budget = True
        self._cache.clear()
        self.cached_bytes = 0

    def _frames(self, obj: DataObject) -> Iterator[pd.DataFrame]:
        body = self.fetch(obj)
        try:
            if obj.format == "parquet":
                try:
                    yield from self._parquet_frames(obj, io.BytesIO(body) if isinstance(body, bytes) else body)
                finally:
                    if not isinstance(body, bytes):
                        body.close()  # a RangedObject's open GETs
                return
            frame = parse_bytes(body if isinstance(body, bytes) else body.read(), obj.format, obj.key, self.wanted)
        except TrainingFailed:
            raise
        except Exception as exc:
            raise TrainingFailed(f"unreadable {obj.format} object {obj.uri}: {type(exc).__name__}: {exc}") from None
        del body
        frame = self._checked(frame, obj)
        for start in range(0, len(frame), self.batch_rows):
            yield frame.iloc[start:start + self.batch_rows].reset_index(drop=True)

    def _parquet_frames(self, obj: DataObject, source: BinaryIO) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        # buffer_size: column chunks are read (and, from a RangedObject, fetched) that much at a time.
        part = pq.ParquetFile(source, buffer_size=PARQUET_READ_BYTES, pre_buffer=False)
        if isinstance(source, RangedObject):
            source.stop_at(column_chunk_ends(part.metadata))  # one GET per column chunk read
        present = [name for name in self.wanted if name in part.schema_arrow.names]
        if present:
            self._checked(pd.DataFrame(columns=present), obj)
        for record_batch in part.iter_batches(batch_size=self.batch_rows, columns=present):
            frame = record_batch.to_pandas() if present else pd.DataFrame(index=range(record_batch.num_rows))
            yield frame.reindex(columns=self.wanted)

    def _checked(self, frame: pd.DataFrame, obj: DataObject) -> pd.DataFrame:
        """`read_data_object`'s rule: a declared column missing from a part with columns fails naming both."""
        return with_declared_columns(frame, self.wanted, self.target, obj.uri)

    def selected(self, positions: np.ndarray) -> Iterator[pd.DataFrame]:
        """The rows at `positions` (any order; each once), in stream order, batch by batch; parts without
        a requested row are not read."""
        wanted = increasing_positions(positions)
        offsets = self.offsets()
        if len(wanted) and (wanted[0] < 0 or wanted[-1] >= offsets[-1]):
            raise ValueError(f"positions must be within 0..{offsets[-1] - 1}")
        parts = parts_holding(offsets, wanted)
        for batch in self.batches(parts.tolist()):
            low, high = np.searchsorted(wanted, [batch.offset, batch.offset + len(batch.frame)])
            if high > low:
                yield batch.frame.iloc[wanted[low:high] - batch.offset]

    def gather(self, positions: np.ndarray) -> pd.DataFrame:
        """`frame.iloc[positions]` of the concatenated frame (same order, index = global positions), reading
        each part holding a requested row once. For a bounded sample: the result is in memory."""
        positions = np.asarray(positions, dtype="int64")
        pieces = list(self.selected(positions))
        if not pieces:
            return self._empty()
        frame = pd.concat(pieces) if len(pieces) > 1 else pieces[0]
        if is_increasing(positions):
            return frame  # increasing (the split's are): already in their order, each once
        return frame.loc[positions]

    def _empty(self) -> pd.DataFrame:
        frame = pd.DataFrame(columns=self.wanted)
        return _harmonise(frame, self.dtypes) if self.dtypes else frame

    def batches_for(self, positions: np.ndarray, y: np.ndarray | None = None, *, seed: int, epoch: int = 0,
                    buffer_rows: int = DEFAULT_BUFFER_ROWS, batch_rows: int | None = None) -> Iterator[Selected]:
        """Every row at `positions` exactly once, shuffled: parts in a seeded random order, rows within a buffer
        of `buffer_rows` (filled across parts) permuted, then yielded `batch_rows` at a time (default the
        stream's). `y[i]` belongs to `positions[i]`. The order is a function of (seed, epoch) and the data
        alone; a row not in `positions` is never yielded. Memory: the buffer, one part and one batch.

        A buffer is permuted in position order, so when every requested row fits one buffer the order is
        `sorted(positions)[epoch_permutation(len(positions), seed, epoch)]`, whatever the parts: the order the
        in-memory network trains in (`trainer.nn.ArrayBatches`)."""
        positions = np.asarray(positions, dtype="int64")
        if is_increasing(positions):
            wanted, wanted_y = positions, (None if y is None else np.asarray(y))  # sorted already: no copies
        else:
            if len(np.unique(positions)) != len(positions):
                raise ValueError("positions must be distinct")
            order = np.argsort(positions, kind="stable")
            wanted, wanted_y = positions[order], (None if y is None else np.asarray(y)[order])
        offsets = self.offsets()
        parts_rng, buffer_rng = order_generators(seed, epoch)
        parts = parts_holding(offsets, wanted)
        buffer = _ShuffleBuffer(buffer_rng, buffer_rows, batch_rows or self.batch_rows)
        for batch in self.batches(parts_rng.permutation(parts).tolist()):
            low, high = np.searchsorted(wanted, [batch.offset, batch.offset + len(batch.frame)])
            if high > low:
                rows = wanted[low:high]
                yield from buffer.add(batch.frame.iloc[rows - batch.offset], rows,
                                      None if wanted_y is None else wanted_y[low:high])
        yield from buffer.flush()


def parts_holding(offsets: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The parts (by their first-row `offsets`, total last) holding at least one of the increasing positions
    `wanted`: one search per part boundary, not one per position (no array as long as `wanted`)."""
    return np.flatnonzero(np.diff(np.searchsorted(wanted, offsets)) > 0)


def is_increasing(positions: np.ndarray) -> bool:
    """Whether `positions` is strictly increasing (so distinct and in order; an empty or one-row array is)."""
    return len(positions) < 2 or bool(np.all(positions[1:] > positions[:-1]))


def increasing_positions(positions) -> np.ndarray:
    """`positions` as increasing distinct int64 positions: itself when it is already (the split's are), else
    sorted and deduplicated (a copy)."""
    positions = np.asarray(positions, dtype="int64")
    return positions if is_increasing(positions) else np.unique(positions)


def order_generators(seed: int, epoch: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(the generator of an epoch's part order, that of its buffer permutations): independent streams, so the
    first buffer's permutation does not depend on how many parts there are."""
    return np.random.default_rng([seed, epoch, 0]), np.random.default_rng([seed, epoch, 1])


def epoch_permutation(rows: int, seed: int, epoch: int) -> np.ndarray:
    """The order of an epoch over `rows` rows held in memory: what `batches_for` gives when they fit a buffer."""
    return order_generators(seed, epoch)[1].permutation(rows)


def fixed_blocks(frames: Iterable[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """The rows of `frames`, in order, as frames of exactly `rows` rows (the last may be shorter): a computation
    over blocks then gives the same bits however the rows were cut into parts and batches."""
    pending: list[pd.DataFrame] = []
    held = 0
    for frame in frames:
        while len(frame):
            take = min(rows - held, len(frame))
            pending.append(frame.iloc[:take])
            held += take
            frame = frame.iloc[take:]
            if held == rows:
                yield pd.concat(pending) if len(pending) > 1 else pending[0]
                pending, held = [], 0
    if held:
        yield pd.concat(pending) if len(pending) > 1 else pending[0]


class _ShuffleBuffer:
    def __init__(self, rng: np.random.Generator, buffer_rows: int, batch_rows: int) -> None:
        self.rng, self.buffer_rows, self.batch_rows = rng, max(1, buffer_rows), max(1, batch_rows)
        self.pieces: list[tuple[pd.DataFrame, np.ndarray, np.ndarray | None]] = []
        self.rows = 0

    def add(self, frame, positions, y) -> Iterator[Selected]:
        self.pieces.append((frame, positions, y))
        self.rows += len(positions)
        if self.rows >= self.buffer_rows:
            yield from self.flush()

    def flush(self) -> Iterator[Selected]:
        if not self.pieces:
            return
        frames, positions, ys = zip(*self.pieces, strict=True)
        self.pieces, self.rows = [], 0
        frame = pd.concat(frames) if len(frames) > 1 else frames[0]
        del frames  # the pieces: not held beside their concatenation while the batches are handed out
        positions = np.concatenate(positions)
        y = None if ys[0] is None else np.concatenate(ys)
        # In position order first: the buffer's permutation then does not depend on the order parts came in.
        shuffle = np.argsort(positions, kind="stable")[self.rng.permutation(len(positions))]
        for start in range(0, len(shuffle), self.batch_rows):
            take = shuffle[start:start + self.batch_rows]
            yield Selected(frame=frame.iloc[take], positions=positions[take], y=None if y is None else y[take])


def _observe(witness: dict[str, dict[str, pd.Series]], frame: pd.DataFrame) -> None:
    """Keep, per column and per dtype seen, one value (a non-missing one when there is): enough to know the
    dtype `pd.concat` of all the parts gives."""
    for name in frame.columns:
        column = frame[name]
        seen = witness.setdefault(name, {})
        key = str(column.dtype)
        if key in seen and seen[key].notna().any():
            continue
        present = column[column.notna()]
        seen[key] = (present if len(present) else column).iloc[:1].reset_index(drop=True)


def _concat(samples: Iterable[pd.Series]) -> pd.Series:
    samples = list(samples)
    return pd.concat(samples, ignore_index=True) if len(samples) > 1 else samples[0]


def _common_dtypes(witness: dict[str, dict[str, pd.Series]], wanted: list[str]) -> dict[str, object]:
    return {name: _concat(witness[name].values()).dtype for name in wanted if witness.get(name)}


def _harmonise(frame: pd.DataFrame, dtypes: dict[str, object] | None) -> pd.DataFrame:
    if not dtypes:
        return frame
    changes = {name: dtype for name, dtype in dtypes.items() if name in frame.columns and frame[name].dtype != dtype}
    return frame.astype(changes) if changes else frame


# --- passes ----------------------------------------------------------------------------------------------


@dataclass
class Scan:
    """Pass 1: the rows with a target value (global positions, increasing), their encoded target, the task
    and classes, exactly as `prepare_rows` + `encode_target` give them for the concatenated frame; and the
    preprocessing statistics of those rows (when features were given)."""

    rows: np.ndarray
    y: np.ndarray
    task: str
    classes: list | None
    rows_read: int
    stats: FeatureStats | None = None


def scan(stream: PartStream, target: Column, features: list[Column] | None = None, *, seed: int = 0,
         reservoir_size: int = DEFAULT_RESERVOIR_SIZE, max_levels: int = DEFAULT_MAX_LEVELS) -> Scan:
    """One pass over every row: the target column (kept whole: one 1-D array) and the statistics of `features`
    over the rows with a target value. Medians are exact for columns whose values fit the reservoir, else an
    estimate (`statistics` makes them exact with further passes)."""
    from trainer.features import infer_task, target_values
    from trainer.pipeline import encode_target, prepare_target

    coercer, stats = _coercer_and_stats(features, seed, reservoir_size, max_levels)
    # Per batch, only the rows with a target value are kept: their raw target, and where they are (the batch's
    # span when every row has one, else their positions). Memory: the raw target of the kept rows, not a copy of
    # the whole column and of a frame around it; the positions are made once the target is encoded.
    pieces: list[tuple[int, pd.Series]] = []
    spans: list[tuple[int, int] | np.ndarray] = []
    rows_read = 0
    for batch in stream.batches():
        raw = batch.frame[target.name]
        rows_read += len(raw)
        # Which rows have a target value does not depend on the task (integer targets coerce alike either way).
        keep = target_values(target, raw, infer_task(target, raw)).notna().to_numpy()
        if not keep.any():
            continue
        if keep.all():
            pieces.append((batch.part, raw.copy()))  # a copy: a view would keep the batch's whole block alive
            spans.append((batch.offset, len(raw)))
        else:
            pieces.append((batch.part, raw[keep].copy()))
            spans.append(batch.positions[keep])
        if stats is not None:
            stats.update(coercer.transform(batch.frame.loc[keep]))
    if not rows_read:
        names = ", ".join(o.uri for o in stream.objects)
        raise TrainingFailed(f"no training data: {len(stream.objects)} object(s) with 0 rows ({names})")
    # The first pass has told the stream the dtypes the concatenated parts have: cast each piece as a later
    # pass would cast its batch, so the kept values are those of the concatenated frame's target column.
    column = pd.concat([_harmonise(_harmonise(piece.to_frame(), stream._part_dtypes[part]), stream.dtypes)
                        [target.name] for part, piece in pieces] or [pd.Series([], dtype=object)],
                       ignore_index=True)
    del pieces
    y_raw, _, task = prepare_target(column, target)
    del column
    classes, y = encode_target(y_raw, task)
    del y_raw
    rows = _positions_of(spans)
    if len(y) != len(rows):
        raise AssertionError(f"kept {len(rows)} rows with a target in batches, {len(y)} in their column")
    if stats is not None:
        stats.medians_from_reservoir()
    return Scan(rows=rows, y=y, task=task, classes=classes, rows_read=rows_read, stats=stats)


def _positions_of(spans: list[tuple[int, int] | np.ndarray]) -> np.ndarray:
    """The increasing int64 positions of `scan`'s spans ((offset, rows) or positions), in one array."""
    rows = np.empty(sum(s[1] if isinstance(s, tuple) else len(s) for s in spans), dtype="int64")
    filled = 0
    for span in spans:
        if isinstance(span, tuple):
            offset, count = span
            rows[filled:filled + count] = np.arange(offset, offset + count)
        else:
            count = len(span)
            rows[filled:filled + count] = span
        filled += count
    return rows


def _coercer_and_stats(features, seed, reservoir_size, max_levels):
    if not features:
        return None, None
    from trainer.features import FrameCoercer

    coercer = FrameCoercer(names=[c.name for c in features], kinds=[c.kind for c in features])
    numeric, categorical = coercer.output_columns()
    stats = FeatureStats.empty(numeric, categorical, seed=seed, reservoir_size=reservoir_size,
                               max_levels=max_levels)
    return coercer, stats


def statistics(stream: PartStream, features: list[Column], positions: np.ndarray, *, seed: int = 0,
               exact_median: str = EXACT_WHERE_IMPUTED, reservoir_size: int = DEFAULT_RESERVOIR_SIZE,
               max_levels: int = DEFAULT_MAX_LEVELS, collect_limit: int = DEFAULT_COLLECT_LIMIT) -> FeatureStats:
    """The preprocessing statistics of the rows at `positions` (e.g. the fit rows): `statistics_of` their
    `BLOCK_ROWS`-row blocks in stream order."""
    return statistics_of(features, lambda: fixed_blocks(stream.selected(positions), BLOCK_ROWS), seed=seed,
                         exact_median=exact_median, reservoir_size=reservoir_size, max_levels=max_levels,
                         collect_limit=collect_limit)


def statistics_of(features: list[Column], blocks: Callable[[], Iterable[pd.DataFrame]], *, seed: int = 0,
                  exact_median: str = EXACT_WHERE_IMPUTED, reservoir_size: int = DEFAULT_RESERVOIR_SIZE,
                  max_levels: int = DEFAULT_MAX_LEVELS, collect_limit: int = DEFAULT_COLLECT_LIMIT) -> FeatureStats:
    """The preprocessing statistics of the raw rows `blocks()` yields, in one pass, plus the passes
    `exact_medians` needs for the columns `exact_median` names that have more values than the reservoir holds
    (a column with fewer has its exact median from the reservoir, which holds them all):

    - EXACT_WHERE_IMPUTED (the default): the columns with a missing value among these rows, the only ones whose
      median changes what the rows are fitted on (their imputed values, and through them the scaler). A column
      without one keeps the reservoir's estimate (`median_exact` False; rank error about 1/sqrt(reservoir
      size), ~1% for 8,192): it only fills the missing values of rows predicted later. So data without
      missing values is read once, and the fitted state of the rows is what scikit-learn's own fit gives.
    - EXACT_ALL: every column, so the imputer equals scikit-learn's on any data.
    - EXACT_NONE: no further pass.

    The same blocks give the same bits (moments are merged block by block). Memory: the reservoirs, the capped
    levels and `collect_limit` values."""
    if exact_median not in (EXACT_WHERE_IMPUTED, EXACT_ALL, EXACT_NONE):
        raise ValueError(f"exact_median must be one of {EXACT_WHERE_IMPUTED!r}, {EXACT_ALL!r}, {EXACT_NONE!r}")
    coercer, stats = _coercer_and_stats(features, seed, reservoir_size, max_levels)

    def coerced():
        for frame in blocks():
            yield coercer.transform(frame)

    for frame in coerced():
        stats.update(frame)
    pending = stats.medians_from_reservoir()
    if exact_median == EXACT_WHERE_IMPUTED:
        pending = [name for name in pending if stats.numeric[name].missing]
    if exact_median != EXACT_NONE and pending:
        exact_medians(stats, pending, coerced, collect_limit)
    return stats


def sample_positions(y: np.ndarray, positions: np.ndarray, cap: int, task: str, seed: int) -> tuple[np.ndarray, dict]:
    """At most `cap` of `positions` (sorted), reproducibly: stratified by `y` (aligned with `positions`) for
    classification when every class has two rows and the cap and the remainder can each hold every class (the
    rule `split_positions` applies), else uniformly; all of them when there are at most `cap`."""
    from trainer.splitting import METHOD, can_stratify, choose

    positions = np.asarray(positions, dtype="int64")
    total = len(positions)
    record = {"rows_total": total, "cap": int(cap), "random_seed": seed}
    if total <= cap:
        return np.sort(positions), {**record, "rows_sampled": total, "method": "all rows (not over the cap)"}
    stratify = task == "classification" and can_stratify(y, cap)
    chosen = np.sort(positions[choose(y, int(cap), seed, stratify)])
    method = f"{METHOD}: " + ("stratified by target" if stratify else "uniform")
    return chosen, {**record, "rows_sampled": len(chosen), "method": method}
