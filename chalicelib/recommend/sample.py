"""A bounded sample of one storage config's data, read from S3 with ranged GETs.

The bound, per storage config (whatever the data's size):
- at most `MAX_OBJECTS_LISTED` keys are listed and `MAX_OBJECTS_SAMPLED` objects read, picked
  evenly over the key order;
- at most `MAX_BYTES` bytes are read in total, with at most `MAX_GETS` ranged GETs. An object
  that fits its share of the budget is read whole; a larger one is read as up to `CHUNKS` ranges
  spread evenly over it (one object: 3 ranges; 2 objects: 2 each; 3 or 4 objects: 1 each, from
  byte 0, where the CSV header is), and only the complete lines inside each range are parsed;
- at most `MAX_ROWS` rows are kept (evenly spaced over those parsed).
And per request: at most `MAX_STORAGE_CONFIGS_PER_REQUEST` storage configs are sampled and at
most `MAX_BYTES_PER_REQUEST` bytes read across them (each config's byte budget is
`bytes_per_storage_config(n)`, `MAX_BYTES` or less when there are many).
So no request ever loads a whole dataset, and the cost of a recommendation does not grow
with the data. The row count is estimated from object sizes and the mean bytes per sampled
row (exact when every object was read whole).

csv and jsonl are sampled. Parquet is not: reading it needs a Parquet reader (pyarrow), which
the Lambda package does not ship, so a parquet config reports its objects and sizes, no rows,
and the recommendation falls back on the ontology. Values are kept as text (None = missing).
"""
from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import InvalidInput

MAX_BYTES = 1_000_000
MAX_STORAGE_CONFIGS_PER_REQUEST = 20
MAX_BYTES_PER_REQUEST = 8_000_000
MAX_ROWS = 2_000
MAX_OBJECTS_SAMPLED = 4
MAX_OBJECTS_LISTED = 1_000
CHUNKS = 3
# Ranged GETs per storage config: one object gets CHUNKS ranges, several get fewer each (one from the start
# of each when there are MAX_OBJECTS_SAMPLED of them).
MAX_GETS = 4
# More than this share of undecodable characters and an object is not treated as text.
MAX_BAD_CHARS = 0.01

BOUND = {
    "max_rows_per_storage_config": MAX_ROWS,
    "max_bytes_read_per_storage_config": MAX_BYTES,
    "max_objects_read_per_storage_config": MAX_OBJECTS_SAMPLED,
    "max_objects_listed_per_storage_config": MAX_OBJECTS_LISTED,
    "max_ranges_per_object": CHUNKS,
    "max_ranged_gets_per_storage_config": MAX_GETS,
    "max_storage_configs_per_request": MAX_STORAGE_CONFIGS_PER_REQUEST,
    "max_bytes_read_per_request": MAX_BYTES_PER_REQUEST,
}


def bytes_per_storage_config(configs: int) -> int:
    """Each config's byte budget when `configs` are sampled in one request: their sum stays within
    `MAX_BYTES_PER_REQUEST` (1 MB each up to 8 configs, 400 KB each for 20)."""
    return min(MAX_BYTES, MAX_BYTES_PER_REQUEST // max(1, configs))


@dataclass
class Sample:
    storage_id: str
    format: str
    uri: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, str | None]] = field(default_factory=list)
    objects: int = 0
    objects_read: int = 0
    total_bytes: int = 0
    bytes_read: int = 0
    rows_parsed: int = 0
    rows_rejected: int = 0
    estimated_rows: int | None = None
    row_count_exact: bool = False
    listing_truncated: bool = False
    problems: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "storage_id": self.storage_id, "uri": self.uri, "format": self.format,
            "objects": self.objects, "objects_read": self.objects_read,
            "total_bytes": self.total_bytes, "bytes_read": self.bytes_read,
            "rows_sampled": len(self.rows), "rows_rejected": self.rows_rejected,
            "estimated_rows": self.estimated_rows, "row_count_exact": self.row_count_exact,
            "problems": list(self.problems),
        }


@dataclass
class _Chunk:
    text: str
    at_start: bool
    nbytes: int


def sample_storage(s3: Any, config: dict[str, Any], max_bytes: int = MAX_BYTES) -> Sample:
    """Sample the storage config's objects within the bound (at most `max_bytes` of them read, no more
    than `MAX_BYTES`); S3 failures become problems, not errors."""
    from chalicelib.adapters.s3 import parse_s3_uri

    sample = Sample(storage_id=config["id"], format=config.get("format", "csv"), uri=config["uri"])
    try:
        location = parse_s3_uri(config["uri"])
        objects = s3.list_objects(location, max_objects=MAX_OBJECTS_LISTED)
    except InvalidInput as exc:
        sample.problems.append(f"storage config '{sample.storage_id}': {exc.message}")
        return sample
    objects = sorted(objects, key=lambda o: o.key)
    sample.objects = len(objects)
    sample.total_bytes = sum(o.size for o in objects)
    sample.listing_truncated = len(objects) >= MAX_OBJECTS_LISTED
    if not objects:
        sample.problems.append(f"storage config '{sample.storage_id}': no objects under {sample.uri}")
        return sample
    if sample.format == "parquet":
        sample.problems.append(
            f"storage config '{sample.storage_id}' is parquet: not sampled (the API runtime has no Parquet "
            "reader); row count unknown"
        )
        return sample
    _read_objects(s3, location, objects, sample, min(max_bytes, MAX_BYTES))
    return sample


def _pick(objects: list, k: int) -> list:
    if len(objects) <= k:
        return list(objects)
    return [objects[round(i * (len(objects) - 1) / (k - 1))] for i in range(k)]


def _read_objects(s3: Any, location: Any, objects: list, sample: Sample, max_bytes: int) -> None:
    chosen = _pick(objects, MAX_OBJECTS_SAMPLED)
    share = max_bytes // len(chosen)
    ranges = min(CHUNKS, max(1, MAX_GETS // len(chosen)))
    rows: list[dict[str, str | None]] = []
    parsed_bytes = lines = 0
    whole = True

    def read(obj: Any) -> list[_Chunk] | InvalidInput:
        try:
            return _read_chunks(s3, location, obj, share, ranges) if obj.size else []
        except InvalidInput as exc:
            return exc

    # Objects are fetched concurrently, then parsed in key order, so the sample is the same every time.
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        fetched = list(pool.map(read, chosen))
    for obj, chunks in zip(chosen, fetched, strict=True):
        if isinstance(chunks, InvalidInput):
            sample.problems.append(f"object {obj.key}: {chunks.message}")
            continue
        if not chunks:
            continue
        whole = whole and obj.size <= share
        sample.bytes_read += sum(c.nbytes for c in chunks)
        sample.objects_read += 1
        got, nbytes, count = _parse_object(obj.key, chunks, sample, MAX_ROWS // len(chosen))
        rows.extend(got)
        parsed_bytes += nbytes
        lines += count
    sample.rows_parsed = len(rows)
    sample.rows = _evenly(rows, MAX_ROWS)
    if lines and rows:
        exact = whole and sample.objects_read == len(objects) and not sample.listing_truncated
        sample.row_count_exact = exact
        sample.estimated_rows = lines if exact else round(sample.total_bytes * lines / parsed_bytes)


def _read_chunks(s3: Any, location: Any, obj: Any, share: int, ranges: int) -> list[_Chunk]:
    if obj.size <= share:
        data = s3.read_range(location, obj.key, 0, obj.size - 1)
        return [_Chunk(_decode(data), True, len(data))] if data is not None else []
    size = max(1, share // ranges)
    starts = [round(j * (obj.size - size) / (ranges - 1)) if ranges > 1 else 0 for j in range(ranges)]
    # The ranges are fetched concurrently: a ranged GET costs a round trip, whatever the object's size.
    with ThreadPoolExecutor(max_workers=ranges) as pool:
        blobs = list(pool.map(lambda start: s3.read_range(location, obj.key, start, start + size - 1), starts))
    chunks = []
    for start, data in zip(starts, blobs, strict=True):
        text = _decode(data)
        if start > 0:  # drop the partial line the range starts in
            text = text.split("\n", 1)[1] if "\n" in text else ""
        if start + size < obj.size:  # and the partial line it ends in
            text = text.rsplit("\n", 1)[0] + "\n" if "\n" in text else ""
        chunks.append(_Chunk(text, start == 0, len(data)))
    return chunks


def _decode(data: bytes) -> str:
    if b"\x00" in data:
        raise _NotText("it contains NUL bytes (binary, not text)")
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if text and bad > MAX_BAD_CHARS * len(text):
        raise _NotText(f"{bad} of {len(text)} characters are not valid UTF-8 (binary, not text)")
    return text


class _NotText(InvalidInput):
    pass


def _parse_object(key: str, chunks: list[_Chunk], sample: Sample, budget: int) -> tuple[list[dict], int, int]:
    """At most `budget` rows of one object, the bytes of its complete lines read, and how many lines that was.

    Lines are counted in everything read (for the row estimate); only `budget` of them, evenly
    spaced in each range, are parsed, so parsing costs the same for any object size. A quoted
    field spanning lines is not supported: its pieces are counted as malformed rows.
    """
    if sample.format == "jsonl":
        return _parse_jsonl(key, chunks, sample, budget)
    return _parse_csv(key, chunks, sample, budget)


def _lines(text: str, budget: int) -> tuple[list[str], int]:
    lines = [line for line in text.splitlines() if line.strip()]
    return _evenly(lines, budget), len(lines)


def _parse_csv(key: str, chunks: list[_Chunk], sample: Sample, budget: int) -> tuple[list[dict], int, int]:
    first = chunks[0].text if chunks else ""
    header_line, _, first_body = first.partition("\n")
    header = [h.strip() for h in next(csv.reader([header_line]), [])]
    if not header or not any(header):
        sample.problems.append(f"object {key}: no CSV header line")
        return [], 0, 0
    if len(set(header)) != len(header):
        sample.problems.append(f"object {key}: the CSV header repeats a column name")
    sample.columns += [name for name in header if name not in sample.columns]
    rows, ragged, parsed, nbytes, lines = [], 0, 0, 0, 0
    bodies = [first_body] + [c.text for c in chunks[1:]]
    for body in bodies:
        nbytes += len(body.encode("utf-8"))
        picked, count = _lines(body, max(1, budget // len(bodies)))
        lines += count
        for record in csv.reader(picked):
            parsed += 1
            if len(record) != len(header):
                ragged += 1
                continue
            rows.append({h: (v if v.strip() != "" else None) for h, v in zip(header, record, strict=True)})
    if ragged:
        sample.rows_rejected += ragged
        sample.problems.append(
            f"object {key}: {ragged} of {parsed} sampled rows have a different number of fields than the "
            f"header ({len(header)}) and were skipped"
        )
    return rows, nbytes, lines


def _parse_jsonl(key: str, chunks: list[_Chunk], sample: Sample, budget: int) -> tuple[list[dict], int, int]:
    rows, bad, parsed, nbytes, lines = [], 0, 0, 0, 0
    for chunk in chunks:
        nbytes += len(chunk.text.encode("utf-8"))
        picked, count = _lines(chunk.text, max(1, budget // len(chunks)))
        lines += count
        for line in picked:
            parsed += 1
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                bad += 1
                continue
            sample.columns += [str(name) for name in value if str(name) not in sample.columns]
            rows.append({str(k): _text(v) for k, v in value.items()})
    if bad:
        sample.rows_rejected += bad
        sample.problems.append(f"object {key}: {bad} of {parsed} sampled lines are not JSON objects and were skipped")
    return rows, nbytes, lines


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    return text if text.strip() != "" else None


def _evenly(rows: list, limit: int) -> list:
    if len(rows) <= limit:
        return rows
    return [rows[i * len(rows) // limit] for i in range(limit)]


def merge_rows(samples: list[Sample], limit: int = MAX_ROWS) -> tuple[list[str], list[dict[str, str | None]]]:
    """The columns (first-seen order) and up to `limit` rows of all samples, evenly from each."""
    columns: list[str] = []
    for sample in samples:
        columns += [c for c in sample.columns if c not in columns]
    with_rows = [s for s in samples if s.rows]
    if not with_rows:
        return columns, []
    per = max(1, limit // len(with_rows))
    rows = [row for s in with_rows for row in _evenly(s.rows, per)]
    return columns, rows[:limit]
