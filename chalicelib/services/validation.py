"""Request-body checks shared by the services. Each failure names the field at fault."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib import hyperparameters
from chalicelib.errors import InvalidInput, PayloadTooLarge

MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
STATUSES = ("draft", "training", "trained", "failed", "degraded", "deprecated", "archived")

DEFAULT_TRAINING_CONFIG = {"train_test_split": 0.8, "random_seed": 42}
MAX_NAME = 200
MAX_DESCRIPTION = 4000
MAX_ID = 200
# A project id is a path segment of the project's data location (s3://<data bucket>/<project_id>/)
# and part of a Cognito group name (project:<id>:<role>): no slashes, colons or dots-only segments.
PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def require_object(body: Any, what: str = "request body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return body


def reject_unknown(body: dict[str, Any], allowed: Iterable[str], where: str = "") -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        prefix = f"{where}." if where else ""
        raise InvalidInput(
            f"unknown field {prefix}{unknown[0]}; allowed: {', '.join(sorted(allowed))}",
            field=f"{prefix}{unknown[0]}",
        )


def string(body: dict[str, Any], name: str, *, required: bool = False, max_len: int = MAX_NAME,
           allow_empty: bool = False) -> str | None:
    if name not in body or body[name] is None:
        if required:
            raise InvalidInput(f"{name} is required", field=name)
        return None
    value = body[name]
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=name)
    unicode_text(value, name)
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{name} must not be empty", field=name)
    if len(value) > max_len:
        raise InvalidInput(f"{name} must be at most {max_len} characters", field=name)
    return value


def project_id(body: dict[str, Any], name: str = "project_id") -> str:
    value = string(body, name, required=True, max_len=100)
    if not PROJECT_ID.fullmatch(value):
        raise InvalidInput(f"{name} must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or "
                           "digit", field=name)
    return value


def choice(body: dict[str, Any], name: str, options: Iterable[str], *, required: bool = False) -> str | None:
    value = string(body, name, required=required)
    options = tuple(options)
    if value is not None and value not in options:
        raise InvalidInput(f"{name} must be one of {', '.join(options)} (got '{value}')", field=name)
    return value


def json_object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object", field=name)
    return storable(value, name)


# --- What DynamoDB can store ------------------------------------------------------------------------------
# A DynamoDB number has at most 38 significant digits, and its magnitude is 0 or 1E-130..9.99..9E+125.
# Every number a record keeps is held to that, even inside JSON attributes (stored as text today), so
# a record can move to native attributes, and the trainer and clients read back what was sent.
DYNAMODB_DIGITS = 38
DYNAMODB_EXPONENTS = range(-130, 126)  # the adjusted exponent (one digit before the point)


def unicode_text(value: str, path: str) -> str:
    """`value` is text that UTF-8 can encode (json.loads lets "\\ud800" escapes through: lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{path} is not valid Unicode (it holds a lone surrogate)", field=path) from None
    return value


def storable_number(value: int | float, path: str) -> int | float:
    """A finite number DynamoDB can store (38 significant digits, exponent -130..+125)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{path} must be a finite number", field=path)
    try:  # a float as its shortest repr (at most 17 digits); an int exactly
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{path} is not a number DynamoDB can store", field=path) from None
    significant = "".join(map(str, number.as_tuple().digits)).strip("0")
    if not significant:
        return value
    if len(significant) > DYNAMODB_DIGITS:
        raise InvalidInput(f"{path} has more than {DYNAMODB_DIGITS} significant digits", field=path)
    if number.adjusted() not in DYNAMODB_EXPONENTS:
        raise InvalidInput(f"{path} is out of range: magnitudes from 1E-130 to 1E+126 (exclusive) can be stored",
                           field=path)
    return value


def storable(value: Any, path: str) -> Any:
    """JSON whose strings (and keys) are valid Unicode and whose numbers DynamoDB can store."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return unicode_text(value, path)
    if isinstance(value, (int, float)):
        return storable_number(value, path)
    if isinstance(value, dict):
        for key, child in value.items():
            unicode_text(str(key), path)
            storable(child, f"{path}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            storable(child, f"{path}[{i}]")
    return value


# A count a callback reports (epochs, rows, trials): a non-negative integer DynamoDB can store exactly.
MAX_COUNT = 10**15


def count(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidInput(f"{path} must be a non-negative integer", field=path)
    return value


def finite_number(value: Any, path: str) -> int | float:
    """A finite number DynamoDB can store (`storable_number`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{path} must be a finite number", field=path)
    return storable_number(value, path)


def finite_metrics(value: Any, name: str) -> dict[str, Any]:
    """A metrics object: numbers inside must be finite and storable (nested lists/objects allowed)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object", field=name)
    return storable(value, name)


# --- Item size --------------------------------------------------------------------------------------------
# DynamoDB refuses an item over 400 KB (409,600 bytes: attribute names plus values). A record is
# refused (413, naming its largest field) before it is written when its estimate passes
# MAX_ITEM_BYTES. The estimate is exact for text and JSON attributes and over for numbers (counted
# at their 21-byte maximum); the 59,600 bytes of margin cover what DynamoDB counts that we do not
# see (its own per-attribute overhead), so a record we accept is never one DynamoDB refuses. Should
# it ever be, dynamo_call turns DynamoDB's refusal into the same 413.
DYNAMODB_ITEM_BYTES = 400 * 1024
MAX_ITEM_BYTES = 350_000


def attribute_bytes(name: str, value: Any) -> int:
    """What one attribute costs in a DynamoDB item, as our tables store it (the name counts too).

    Objects and lists are JSON attributes: stored as json.dumps text, whose non-ASCII characters
    are \\uXXXX escapes (6 bytes each)."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if value is None or isinstance(value, bool):
        return size + 1
    if isinstance(value, (int, float)):
        return size + 21
    if isinstance(value, str):
        return size + len(value.encode("utf-8", "surrogatepass"))
    return size + len(json.dumps(value))


def check_item_size(values: Mapping[str, Any], limit: int = MAX_ITEM_BYTES, what: str = "record") -> None:
    """Refuse (413) a record whose item would not fit in DynamoDB, naming its biggest field."""
    sizes = {name: attribute_bytes(name, value) for name, value in values.items()}
    total = sum(sizes.values())
    if total > limit:
        biggest = max(sizes, key=sizes.__getitem__)
        raise PayloadTooLarge(
            f"the {what} would take about {total} bytes, over the limit of {limit} per record "
            f"(DynamoDB's item limit is {DYNAMODB_ITEM_BYTES}); its largest field is {biggest} "
            f"({sizes[biggest]} bytes)", field=biggest, limit_bytes=limit)


# The schema is one module per deployable (chalicelib/hyperparameters.py here, trainer/hyperparameters.py
# in the image), held equal by tests/unit/test_hyperparameters_parity.py.
TRAINING_CONFIG_KEYS = tuple(k for k, spec in hyperparameters.TRAINING_CONFIG.items() if spec.get("api", True))


def training_config(value: Any, *, with_defaults: bool, model_type: str | None = None,
                    where: str = "") -> dict[str, Any]:
    """Validate a training_config against the trainer's schema; with_defaults fills train_test_split and
    random_seed. With `model_type`, its hyperparameters are checked too and per-type maxima apply.
    `where` says what was checked when it is not just the request's field (a merged config)."""
    if value is None:
        value = {}
    problem = hyperparameters.config_problem(value, model_type)
    if problem:
        field, message = problem
        raise InvalidInput(f"{message}{where}", field=field)
    storable(value, "training_config")
    return {**DEFAULT_TRAINING_CONFIG, **value} if with_defaults else dict(value)


def limit(raw: str | None, default: int = 50, maximum: int = 100) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput("limit must be an integer", field="limit") from None
    if not 1 <= value <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}", field="limit")
    return value


def merge_metadata(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Key-by-key merge; a key set to null is removed."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


MONITORING_FIELDS = ("storage_ids", "every_minutes", "max_drop", "max_psi", "metric")
MONITORING_DEFAULTS = {"every_minutes": 60, "max_drop": 0.05, "max_psi": 0.2}
MIN_EVERY_MINUTES, MAX_EVERY_MINUTES = 5, 7 * 24 * 60
MAX_MONITORED_STORAGE_IDS = 20


def monitoring(value: Any) -> dict[str, Any]:
    """A model's `monitoring` settings with their defaults; {} (null or {}) turns monitoring off."""
    if value is None or value == {}:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("monitoring must be an object (or null to turn it off)", field="monitoring")
    reject_unknown(value, MONITORING_FIELDS, where="monitoring")
    ids = value.get("storage_ids")
    if (not isinstance(ids, list) or not ids or len(ids) > MAX_MONITORED_STORAGE_IDS
            or not all(isinstance(i, str) and 0 < len(i) <= MAX_ID for i in ids)):
        raise InvalidInput(f"monitoring.storage_ids must be 1 to {MAX_MONITORED_STORAGE_IDS} storage config ids "
                           "(the labelled data each evaluation reads)", field="monitoring.storage_ids")
    settings: dict[str, Any] = {**MONITORING_DEFAULTS, "storage_ids": list(dict.fromkeys(ids))}
    every = value.get("every_minutes", MONITORING_DEFAULTS["every_minutes"])
    if isinstance(every, bool) or not isinstance(every, int) or not MIN_EVERY_MINUTES <= every <= MAX_EVERY_MINUTES:
        raise InvalidInput(f"monitoring.every_minutes must be an integer from {MIN_EVERY_MINUTES} to "
                           f"{MAX_EVERY_MINUTES}", field="monitoring.every_minutes")
    settings["every_minutes"] = every
    for name, upper in (("max_drop", 1.0), ("max_psi", 10.0)):
        number = value.get(name, MONITORING_DEFAULTS[name])
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number <= upper:
            raise InvalidInput(f"monitoring.{name} must be a number from 0 to {upper}", field=f"monitoring.{name}")
        settings[name] = float(number)
    if "metric" in value:
        metric = value["metric"]
        if not isinstance(metric, str) or not 0 < len(metric) <= 64:
            raise InvalidInput("monitoring.metric must name a metric of the version's performance_metrics",
                               field="monitoring.metric")
        settings["metric"] = metric
    return settings
