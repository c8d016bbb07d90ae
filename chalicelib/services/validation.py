"""Request-body checks shared by the services. Each failure names the field at fault."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from chalicelib.errors import InvalidInput

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
    return value


def finite_metrics(value: Any, name: str) -> dict[str, Any]:
    """A metrics object: numbers inside must be finite (nested lists/objects allowed)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object", field=name)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, bool) or node is None or isinstance(node, str):
            return
        if isinstance(node, (int, float)):
            if not math.isfinite(node):
                raise InvalidInput(f"{path} must be a finite number", field=path)
            return
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{path}.{key}")
            return
        if isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}[{i}]")

    walk(value, name)
    return value


def _number(cfg: dict[str, Any], key: str, *, integer: bool) -> float | int | None:
    if key not in cfg:
        return None
    value = cfg[key]
    field = f"training_config.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise InvalidInput(f"{field} must be {kind}", field=field)
    if not math.isfinite(value):
        raise InvalidInput(f"{field} must be finite", field=field)
    return value


TRAINING_CONFIG_KEYS = (
    "train_test_split", "random_seed", "learning_rate", "batch_size", "max_iterations",
    "early_stopping_rounds", "target_column", "hyperparameters",
)


def training_config(value: Any, *, with_defaults: bool) -> dict[str, Any]:
    """Validate a training_config; with_defaults fills train_test_split and random_seed."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidInput("training_config must be a JSON object", field="training_config")
    reject_unknown(value, TRAINING_CONFIG_KEYS, "training_config")
    split = _number(value, "train_test_split", integer=False)
    if split is not None and not 0 < split < 1:
        raise InvalidInput("training_config.train_test_split must be strictly between 0 and 1",
                           field="training_config.train_test_split")
    seed = _number(value, "random_seed", integer=True)
    if seed is not None and not 0 <= seed < 2**32:
        raise InvalidInput("training_config.random_seed must be between 0 and 4294967295",
                           field="training_config.random_seed")
    for key, integer in (("learning_rate", False), ("batch_size", True), ("max_iterations", True),
                         ("early_stopping_rounds", True)):
        number = _number(value, key, integer=integer)
        if number is not None and number <= 0:
            raise InvalidInput(f"training_config.{key} must be positive", field=f"training_config.{key}")
    if "target_column" in value:
        target = value["target_column"]
        if not isinstance(target, str) or not target.strip():
            raise InvalidInput("training_config.target_column must be a non-empty string",
                               field="training_config.target_column")
    if "hyperparameters" in value and not isinstance(value["hyperparameters"], dict):
        raise InvalidInput("training_config.hyperparameters must be a JSON object",
                           field="training_config.hyperparameters")
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
