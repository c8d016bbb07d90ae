"""The training spec (what TRAINER_SPEC holds), parsed and validated into plain dataclasses."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from trainer.errors import TrainingFailed

MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
FORMATS = ("csv", "jsonl", "parquet")
_CONFIG_KEYS = {
    "train_test_split",
    "random_seed",
    "learning_rate",
    "batch_size",
    "max_iterations",
    "early_stopping_rounds",
    "target_column",
    "hyperparameters",
    "validation_split",
    "synthetic_rows",
}


@dataclass(frozen=True)
class StorageLocation:
    uri: str
    format: str
    id: str = ""


@dataclass(frozen=True)
class TrainingConfig:
    """`training_config`; every optional key is None when absent (each model type has its default)."""

    train_test_split: float = 0.8
    random_seed: int = 42
    learning_rate: float | None = None
    batch_size: int | None = None
    max_iterations: int | None = None
    early_stopping_rounds: int | None = None
    target_column: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    validation_split: float = 0.1
    synthetic_rows: int = 2000

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TrainingConfig:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - _CONFIG_KEYS)
        if unknown:
            raise TrainingFailed(
                f"unknown training_config key(s): {', '.join(unknown)} (known: {', '.join(sorted(_CONFIG_KEYS))})"
            )
        hyper = raw.get("hyperparameters") or {}
        if not isinstance(hyper, dict):
            raise TrainingFailed("training_config.hyperparameters must be an object")
        target = raw.get("target_column")
        if target is not None and (not isinstance(target, str) or not target):
            raise TrainingFailed("training_config.target_column must be a non-empty string")
        return cls(
            train_test_split=_fraction(raw, "train_test_split", 0.8),
            random_seed=_integer(raw, "random_seed", 42, minimum=0),
            learning_rate=_positive_float(raw, "learning_rate"),
            batch_size=_integer(raw, "batch_size", None, minimum=1),
            max_iterations=_integer(raw, "max_iterations", None, minimum=1),
            early_stopping_rounds=_integer(raw, "early_stopping_rounds", None, minimum=1),
            target_column=target,
            hyperparameters=dict(hyper),
            validation_split=_fraction(raw, "validation_split", 0.1),
            synthetic_rows=_integer(raw, "synthetic_rows", 2000, minimum=50),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "train_test_split": self.train_test_split,
            "random_seed": self.random_seed,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "max_iterations": self.max_iterations,
            "early_stopping_rounds": self.early_stopping_rounds,
            "target_column": self.target_column,
            "hyperparameters": dict(self.hyperparameters),
            "validation_split": self.validation_split,
            "synthetic_rows": self.synthetic_rows,
        }


@dataclass(frozen=True)
class TrainingSpec:
    model_id: str
    run_id: str
    model_type: str
    version: int
    ontology_id: str
    ontology_ttl: str
    storage: tuple[StorageLocation, ...]
    config: TrainingConfig
    raw: dict[str, Any]


def parse_spec(text: str | bytes) -> TrainingSpec:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise TrainingFailed(f"training spec is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TrainingFailed("training spec must be a JSON object")
    return spec_from_dict(raw)


def spec_from_dict(raw: dict[str, Any]) -> TrainingSpec:
    model_type = raw.get("model_type")
    if model_type not in MODEL_TYPES:
        raise TrainingFailed(f"model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TrainingFailed(f"version must be a positive integer, got {version!r}")
    ontology = raw.get("ontology") or {}
    content = ontology.get("content") if isinstance(ontology, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise TrainingFailed("spec.ontology.content (Turtle) is missing or empty")
    storage = []
    for index, item in enumerate(raw.get("storage") or []):
        uri, fmt = (item or {}).get("uri"), (item or {}).get("format")
        if not isinstance(uri, str) or not uri.startswith("s3://") or len(uri) <= 5:
            raise TrainingFailed(f"storage[{index}].uri must be an s3:// URI, got {uri!r}")
        if fmt not in FORMATS:
            raise TrainingFailed(f"storage[{index}].format {fmt!r} is not one of {', '.join(FORMATS)}")
        storage.append(StorageLocation(uri=uri, format=fmt, id=str(item.get("id", ""))))
    return TrainingSpec(
        model_id=str(raw.get("model_id", "")),
        run_id=str(raw.get("run_id", "")),
        model_type=model_type,
        version=version,
        ontology_id=str(ontology.get("id", "")),
        ontology_ttl=content,
        storage=tuple(storage),
        config=TrainingConfig.from_dict(raw.get("training_config")),
        raw=raw,
    )


def _fraction(raw: dict, key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise TrainingFailed(f"training_config.{key} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _integer(raw: dict, key: str, default, minimum: int):
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainingFailed(f"training_config.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _positive_float(raw: dict, key: str):
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise TrainingFailed(f"training_config.{key} must be a positive number, got {value!r}")
    return float(value)
