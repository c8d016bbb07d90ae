"""The typed records the services work on: one frozen dataclass per stored entity.

Records are converted to and from PynamoDB items only inside `adapters/dynamo.py`,
which refuses a field the table does not declare (and the reverse), so a misspelled
key fails instead of vanishing. `public()` is the view the API returns: it leaves out
bookkeeping (the optimistic-lock version, counters, token hashes).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Record:
    # Fields that never leave the service layer.
    PRIVATE: ClassVar[tuple[str, ...]] = ("lock_version",)
    KEY: ClassVar[str] = "id"

    @property
    def key(self) -> str:
        return getattr(self, self.KEY)

    def public(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.PRIVATE}

    def values(self) -> dict[str, Any]:
        """Every field, private ones included (what the adapter stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def but(self: R, **changes: Any) -> R:
        """A copy with `changes` applied; an unknown field name raises TypeError."""
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class MlModel(Record):
    PRIVATE: ClassVar[tuple[str, ...]] = ("lock_version", "runs_started", "monitor_shard")

    id: str
    project_id: str
    ontology_id: str
    name: str
    type: str
    status: str
    created_at: str
    updated_at: str
    description: str = ""
    version: int = 0
    training_config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    training_metrics: dict[str, Any] = field(default_factory=dict)
    performance_metrics: dict[str, Any] = field(default_factory=dict)
    model_artifact_path: str = ""
    training_task_id: str = ""
    is_recommended: bool = False
    recommendation_score: float | None = None
    trained_at: str | None = None
    # How many training runs were ever started: the next run's version number.
    runs_started: int = 0
    # Scheduled evaluations (services/monitoring.py): {"storage_ids", "every_minutes", "max_drop", "max_psi",
    # "metric"?}; empty when off. A monitored model is on the due index (monitor_shard "due") until
    # next_evaluation_at.
    monitoring: dict[str, Any] = field(default_factory=dict)
    monitor_shard: str | None = None
    next_evaluation_at: str | None = None
    lock_version: int | None = None


@dataclass(frozen=True)
class Ontology(Record):
    id: str
    project_id: str
    name: str
    content: str
    created_at: str
    updated_at: str
    description: str = ""
    # The parsed content (chalicelib.ontology.OntologySummary.to_stored()), computed once when the
    # content is written, so reads never parse it again. Empty on records written before it existed.
    summary: dict[str, Any] = field(default_factory=dict)
    lock_version: int | None = None


@dataclass(frozen=True)
class StorageConfig(Record):
    id: str
    project_id: str
    name: str
    uri: str
    format: str
    created_at: str
    updated_at: str
    ontology_id: str | None = None
    lock_version: int | None = None


@dataclass(frozen=True)
class TrainingRun(Record):
    PRIVATE: ClassVar[tuple[str, ...]] = ("lock_version", "callback_token_hash")
    KEY: ClassVar[str] = "run_id"

    run_id: str
    model_id: str
    project_id: str
    version: int
    model_type: str
    status: str
    callback_token_hash: str
    created_at: str
    updated_at: str
    status_history: list[dict[str, Any]] = field(default_factory=list)
    training_config: dict[str, Any] = field(default_factory=dict)
    storage_ids: list[str] = field(default_factory=list)
    storage_uris: list[str] = field(default_factory=list)
    job_name: str = ""
    previous_model_status: str = "draft"
    failure_reason: str = ""
    model_artifact_path: str = ""
    performance_metrics: dict[str, Any] = field(default_factory=dict)
    training_metrics: dict[str, Any] = field(default_factory=dict)
    # After this instant a run that has not reported is failed.
    deadline_at: str | None = None
    # What a succeeded run read: the manifest's "data" (objects with their ETags, sizes and rows), capped.
    data_lineage: dict[str, Any] = field(default_factory=dict)
    lock_version: int | None = None


@dataclass(frozen=True)
class ModelJob(Record):
    """A job that uses a trained version (a batch prediction; `kind` names which), run like a training run:
    a Kubernetes Job (a local process locally) with its own token, deadline and per-job credentials."""

    PRIVATE: ClassVar[tuple[str, ...]] = ("lock_version", "callback_token_hash", "model_kind")

    id: str
    kind: str
    model_id: str
    project_id: str
    version: int
    status: str
    callback_token_hash: str
    created_at: str
    updated_at: str
    # "<model_id>#<kind>": the index that lists one model's jobs of one kind, newest first.
    model_kind: str = ""
    artifact_uri: str = ""
    output_uri: str = ""
    storage_ids: list[str] = field(default_factory=list)
    storage_uris: list[str] = field(default_factory=list)
    # The request's kind-specific settings (a prediction's passthrough_columns and output_format).
    parameters: dict[str, Any] = field(default_factory=dict)
    # What the job reported (a prediction's rows and error_rows, its parts).
    result: dict[str, Any] = field(default_factory=dict)
    status_history: list[dict[str, Any]] = field(default_factory=list)
    job_name: str = ""
    failure_reason: str = ""
    deadline_at: str | None = None
    lock_version: int | None = None


@dataclass(frozen=True)
class Recommendation(Record):
    """The last recommendation per project and ontology (model creation reads it)."""

    KEY: ClassVar[str] = "ontology_id"

    project_id: str
    ontology_id: str
    recommended_type: str
    score: float
    created_at: str
    result: dict[str, Any] = field(default_factory=dict)
