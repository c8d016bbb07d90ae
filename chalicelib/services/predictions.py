"""Batch predictions: a trained version applied to a project's data by a Job (services/model_jobs.py).

`POST /api/ml-models/{id}/predictions` submits a Job of the trainer image that runs
`python -m trainer.batch_predict`. It writes part files under
`s3://<artifact bucket>/predictions/<model_id>/<job_id>/` (the passthrough columns, `prediction`,
`probability_<class>` for classifiers, `error`) and `_SUCCESS` last (rows and the sha256 of each
part); its complete callback is accepted only once that `_SUCCESS` names the job.
"""
from __future__ import annotations

from typing import Any

from chalicelib.errors import InvalidInput
from chalicelib.records import ModelJob, StorageConfig
from chalicelib.services import validation as v
from chalicelib.services.model_jobs import ModelJobService
from chalicelib.services.versions import PREDICTIONS_PREFIX

OUTPUT_FORMATS = ("csv", "parquet")
MAX_PASSTHROUGH_COLUMNS = 50
MAX_COLUMN_NAME = 256
# Columns the job writes itself: a passthrough column may not take their names.
RESERVED_COLUMNS = ("prediction", "error")
RESERVED_PREFIX = "probability_"


class PredictionService(ModelJobService):
    KIND = "prediction"
    LAUNCH_KIND = "predict"
    ID_PREFIX = "pred"
    OUTPUT_PREFIX = PREDICTIONS_PREFIX
    DONE = "_SUCCESS"
    LIST_KEY = "predictions"
    REQUEST_FIELDS = ("storage_ids", "version", "passthrough_columns", "output_format")
    COMPLETE_FIELDS = ("rows", "error_rows")

    def check_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"passthrough_columns": _passthrough(body.get("passthrough_columns")),
                "output_format": v.choice(body, "output_format", OUTPUT_FORMATS)}

    def parameters(self, request: dict[str, Any], storage: list[StorageConfig]) -> dict[str, Any]:
        output_format = request["output_format"]
        if output_format is None:  # the input's, when all inputs share one the job writes
            formats = {s.format for s in storage}
            output_format = formats.pop() if len(formats) == 1 and formats <= set(OUTPUT_FORMATS) else "csv"
        return {**request, "output_format": output_format}

    def spec_fields(self, job: ModelJob) -> dict[str, Any]:
        return {"passthrough_columns": job.parameters["passthrough_columns"],
                "output_format": job.parameters["output_format"]}

    def result_of(self, job: ModelJob, done: dict[str, Any]) -> dict[str, Any]:
        parts = [p for p in done.get("parts") or [] if isinstance(p, dict)]
        return {"rows": _int(done.get("rows")), "error_rows": _int(done.get("error_rows")), "parts": len(parts),
                "columns": [c for c in done.get("columns") or [] if isinstance(c, str)][:200]}

    def view_fields(self, job: ModelJob) -> dict[str, Any]:
        return {"output_format": job.parameters.get("output_format"),
                "passthrough_columns": job.parameters.get("passthrough_columns", []),
                "rows": job.result.get("rows"), "error_rows": job.result.get("error_rows"),
                "parts": job.result.get("parts")}


def _passthrough(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise InvalidInput("passthrough_columns must be an array of column names", field="passthrough_columns")
    if len(value) > MAX_PASSTHROUGH_COLUMNS:
        raise InvalidInput(f"passthrough_columns may name at most {MAX_PASSTHROUGH_COLUMNS} columns",
                           field="passthrough_columns")
    for name in value:
        if len(name) > MAX_COLUMN_NAME:
            raise InvalidInput(f"a passthrough column name is at most {MAX_COLUMN_NAME} characters",
                               field="passthrough_columns")
        if name in RESERVED_COLUMNS or name.startswith(RESERVED_PREFIX):
            raise InvalidInput(f"passthrough column '{name}' would clash with an output column "
                               f"({', '.join(RESERVED_COLUMNS)}, {RESERVED_PREFIX}<class>)",
                               field="passthrough_columns")
    if len(set(value)) != len(value):
        raise InvalidInput("passthrough_columns names a column twice", field="passthrough_columns")
    return list(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
