"""The training spec (what TRAINER_SPEC holds), parsed and validated into plain dataclasses."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trainer.errors import TrainingFailed
from trainer.hyperparameters import MODEL_TYPES, config_problem

FORMATS = ("csv", "jsonl", "parquet")


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
    # {"budget_seconds", "max_trials"?, "metric"?}: search hyperparameters first (trainer/tuning.py); None: no search.
    tuning: dict[str, Any] | None = None
    # "full": permutation importance and the forest's staged learning curve; "minimal": neither.
    diagnostics: str = "full"

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, model_type: str | None = None) -> TrainingConfig:
        """Checked against the schema (`trainer.hyperparameters`); with `model_type`, its hyperparameters too."""
        raw = dict(raw or {})
        problem = config_problem(raw, model_type, api=False)
        if problem:
            raise TrainingFailed(problem[1])
        return cls(
            train_test_split=float(raw.get("train_test_split", 0.8)),
            random_seed=raw.get("random_seed", 42),
            learning_rate=None if raw.get("learning_rate") is None else float(raw["learning_rate"]),
            batch_size=raw.get("batch_size"),
            max_iterations=raw.get("max_iterations"),
            early_stopping_rounds=raw.get("early_stopping_rounds"),
            target_column=raw.get("target_column"),
            hyperparameters=dict(raw.get("hyperparameters") or {}),
            validation_split=float(raw.get("validation_split", 0.1)),
            synthetic_rows=raw.get("synthetic_rows", 2000),
            tuning=dict(raw["tuning"]) if raw.get("tuning") is not None else None,
            diagnostics=raw.get("diagnostics", "full"),
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
            "tuning": dict(self.tuning) if self.tuning is not None else None,
            "diagnostics": self.diagnostics,
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
        config=TrainingConfig.from_dict(raw.get("training_config"), model_type),
        raw=raw,
    )

