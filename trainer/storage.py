"""S3 adapter: reading the spec and the training data, writing artifact files.

Callers get DataFrames, bytes and lineage records, never boto3 responses. Every
client honours AWS_ENDPOINT_URL (passed in as `endpoint_url`), so moto server works.
"""
from __future__ import annotations

import bisect
import io
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainer.errors import TrainingFailed
from trainer.logs import get_logger
from trainer.ontology import Column

if TYPE_CHECKING:  # pandas loads with the first data object: a run that fails before (spec, version) skips it
    import pandas as pd

log = get_logger("storage")

# How many ranged GETs a `RangedObject` keeps open at once (one per column chunk being read); the S3 client's
# connection pool is sized to hold them (`s3_client`).
MAX_OPEN_RANGES = 32

EXTENSIONS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def s3_client(endpoint_url: str | None = None, session=None):
    """The S3 client; every S3 call of a run goes through one made here.

    `session` is the run's boto3 session (`trainer.credentials.aws_session`: refreshing
    per-run credentials); None means boto3's default session and credential chain.
    """
    import boto3
    from botocore.config import Config

    # The pool holds a RangedObject's open GETs besides the run's other calls.
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=MAX_OPEN_RANGES + 8)
    return (session or boto3).client("s3", endpoint_url=endpoint_url, config=config)


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise TrainingFailed(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise TrainingFailed(f"s3 URI without a bucket: {uri!r}")
    return bucket, key


@dataclass(frozen=True)
class DataObject:
    uri: str
    bucket: str
    key: str
    etag: str
    size: int
    format: str


def read_spec(client, uri: str) -> bytes:
    bucket, key = split_uri(uri)
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise TrainingFailed(f"cannot read training spec {uri}: {_describe(exc)}") from None


def list_data_objects(client, uri: str, declared_format: str) -> list[DataObject]:
    """Every data object under `uri`, in key order; markers (_SUCCESS, .crc, directories) are skipped.

    `s3://b/data` means the object `data` or the objects under `data/` — never `data-old/...`.

    An object's format comes from its extension; objects without a known extension are read
    in the storage's declared format.
    """
    bucket, prefix = split_uri(uri)
    found = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if prefix and not prefix.endswith("/") and key != prefix and not key.startswith(prefix + "/"):
                    continue  # a sibling that merely shares the name's first characters
                base = posixpath.basename(key)
                if key.endswith("/") or not base or base.startswith(("_", ".")):
                    continue
                found.append(
                    DataObject(
                        uri=f"s3://{bucket}/{key}",
                        bucket=bucket,
                        key=key,
                        etag=item["ETag"].strip('"'),
                        size=int(item["Size"]),
                        format=_format_of(base, declared_format),
                    )
                )
    except TrainingFailed:
        raise
    except Exception as exc:
        raise TrainingFailed(f"cannot list {uri}: {_describe(exc)}") from None
    return sorted(found, key=lambda o: o.key)


def _format_of(name: str, declared: str) -> str:
    lower = name.lower()
    for ext, fmt in sorted(EXTENSIONS.items(), key=lambda kv: -len(kv[0])):
        if lower.endswith(ext):
            return fmt
    return declared


def ranged_get(client, obj: DataObject, start: int, end: int) -> bytes:
    """Bytes `start`..`end` (inclusive) of `obj`, with If-Match on its listed ETag."""
    body = ranged_body(client, obj, start, end)
    try:
        return body.read()
    except Exception as exc:
        raise unreadable_range(obj, start, end, _describe(exc)) from None


def ranged_body(client, obj: DataObject, start: int, end: int):
    """The streaming body of bytes `start`..`end` (inclusive) of `obj`, with If-Match on its listed ETag."""
    try:
        return client.get_object(Bucket=obj.bucket, Key=obj.key, Range=f"bytes={start}-{end}",
                                 IfMatch=f'"{obj.etag}"')["Body"]
    except Exception as exc:
        raise unreadable_range(obj, start, end, _describe(exc)) from None


def unreadable_range(obj: DataObject, start: int, end: int, reason: str) -> TrainingFailed:
    return TrainingFailed(f"cannot read {obj.uri} (bytes {start}-{end}): {reason}")


class _OpenRange:
    """One ranged GET being read: the body from `position` up to `end` (exclusive)."""

    def __init__(self, body, position: int, end: int) -> None:
        self.body, self.position, self.end = body, position, end

    def close(self) -> None:
        try:
            self.body.close()
        except Exception:  # a connection already gone: nothing left to release
            pass


class RangedObject(io.RawIOBase):
    """A read-only, seekable file over one S3 object of its listed size, for pyarrow to read a Parquet file by
    ranges. A read where no open GET continues starts one ranged GET (If-Match on the listed ETag, so an object
    replaced while it is read fails the read instead of mixing versions) running up to the next of `stops`
    (`stop_at`: a Parquet file's column chunk ends) or the object's end; its body is then read as pyarrow asks,
    so a column chunk read sequentially, a buffer at a time, costs one GET however long it is, and memory is the
    reader's buffers, never the range. At most `max_open` GETs stay open (least recently read closed first);
    a GET whose connection breaks is started again where it stopped, once. `requests` counts the GETs."""

    def __init__(self, client, obj: DataObject, max_open: int | None = None) -> None:
        super().__init__()
        self.client, self.obj, self.position, self.requests = client, obj, 0, 0
        self.max_open = MAX_OPEN_RANGES if max_open is None else max_open
        self._open: dict[int, _OpenRange] = {}  # by the position each continues at; insertion order = recency
        self._stops: list[int] = []

    def stop_at(self, offsets) -> None:
        """End GETs at these byte offsets (and at the object's end)."""
        self._stops = sorted({int(o) for o in offsets if 0 < int(o) < self.obj.size})

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.obj.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.obj.size - self.position))
        filled = 0
        while filled < wanted:
            got = self._read(view[filled:wanted])
            filled += got
            self.position += got
        return filled

    def close(self) -> None:
        for open_range in self._open.values():
            open_range.close()
        self._open.clear()
        super().close()

    def _read(self, view: memoryview) -> int:
        """Bytes at `position` into `view` from one GET (fewer when that GET ends first); at least one."""
        current = self._open.pop(self.position, None) or self._start(self.position)
        want = min(len(view), current.end - current.position)
        for attempt in range(2):  # a GET whose connection breaks is started again from here, once
            try:
                data = current.body.read(want)
                break
            except Exception as exc:
                current.close()
                if attempt:
                    raise unreadable_range(self.obj, current.position, current.end - 1, _describe(exc)) from None
                current = self._start(self.position)
        if not data:
            current.close()
            raise unreadable_range(self.obj, self.position, current.end - 1, "the object ended early")
        view[:len(data)] = data
        current.position += len(data)
        if current.position < current.end:
            replaced = self._open.pop(current.position, None)
            if replaced is not None:  # two GETs at one place: keep the one just read
                replaced.close()
            self._open[current.position] = current
            while len(self._open) > self.max_open:
                self._open.pop(next(iter(self._open))).close()
        else:
            current.close()
        return len(data)

    def _start(self, start: int) -> _OpenRange:
        later = bisect.bisect_right(self._stops, start)
        end = self._stops[later] if later < len(self._stops) else self.obj.size
        body = ranged_body(self.client, self.obj, start, end - 1)
        self.requests += 1
        return _OpenRange(body, start, end)


def read_data_object(client, obj: DataObject, columns: list[Column], target: str) -> pd.DataFrame:
    """The object's rows, restricted to the ontology's columns; a missing one fails naming it and the object."""
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')["Body"].read()
    except Exception as exc:
        raise TrainingFailed(f"cannot read {obj.uri}: {_describe(exc)}") from None
    wanted = [c.name for c in columns]
    try:
        frame = parse_bytes(body, obj.format, obj.key, wanted)
    except TrainingFailed:
        raise
    except Exception as exc:
        raise TrainingFailed(f"unreadable {obj.format} object {obj.uri}: {type(exc).__name__}: {exc}") from None
    return with_declared_columns(frame, wanted, target, obj.uri)


def with_declared_columns(frame: pd.DataFrame, wanted: list[str], target: str, uri: str) -> pd.DataFrame:
    """`frame` as the `wanted` columns; a declared column missing from an object that has columns fails naming
    it and the object (an object without columns is all missing values)."""
    missing = [name for name in wanted if name not in frame.columns]
    if missing and len(frame.columns) > 0:
        if target in missing:
            raise TrainingFailed(f"target column {target!r} is missing from {uri}")
        raise TrainingFailed(f"feature column(s) declared in the ontology missing from {uri}: {', '.join(missing)}")
    return frame.reindex(columns=wanted)


def parse_bytes(body: bytes, fmt: str, key: str, wanted: list[str]) -> pd.DataFrame:
    import pandas as pd

    compression = "gzip" if key.lower().endswith(".gz") else None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table_file = pq.ParquetFile(io.BytesIO(body))
        present = [name for name in wanted if name in table_file.schema_arrow.names]
        return table_file.read(columns=present).to_pandas()
    if not body.strip():
        return pd.DataFrame()
    if fmt == "csv":
        keep = set(wanted)
        return pd.read_csv(
            io.BytesIO(body), usecols=lambda name: name in keep, compression=compression, low_memory=False
        )
    frame = pd.read_json(io.BytesIO(body), lines=True, compression=compression, dtype=False, convert_dates=False)
    return frame[[name for name in wanted if name in frame.columns]]


def put_file(client, bucket: str, key: str, body: bytes, *, if_absent: bool = False, content_type: str | None = None):
    """Write one object; with `if_absent`, refuse (return False) when it already exists."""
    kwargs = {"Bucket": bucket, "Key": key, "Body": body}
    if content_type:
        kwargs["ContentType"] = content_type
    if if_absent:
        kwargs["IfNoneMatch"] = "*"
    try:
        client.put_object(**kwargs)
    except Exception as exc:
        if if_absent and _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        raise TrainingFailed(f"cannot write s3://{bucket}/{key}: {_describe(exc)}") from None
    return True


def exists(client, bucket: str, key: str) -> bool:
    """Whether the object exists, by listing its exact key: a run's credentials may list only its own
    artifact prefix, and without s3:ListBucket on the bucket a HEAD of a missing key answers 403."""
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except Exception as exc:
        raise TrainingFailed(f"cannot check s3://{bucket}/{key}: {_describe(exc)}") from None
    return any(item.get("Key") == key for item in listed.get("Contents", []))


def get_bytes(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _describe(exc: Exception) -> str:
    """What a failure reason says of an S3 error: its code (or kind). botocore's own message, which
    names operations, endpoints and request ids, goes to the trainer's log only."""
    log.warning("s3 call failed", extra={"problem": f"{type(exc).__name__}: {exc}"})
    return _error_code(exc) or type(exc).__name__


@dataclass
class LoadedData:
    frame: pd.DataFrame
    lineage: list[dict]


def list_storage_objects(client, storage) -> list:
    """Every data object under every storage location, in (location, key) order; none at all is an error."""
    objects = []
    for location in storage:
        listed = list_data_objects(client, location.uri, location.format)
        log.info("listed storage", extra={"uri": location.uri, "objects": len(listed)})
        objects += listed
    if not objects:
        where = ", ".join(location.uri for location in storage)
        raise TrainingFailed(f"no training data: no objects under {where}")
    return objects


def load_training_data(client, storage, columns: list[Column], target: str) -> LoadedData:
    """Every object under every storage location, concatenated in (location, key) order, in memory (the
    trainer itself streams them: `trainer.stream.PartStream`; this is the reference it must equal)."""
    objects = list_storage_objects(client, storage)
    frames, lineage = [], []
    for obj in objects:
        frame = read_data_object(client, obj, columns, target)
        lineage.append({"uri": obj.uri, "etag": obj.etag, "size": obj.size, "format": obj.format, "rows": len(frame)})
        if len(frame):
            frames.append(frame)
    rows = sum(len(f) for f in frames)
    if rows == 0:
        where = ", ".join(location.uri for location in storage)
        raise TrainingFailed(f"no training data: {len(objects)} object(s) with 0 rows under {where}")
    if len(frames) > 1:
        import pandas as pd

        frame = pd.concat(frames, ignore_index=True)
    else:
        frame = frames[0]
    return LoadedData(frame=frame.reset_index(drop=True), lineage=lineage)
