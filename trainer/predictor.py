"""Online predictions: the handler of the predictor function (a Lambda container image built from the
trainer image; locally `scripts/local_predictor.py` serves the same handler over the Lambda Invoke API).

Hides loading a version (`trainer.loader.load_model`, every file's sha256 checked), a small LRU cache
of loaded versions (artifacts are immutable, so a warm invocation never reloads), checking the
instances against the manifest's `input_schema`, and turning numpy values into JSON-native ones.

Event:   {"model_id": "...", "version": 3, "artifact_uri": "s3://<bucket>/models/<id>/v3/",
          "instances": [{"<feature>": <value>, ...}, ...]}
Success: {"model_id", "version", "predictions": [...],
          "probabilities": [[...], ...], "classes": [...]}     (the last two for classification only;
                                                                 probabilities in `classes` order)
Errors are returned, not raised:
         {"error": {"code": "invalid_input", "message": "...", "field": "instances[3].temperature"}}
         {"error": {"code": "artifact_error", "message": "..."}}       the version cannot be loaded
         {"error": {"code": "storage_unavailable", "message": "..."}}  S3 unreachable or throttling
A malformed event (no `artifact_uri`: a bug in the caller) and any unexpected failure raise, which
Lambda reports as a function error.

Instance rules (the API answers 400 with the message and field):
- `instances` is a list of 1 to MAX_INSTANCES (1,000) JSON objects.
- Every feature of `input_schema` is a key of every instance; `null` means missing (the model
  imputes it). Keys that are not features are ignored.
- integer / number: a JSON number (not true/false), finite, or null. Integers are not required
  for `integer` features: training reads them as floats too.
- boolean: true, false or null.
- datetime: a string that training's coercion (`trainer.features.coerce_column(..., "datetime")`:
  pandas, mixed formats, converted to UTC) parses, e.g. "2024-05-01T12:00:00Z", or null.
- string: a string, or a finite number, which becomes its text as training's coercion makes it
  (`str(value)`: 3 -> "3", 2.5 -> "2.5"); true/false are refused; null. Values not seen in training
  are allowed (they map to the infrequent bucket or to all zeros, as in training).
The first problem in instance order (then schema order) is reported.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainer.errors import ArtifactError

MAX_INSTANCES = 1000
CACHE_SIZE = 4  # loaded versions kept per warm function instance (a forest can take a few hundred MB)
_SHOWN_VALUE_CHARS = 60
# S3 answers that mean "try again shortly" rather than "this artifact is broken".
_TRANSIENT_S3_CODES = frozenset({"SlowDown", "RequestTimeout", "Throttling", "ThrottlingException",
                                 "ServiceUnavailable", "InternalError", "RequestLimitExceeded"})

log = logging.getLogger("trainer.predictor")


# ---- the handler ---------------------------------------------------------------------


class ModelCache:
    """Loaded versions by artifact URI, least recently used evicted first; safe to share between threads.

    Two threads missing the same URI at once may both load it (the second result wins); loads are
    rare and the result is the same, so no per-key locking.
    """

    def __init__(self, load: Callable[[str], Any] | None = None, size: int = CACHE_SIZE) -> None:
        self._load = load or _load_from_s3
        self._size = size
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a version was loaded (not served from the cache)

    def get(self, uri: str) -> tuple[Any, bool]:
        """(loaded model, True if it came from the cache)."""
        with self._lock:
            if uri in self._models:
                self._models.move_to_end(uri)
                return self._models[uri], True
        loaded = self._load(uri)
        with self._lock:
            self.loads += 1
            self._models[uri] = loaded
            self._models.move_to_end(uri)
            while len(self._models) > self._size:
                self._models.popitem(last=False)
        return loaded, False

    def __contains__(self, uri: str) -> bool:
        with self._lock:
            return uri in self._models


def _load_from_s3(uri: str):
    from trainer.loader import load_model
    from trainer.storage import s3_client

    # A client per load (loads are rare): boto3 reads AWS_ENDPOINT_URL and the credentials itself.
    return single_threaded(load_model(uri, s3_client()))


def single_threaded(loaded):
    """A forest saved with the trainer's n_jobs would hand every request to joblib's thread pool (a few
    rows: ~24 ms instead of ~1.6 ms). One request is small: predict in the calling thread. The
    predictions do not depend on n_jobs."""
    pipeline = getattr(loaded.model, "pipeline", None)
    for _, step in getattr(pipeline, "steps", []):
        if "n_jobs" in getattr(step, "get_params", dict)():
            step.set_params(n_jobs=1)
    return loaded


MODELS = ModelCache()


def handler(event: dict, context: Any) -> dict:
    """The Lambda entry point (`trainer.predictor.handler`)."""
    return handle(event, MODELS)


def handle(event: dict, models: ModelCache) -> dict:
    """One invocation against `models` (the handler's cache, or a test's)."""
    uri = _artifact_uri(event)
    instances = event.get("instances")
    problem = _list_problem(instances)  # before loading: an oversized request never costs a cold load
    if problem is not None:
        return {"error": problem.body()}
    started = time.monotonic()
    try:
        loaded, cached = models.get(uri)
    except (ImportError, MemoryError):
        raise  # the function itself is broken, not the artifact
    except Exception as exc:  # noqa: BLE001 - every other load failure is a problem of this artifact
        return {"error": _load_error(uri, exc)}
    result = predict_rows(loaded, instances)
    log.info("predicted", extra={"model_id": event.get("model_id"), "version": event.get("version"),
                                 "instances": len(instances), "cached": cached, "error": "error" in result,
                                 "duration_ms": round((time.monotonic() - started) * 1000, 1)})
    if "error" in result:
        return result
    return {"model_id": event.get("model_id"), "version": event.get("version"), **result}


def _artifact_uri(event: Any) -> str:
    if not isinstance(event, dict):
        raise ValueError(f"the event must be a JSON object, got {type(event).__name__}")
    uri = event.get("artifact_uri")
    if not isinstance(uri, str) or not uri:
        raise ValueError("the event has no artifact_uri")
    return uri if uri.endswith("/") else uri + "/"  # one cache key per version


def _load_error(uri: str, exc: Exception) -> dict:
    """The error body for a failed load: the URI and the cause's class, never a traceback."""
    cause = exc.__cause__
    if _transient(cause):
        log.warning("artifact storage unavailable", extra={"artifact_uri": uri, "cause": type(cause).__name__})
        return {"code": "storage_unavailable",
                "message": f"model artifact {uri} cannot be read right now ({_cause_name(cause)}); retry later"}
    log.error("artifact cannot be loaded", exc_info=exc, extra={"artifact_uri": uri})
    if isinstance(exc, ArtifactError) and cause is not None:  # "cannot read s3://...: <botocore text>"
        detail = f"{str(exc).split(': ', 1)[0]} ({_cause_name(cause)})"
    elif isinstance(exc, ArtifactError):  # our own message: sha256 mismatch, format version, untrusted types
        detail = str(exc)
    else:  # a corrupt file that slipped past the checks (unparseable manifest, skops or torch refusing it)
        detail = type(exc).__name__
    return {"code": "artifact_error", "message": f"model artifact {uri} cannot be loaded: {detail}"}


def _transient(cause: BaseException | None) -> bool:
    if cause is None:
        return False
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(cause, (BotoConnectionError, HTTPClientError)):  # unreachable, timed out, connection dropped
        return True
    if isinstance(cause, ClientError):
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return _cause_name(cause) in _TRANSIENT_S3_CODES or status in (429, 500, 503)
    return False


def _cause_name(cause: BaseException) -> str:
    """A ClientError's AWS error code (NoSuchKey, AccessDenied, ...), else the exception's class."""
    response = getattr(cause, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code else type(cause).__name__


# ---- instances -> predictions ----------------------------------------------------------


def predict_rows(loaded, instances: Any) -> dict:
    """Check `instances` against `loaded.manifest["input_schema"]` and predict: pure, no I/O.

    {"predictions", "probabilities", "classes"} (the last two for classification), or {"error": ...}.
    """
    schema = loaded.manifest["input_schema"]
    problem = validate_instances(schema, instances)
    if problem is not None:
        return {"error": problem.body()}
    frame = instance_frame(schema, instances)
    result: dict[str, Any] = {"predictions": [_native(v) for v in loaded.predict(frame)]}
    if loaded.task == "classification":
        result["probabilities"] = [[float(p) for p in row] for row in loaded.predict_proba(frame)]
        result["classes"] = [_native(c) for c in loaded.classes]
    return result


@dataclass(frozen=True)
class InputProblem:
    message: str
    field: str
    position: tuple[int, int] = (-1, -1)  # (instance, feature) for "first problem" ordering

    def body(self) -> dict:
        return {"code": "invalid_input", "message": self.message, "field": self.field}


def validate_instances(schema: list[dict], instances: Any) -> InputProblem | None:
    """The first problem of `instances` under the rules in the module docstring, or None."""
    problem = _list_problem(instances)
    if problem is not None:
        return problem
    found: list[InputProblem] = []
    for index, instance in enumerate(instances):
        problem = _instance_problem(index, instance, schema)
        if problem is not None:
            found.append(problem)
            break
    checked = instances[: found[0].position[0] + 1] if found else instances
    found += _unreadable_datetimes(schema, checked)
    return min(found, key=lambda p: p.position) if found else None


def _list_problem(instances: Any) -> InputProblem | None:
    if not isinstance(instances, list):
        return InputProblem(f"instances must be a list of objects, got {_shown(instances)}", "instances")
    if not instances:
        return InputProblem("instances must hold at least one instance", "instances")
    if len(instances) > MAX_INSTANCES:
        return InputProblem(f"instances holds {len(instances)} instances; at most {MAX_INSTANCES} per request",
                            "instances")
    return None


def _instance_problem(index: int, instance: Any, schema: list[dict]) -> InputProblem | None:
    where = f"instances[{index}]"
    if not isinstance(instance, dict):
        return InputProblem(f"{where} must be a JSON object, got {_shown(instance)}", where, (index, -1))
    for position, feature in enumerate(schema):
        name = feature["name"]
        if name not in instance:
            return InputProblem(f"{where} is missing feature '{name}'", f"{where}.{name}", (index, position))
        expected = _type_problem(feature["type"], instance[name])
        if expected is not None:
            return InputProblem(f"{where}.{name} must be {expected}, got {_shown(instance[name])}",
                                f"{where}.{name}", (index, position))
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _number_problem(value: Any) -> str | None:
    if not _is_number(value):
        return "a number"
    return None if _finite(value) else "a finite number"


def _boolean_problem(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true, false or null"


def _datetime_problem(value: Any) -> str | None:
    return None if isinstance(value, str) else 'a datetime string such as "2024-05-01T12:00:00Z"'


def _string_problem(value: Any) -> str | None:
    if isinstance(value, str) or (_is_number(value) and _finite(value)):
        return None
    return "a string"


_CHECKS = {"integer": _number_problem, "number": _number_problem, "boolean": _boolean_problem,
           "datetime": _datetime_problem}


def _type_problem(kind: str, value: Any) -> str | None:
    """What `value` must be for a feature of `kind` (None when it is fine); any other kind is text."""
    if value is None:
        return None
    return _CHECKS.get(kind, _string_problem)(value)


def _unreadable_datetimes(schema: list[dict], instances: list) -> list[InputProblem]:
    """Datetime strings that training's coercion would turn into NaT (parsed per column, as predict does)."""
    import pandas as pd

    from trainer.features import coerce_column

    problems = []
    for position, feature in enumerate(schema):
        if feature["type"] != "datetime":
            continue
        name = feature["name"]
        rows = [(i, row[name]) for i, row in enumerate(instances)
                if isinstance(row, dict) and isinstance(row.get(name), str)]
        if not rows:
            continue
        parsed = coerce_column(pd.Series([value for _, value in rows], dtype=object), "datetime")
        for (index, value), ok in zip(rows, parsed.notna(), strict=True):
            if not ok:
                problems.append(InputProblem(
                    f"instances[{index}].{name} must be a datetime string such as \"2024-05-01T12:00:00Z\", "
                    f"got {_shown(value)}", f"instances[{index}].{name}", (index, position)))
                break
    return problems


def instance_frame(schema: list[dict], instances: list[dict]):
    """The checked instances as the DataFrame the pipeline reads: schema columns only, in schema order.

    Numbers sent for a string feature become their own text here, value by value; left to the
    DataFrame, a column of 3 and null would become 3.0 and "3.0".
    """
    import pandas as pd

    columns = {}
    for feature in schema:
        name, kind = feature["name"], feature["type"]
        values = [row[name] for row in instances]
        if kind not in _CHECKS:
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _shown(value: Any) -> str:
    """A value as JSON, shortened, for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[: _SHOWN_VALUE_CHARS - 1] + "…"
