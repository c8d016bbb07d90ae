"""The output of a batch prediction job: part files, then `_SUCCESS`, under the spec's output prefix.

Parts (`part-00000.parquet` or `.csv`, ...) hold `rows_per_part` rows each (the last one fewer); each is
written to a local file, uploaded when full, and deleted. The output exists once `_SUCCESS` exists: a
JSON document naming the job, the model version, every part (rows, size, sha256) and every input object
(ETag, size, rows), written last with If-None-Match so a committed output is never overwritten. Parts
without a `_SUCCESS` are leftovers of an attempt that did not commit.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from trainer.errors import TrainingFailed
from trainer.logs import get_logger
from trainer.predict_spec import PredictionSpec
from trainer.storage import _error_code, put_file

log = get_logger("predict.output")

SUCCESS = "_SUCCESS"
FORMAT_VERSION = 1
CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}
# What a missing `_SUCCESS` answers: without s3:ListBucket (a job's session policy has none on its
# output), S3 answers a GET of a missing key with 403 instead of 404.
ABSENT_CODES = frozenset({"NoSuchKey", "404", "AccessDenied", "403"})


class PartWriter:
    """Appends Arrow tables to the current part; a part is uploaded (and its local file deleted) when full."""

    def __init__(self, client, spec: PredictionSpec, schema, rows_per_part: int, directory: Path) -> None:
        self.client, self.spec, self.schema = client, spec, schema
        self.rows_per_part, self.directory = rows_per_part, directory
        self.parts: list[dict] = []
        self._writer = None
        self._path: Path | None = None
        self._rows = 0

    def write(self, table) -> None:
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._open()
            take = min(self.rows_per_part - self._rows, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take))
            self._rows += take
            offset += take
            if self._rows >= self.rows_per_part:
                self._finish()

    def close(self) -> list[dict]:
        """Upload the last, partly filled part; the parts in order."""
        if self._writer is not None:
            self._finish()
        return self.parts

    @property
    def _name(self) -> str:
        return f"part-{len(self.parts):05d}.{self.spec.output_format}"

    def _open(self) -> None:
        self._path = self.directory / self._name
        if self.spec.output_format == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(str(self._path), self.schema, compression="snappy")
        else:
            import pyarrow.csv as pacsv

            # Arrow writes doubles in their shortest round-trip form: reading the CSV back gives the same bits.
            self._writer = pacsv.CSVWriter(str(self._path), self.schema,
                                           write_options=pacsv.WriteOptions(quoting_style="needed"))
        self._rows = 0

    def _finish(self) -> None:
        name, path = self._name, self._path
        self._writer.close()
        self._writer = None
        body = path.read_bytes()  # at most one part: rows_per_part rows
        path.unlink()
        put_file(self.client, self.spec.output_bucket, self.spec.output_prefix + name, body,
                 content_type=CONTENT_TYPES[self.spec.output_format])
        self.parts.append({"name": name, "rows": self._rows, "size": len(body),
                           "sha256": hashlib.sha256(body).hexdigest()})
        log.info("part written", extra={"part": name, "rows": self._rows, "bytes": len(body)})


def success_document(spec: PredictionSpec, columns: list[str], rows: int, error_rows: int, parts: list[dict],
                     inputs: list[dict], now: datetime | None = None) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "prediction_id": spec.prediction_id,
        "model_id": spec.model_id,
        "version": spec.version,
        "artifact_uri": spec.artifact_uri,
        "output_format": spec.output_format,
        "columns": list(columns),
        "rows": rows,
        "error_rows": error_rows,
        "parts": parts,
        "inputs": inputs,
        "created_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }


def commit(client, spec: PredictionSpec, document: dict,
           guard: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> None:
    """Write `_SUCCESS` if there is none yet, inside `guard()` (which SIGTERM shuts)."""
    body = json.dumps(document, indent=2, sort_keys=True, allow_nan=False).encode()
    with guard():
        written = put_file(client, spec.output_bucket, spec.output_prefix + SUCCESS, body, if_absent=True,
                           content_type="application/json")
    if not written:
        raise TrainingFailed(f"{spec.output_uri}{SUCCESS} already exists (another attempt committed this output "
                             "meanwhile); not overwritten")


def committed(client, spec: PredictionSpec) -> dict | None:
    """The output's `_SUCCESS` document if one exists (an earlier attempt of the job committed it), else None."""
    key = spec.output_prefix + SUCCESS
    try:
        body = client.get_object(Bucket=spec.output_bucket, Key=key)["Body"].read()
    except Exception as exc:
        if _error_code(exc) in ABSENT_CODES:
            return None
        raise TrainingFailed(f"cannot check {spec.output_uri}{SUCCESS}: {_error_code(exc) or type(exc).__name__}") \
            from None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise TrainingFailed(f"{spec.output_uri}{SUCCESS} exists but is not a JSON object; not overwritten")
    return document
