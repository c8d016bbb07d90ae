"""The input of a batch prediction job: which objects, which columns each has, and its rows in batches.

Objects are listed as training lists them (`trainer.storage.list_data_objects`). Their columns are
read before anything is written, without downloading them: a CSV's header and a JSON-lines object's
first record through ranged GETs of the first bytes, a Parquet object's schema from its footer. Rows
are then read from a local copy (one object at a time, on disk) in batches of a fixed number of
rows, with the reader training uses for the format (`pandas.read_csv` / `read_json` in chunks,
`pyarrow.parquet`), so the model sees each value as training's loader would show it. Every read
carries If-Match on the listed ETag: an object changed since it was listed fails the job.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trainer.errors import TrainingFailed
from trainer.logs import get_logger
from trainer.storage import DataObject, RangedObject, _describe, list_data_objects, ranged_get

log = get_logger("predict.input")

PROBE_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024 * 1024
DOWNLOAD_CHUNK = 1024 * 1024
# Column chunks are read through a buffer of this size, not whole: a row group may hold millions of rows.
PARQUET_READ_BUFFER = 1024 * 1024
# The last batch of an object takes in a remainder shorter than this: no prediction call sees only a handful
# of rows (unless the object has no more), where BLAS switches to kernels that round differently (float32
# networks, single-row linear models) from the ones it uses for the object as a whole.
MIN_TAIL_ROWS = 64
MAX_LISTED_PROBLEMS = 5


@dataclass(frozen=True)
class InputObject:
    """A listed object and the columns it has (None: an empty object without a header, so without rows)."""

    source: DataObject
    columns: tuple[str, ...] | None
    arrow_types: dict[str, Any] = field(default_factory=dict)  # Parquet only: column -> pyarrow type


@dataclass
class Batch:
    """Rows of one object: the model's input columns as a DataFrame, the passthrough columns as Arrow arrays."""

    features: pd.DataFrame
    passthrough: dict[str, Any]

    def __len__(self) -> int:
        return len(self.features)


def list_inputs(client, inputs) -> list[DataObject]:
    """Every object under every input location, in (location, key) order."""
    objects: list[DataObject] = []
    for location in inputs:
        listed = list_data_objects(client, location.uri, location.format)
        log.info("listed input", extra={"uri": location.uri, "objects": len(listed)})
        objects += listed
    return objects


def probe(client, obj: DataObject) -> InputObject:
    """The object's columns, from its first bytes (CSV, JSON lines) or its footer (Parquet)."""
    try:
        if obj.format == "parquet":
            return _parquet_columns(client, obj)
        first = _first_record(client, obj, _csv_record if obj.format == "csv" else _json_record)
    except TrainingFailed:
        raise
    except Exception as exc:
        raise TrainingFailed(f"unreadable {obj.format} object {obj.uri}: {_problem(exc)}") from None
    return InputObject(source=obj, columns=None if first is None else tuple(first))


def check_columns(objects: list[InputObject], features: list[str], passthrough: list[str]) -> None:
    """Fail naming every object that lacks a feature of the model or a passthrough column (and which)."""
    problems = []
    for item in objects:
        if item.columns is None:
            continue
        present = set(item.columns)
        lacking = [f"feature(s) {', '.join(m)}" if kind == "f" else f"passthrough column(s) {', '.join(m)}"
                   for kind, m in (("f", [n for n in features if n not in present]),
                                   ("p", [n for n in passthrough if n not in present])) if m]
        if lacking:
            problems.append(f"{item.source.uri} lacks {' and '.join(lacking)}")
    if problems:
        listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"; and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise TrainingFailed(f"required column(s) missing from {len(problems)} input object(s): {listed}{more}")


def download(client, obj: DataObject, directory: Path) -> Path:
    """The object, copied to a file under `directory` in chunks (never whole in memory)."""
    path = directory / ("input.gz" if obj.key.lower().endswith(".gz") else "input")
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')["Body"]
        with path.open("wb") as out:
            for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
                out.write(chunk)
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise TrainingFailed(f"cannot read {obj.uri}: {_describe(exc)}") from None
    return path


def read_batches(path: Path, obj: DataObject, features: list[str], passthrough: list[str],
                 batch_rows: int) -> Iterator[Batch]:
    """The object's rows, in order, in batches of `batch_rows` (the last takes in a remainder < MIN_TAIL_ROWS)."""
    try:
        if obj.format == "parquet":
            yield from _parquet_batches(path, features, passthrough, batch_rows)
        else:
            yield from _text_batches(path, obj, features, passthrough, batch_rows)
    except TrainingFailed:
        raise
    except Exception as exc:
        raise TrainingFailed(f"unreadable {obj.format} object {obj.uri}: {_problem(exc)}") from None


def rebatch(pieces: Iterable, size: int, concat: Callable[[list], Any], cut: Callable[[Any, int], tuple]) -> Iterator:
    """Consecutive batches of exactly `size` rows from `pieces` of any length; the last batch takes in a
    remainder shorter than MIN_TAIL_ROWS. Holds at most one batch back, plus the rows not yet batched."""
    pending: list = []
    rows = 0
    held = None
    for piece in pieces:
        if not len(piece):
            continue
        pending.append(piece)
        rows += len(piece)
        while rows >= size:
            batch, rest = cut(concat(pending), size)
            pending, rows = ([rest] if len(rest) else []), len(rest)
            if held is not None:
                yield held
            held = batch
    remainder = concat(pending) if pending else None
    if held is not None and remainder is not None and len(remainder) < MIN_TAIL_ROWS:
        yield concat([held, remainder])
        return
    if held is not None:
        yield held
    if remainder is not None:
        yield remainder


# ---- Parquet -------------------------------------------------------------------------------------


def _parquet_columns(client, obj: DataObject) -> InputObject:
    import pyarrow.parquet as pq

    if obj.size == 0:
        raise TrainingFailed(f"unreadable parquet object {obj.uri}: it is empty (0 bytes)")
    with RangedObject(client, obj) as source:
        schema = pq.ParquetFile(source).schema_arrow
    return InputObject(source=obj, columns=tuple(schema.names),
                       arrow_types={name: schema.field(name).type for name in schema.names})


def _parquet_batches(path: Path, features: list[str], passthrough: list[str], batch_rows: int) -> Iterator[Batch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = list(dict.fromkeys([*features, *passthrough]))
    source = pq.ParquetFile(path, buffer_size=PARQUET_READ_BUFFER, pre_buffer=False)
    tables = (pa.Table.from_batches([b]) for b in source.iter_batches(batch_size=batch_rows, columns=wanted))
    for table in rebatch(tables, batch_rows, _concat_tables, lambda t, n: (t.slice(0, n), t.slice(n))):
        # As training reads Parquet (`Table.to_pandas()`), so the model sees the same values.
        yield Batch(features=table.select(features).to_pandas(),
                    passthrough={name: table.column(name).combine_chunks() for name in passthrough})


def _concat_tables(tables: list):
    import pyarrow as pa

    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# ---- CSV and JSON lines ------------------------------------------------------------------------

def _text_batches(path: Path, obj: DataObject, features: list[str], passthrough: list[str],
                  batch_rows: int) -> Iterator[Batch]:
    wanted = list(dict.fromkeys([*features, *passthrough]))
    compression = "gzip" if obj.key.lower().endswith(".gz") else None
    if obj.format == "csv":
        keep = set(wanted)
        # Passthrough columns the model does not read are kept as the text in the file ("007" stays "007").
        text = {name: str for name in passthrough if name not in features}
        try:
            chunks = pd.read_csv(path, usecols=lambda name: name in keep, dtype=text or None,
                                 compression=compression, low_memory=False, chunksize=batch_rows)
        except pd.errors.EmptyDataError:  # no header at all: no rows
            return
    else:
        chunks = pd.read_json(path, lines=True, compression=compression, dtype=False, convert_dates=False,
                              chunksize=batch_rows)
    with chunks:
        for frame in rebatch(chunks, batch_rows, _concat_frames, lambda f, n: (f.iloc[:n], f.iloc[n:])):
            frame = frame.reindex(columns=wanted)  # a JSON chunk may lack a key in every record: missing values
            yield Batch(features=frame[features],
                        passthrough={name: _text_column(frame[name]) for name in passthrough})


def _concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _text_column(series: pd.Series):
    """A passthrough column of a CSV or JSON-lines object as an Arrow array of its values."""
    import pyarrow as pa

    try:
        return pa.Array.from_pandas(series.reset_index(drop=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):  # mixed types: their text
        return pa.array([None if _is_missing(v) else str(v) for v in series], type=pa.string())


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or dict from JSON
        return False


# ---- first records ------------------------------------------------------------------------------

def _first_record(client, obj: DataObject, parse: Callable[[str, bool], tuple[bool, Any]]):
    """`parse` over ever longer prefixes of the (decompressed) object until it finds the first record."""
    if obj.size == 0:
        return None
    length = PROBE_BYTES
    while True:
        data = ranged_get(client, obj, 0, min(obj.size, length) - 1)
        whole = length >= obj.size
        if obj.key.lower().endswith(".gz"):
            data = zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(data)
        found, record = parse(codecs.decode(data, "utf-8-sig", errors="replace"), whole)
        if found or whole:
            return record
        if length >= MAX_HEADER_BYTES:
            raise TrainingFailed(f"unreadable {obj.format} object {obj.uri}: no complete first record in its first "
                                 f"{MAX_HEADER_BYTES} bytes")
        length *= 4


def _csv_record(text: str, whole: bool) -> tuple[bool, list[str] | None]:
    """(found, header): the first non-blank record, once the text holds all of it."""
    rows = csv.reader(io.StringIO(text))
    for row in rows:
        if not any(field.strip() for field in row):
            continue  # a blank line (pandas skips them too)
        if whole or next(rows, None) is not None:  # something follows it: the record is complete
            return True, row
        return False, None
    return whole, None


def _json_record(text: str, whole: bool) -> tuple[bool, list[str] | None]:
    """(found, keys): the keys of the first JSON-lines record."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if index == len(lines) - 1 and not whole:
            return False, None  # possibly cut short
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError(f"its first record is a JSON {type(record).__name__}, not an object")
        return True, list(record)
    return whole, None


def _problem(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"
