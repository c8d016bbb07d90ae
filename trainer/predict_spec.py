"""What one batch prediction job is asked to do: its settings and its spec, checked before any work.

The environment is the training contract's (`trainer.config.Settings`; TRAINER_RUN_ID holds the
prediction id) plus one knob of its own, TRAINER_PREDICT_BATCH_ROWS. The spec is the JSON the API
writes at TRAINER_SPEC_URI (`chalicelib/services/predictions.py` `_launch`); every key is checked
here, and an unknown one is refused rather than ignored. Importing this module loads nothing heavy
(numpy's thread pools must start only after `batch_predict.main` has blocked SIGTERM).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainer import contract as c
from trainer.config import Settings, _number
from trainer.errors import TrainingFailed
from trainer.spec import FORMATS

KIND = "prediction"
OUTPUT_FORMATS = ("csv", "parquet")
DEFAULT_BATCH_ROWS = 50_000
MAX_BATCH_ROWS = 10_000_000
# Columns the job writes itself; a passthrough column may not take their names (the API refuses them too).
RESERVED_COLUMNS = ("prediction", "error")
PROBABILITY_PREFIX = "probability_"
SPEC_KEYS = frozenset({"kind", "prediction_id", "model_id", "version", "artifact_uri", "inputs",
                       "passthrough_columns", "output_format", "output_uri"})
INPUT_KEYS = frozenset({"id", "uri", "format"})


@dataclass(frozen=True)
class PredictionSettings:
    """The training settings (identity, callback, S3, tuning) and the job's batch size."""

    base: Settings
    batch_rows: int = DEFAULT_BATCH_ROWS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PredictionSettings:
        env = os.environ if environ is None else environ
        rows = _number(env, c.PREDICT_BATCH_ROWS, DEFAULT_BATCH_ROWS, int, minimum=1)
        if rows > MAX_BATCH_ROWS:
            raise TrainingFailed(f"{c.PREDICT_BATCH_ROWS}={rows} must be <= {MAX_BATCH_ROWS}")
        return cls(base=Settings.from_env(env), batch_rows=rows)


@dataclass(frozen=True)
class InputLocation:
    uri: str
    format: str
    id: str = ""


@dataclass(frozen=True)
class PredictionSpec:
    prediction_id: str
    model_id: str
    version: int
    artifact_uri: str
    inputs: tuple[InputLocation, ...]
    passthrough_columns: tuple[str, ...]
    output_format: str
    output_bucket: str
    output_prefix: str  # ends with "/"

    @property
    def output_uri(self) -> str:
        return f"s3://{self.output_bucket}/{self.output_prefix}"


def job_spec(text: str | bytes, settings: Settings, kind: str, keys: frozenset[str] | set[str]) -> tuple[dict, int]:
    """What every job's spec must be (batch prediction, evaluation): a JSON object of known `keys`, of this
    `kind`, naming this job (`<kind>_id`) and model, and a positive version; (the object, its version)."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise TrainingFailed(f"{kind} spec is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TrainingFailed(f"{kind} spec must be a JSON object")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise TrainingFailed(f"{kind} spec has unknown key(s): {', '.join(unknown)}")
    if raw.get("kind") != kind:
        raise TrainingFailed(f"spec kind must be {kind!r}, got {raw.get('kind')!r}")
    for key, expected, variable in ((f"{kind}_id", settings.run_id, c.RUN_ID),
                                    ("model_id", settings.model_id, c.MODEL_ID)):
        if raw.get(key) != expected:
            raise TrainingFailed(f"spec {key} {raw.get(key)!r} does not match {variable} {expected!r}")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TrainingFailed(f"spec version must be a positive integer, got {version!r}")
    return raw, version


def parse_prediction_spec(text: str | bytes, settings: Settings) -> PredictionSpec:
    """The spec, checked against the job's identity and its artifact bucket (TrainingFailed naming the fault)."""
    raw, version = job_spec(text, settings, KIND, SPEC_KEYS)
    artifact_uri = _s3_uri(raw.get("artifact_uri"), "artifact_uri")
    output_format = raw.get("output_format")
    if output_format not in OUTPUT_FORMATS:
        raise TrainingFailed(f"spec output_format {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    bucket, prefix = _output_location(raw.get("output_uri"), settings.artifact_bucket)
    return PredictionSpec(
        prediction_id=raw["prediction_id"], model_id=raw["model_id"], version=version, artifact_uri=artifact_uri,
        inputs=_inputs(raw.get("inputs")), passthrough_columns=_passthrough(raw.get("passthrough_columns")),
        output_format=output_format, output_bucket=bucket, output_prefix=prefix,
    )


def _output_location(value: Any, artifact_bucket: str) -> tuple[str, str]:
    """(bucket, prefix ending in "/") of output_uri, which must be a prefix inside the artifact bucket."""
    from trainer.storage import split_uri  # pandas: only once SIGTERM is blocked (batch_predict.main)

    bucket, prefix = split_uri(_s3_uri(value, "output_uri"))
    if bucket != artifact_bucket:
        raise TrainingFailed(f"spec output_uri {value} is not in the artifact bucket {artifact_bucket!r} "
                             f"({c.ARTIFACT_BUCKET}); refusing to write there")
    prefix = prefix.strip("/")
    if not prefix:
        raise TrainingFailed("spec output_uri must name a prefix inside the artifact bucket, not its root")
    return bucket, prefix + "/"


def _s3_uri(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.startswith("s3://") or len(value) <= 5:
        raise TrainingFailed(f"spec {key} must be an s3:// URI, got {value!r}")
    return value


def _inputs(value: Any) -> tuple[InputLocation, ...]:
    if not isinstance(value, list):
        raise TrainingFailed("spec inputs must be a list of {id, uri, format}")
    found = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise TrainingFailed(f"spec inputs[{index}] must be an object")
        unknown = sorted(set(item) - INPUT_KEYS)
        if unknown:
            raise TrainingFailed(f"spec inputs[{index}] has unknown key(s): {', '.join(unknown)}")
        uri = _s3_uri(item.get("uri"), f"inputs[{index}].uri")
        if item.get("format") not in FORMATS:
            raise TrainingFailed(f"spec inputs[{index}].format {item.get('format')!r} is not one of "
                                 f"{', '.join(FORMATS)}")
        found.append(InputLocation(uri=uri, format=item["format"], id=str(item.get("id") or "")))
    return tuple(found)


def _passthrough(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise TrainingFailed("spec passthrough_columns must be a list of column names")
    if len(set(value)) != len(value):
        raise TrainingFailed("spec passthrough_columns names a column twice")
    for name in value:
        if name in RESERVED_COLUMNS or name.startswith(PROBABILITY_PREFIX):
            raise TrainingFailed(f"passthrough column {name!r} would clash with an output column "
                                 f"({', '.join(RESERVED_COLUMNS)}, {PROBABILITY_PREFIX}<class>)")
    return tuple(value)
