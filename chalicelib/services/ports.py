"""What the services ask of storage: repository Protocols over typed records.

Two implementations keep each of these: the DynamoDB adapter (`adapters/dynamo.py`)
and the in-memory twin (`tests/fakes/repositories.py`); one contract suite
(`tests/functional/test_repository_contract.py`) runs against both.

Semantics every implementation keeps:
- `add` refuses an existing key (Conflict); `get` raises NotFound; `find` returns None.
- `replace` writes only if the record is unchanged since it was read (its
  `lock_version`), else raises `StaleRecord`; `delete` is conditional the same way.
- `modify` reads, applies `change`, and writes under that lock, re-reading and
  re-applying on a concurrent write (Conflict after `RETRIES_ON_STALE` tries).
- `list_by_project` is newest first, paged by an opaque token bound to the project.
- `find_version` is the model's run of that version (None if there is none); `delete_by_model`
  removes every run of a model (unconditionally: the model record is gone first) and says how many.
- `list_by_status` lists runs in one status across projects, least recently updated first, paged by
  a token bound to the status (a Query on an index, eventually consistent like the count below).
- `count_active_in_project` counts a project's runs in an `ACTIVE_RUN_STATUSES` status with a
  Query on an index (DynamoDB's is eventually consistent: a run written a moment ago may not be
  counted yet).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from chalicelib.errors import Conflict, StaleRecord
from chalicelib.records import MlModel, ModelJob, Ontology, Recommendation, Record, StorageConfig, TrainingRun

R = TypeVar("R", bound=Record)

# How often a read-change-write is retried on fresh state before answering 409.
RETRIES_ON_STALE = 5
# A run in one of these has not ended (the others: run_settlement.FINAL_RUN_STATUSES).
# `cancelling`: the model has left the run, but its job may still be stopping (it counts until it is gone).
ACTIVE_RUN_STATUSES = ("queued", "submitted", "running", "cancelling")
# What a ModelJob may be (records.ModelJob.kind), and its statuses until it ends.
JOB_KINDS = ("prediction", "evaluation")
# The due index's one partition: a monitored model has monitor_shard == MONITOR_SHARD.
MONITOR_SHARD = "due"
ACTIVE_JOB_STATUSES = ("queued", "running", "cancelling")


class Records(Protocol[R]):
    """Keyed records under the optimistic lock."""

    kind: str

    def get(self, key: str) -> R: ...

    def find(self, key: str) -> R | None: ...

    def add(self, record: R) -> R: ...

    def replace(self, record: R) -> R: ...

    def modify(self, key: str, change: Callable[[R], R], field: str | None = None) -> R: ...

    def delete(self, record: R) -> None: ...


class Repository(Records[R], Protocol):
    """Records of a project, listed by project (models, ontologies, storage configs)."""

    def list_by_project(self, project_id: str, limit: int, next_token: str | None) -> tuple[list[R], str | None]: ...


class ModelRepository(Repository[MlModel], Protocol):
    def count_by_ontology(self, ontology_id: str) -> int: ...

    def list_due(self, now: str, limit: int) -> list[str]:
        """Ids of monitored models whose next evaluation is due at `now`, earliest first (an index; the
        index is eventually consistent: a claim must re-read the model)."""
        ...


class OntologyRepository(Repository[Ontology], Protocol):
    pass


class StorageConfigRepository(Repository[StorageConfig], Protocol):
    pass


class TrainingRunRepository(Records[TrainingRun], Protocol):
    """Runs are listed by model (a run's project is its model's)."""

    def list_by_model(self, model_id: str, limit: int,
                      next_token: str | None) -> tuple[list[TrainingRun], str | None]: ...

    def count_active_in_project(self, project_id: str) -> int: ...

    def list_by_status(self, status: str, limit: int,
                       next_token: str | None) -> tuple[list[TrainingRun], str | None]: ...

    def find_version(self, model_id: str, version: int) -> TrainingRun | None: ...

    def delete_by_model(self, model_id: str) -> int: ...


class TrainingStarts(Protocol):
    """Starting a run, all or nothing: the model's change (conditional on the lock_version it was read
    at: `StaleRecord` otherwise) and the new run record (`Conflict` if its id exists) are written in
    one transaction, so a model never enters training without its run, nor a run without its model."""

    def begin(self, model: MlModel, run: TrainingRun) -> MlModel: ...


class RecommendationRepository(Protocol):
    def put(self, record: Recommendation) -> None: ...

    def find(self, project_id: str, ontology_id: str) -> Recommendation | None: ...


class OptimisticModify:
    """`modify` for any repository with get/replace: the one optimistic-lock retry loop."""

    kind = "record"

    def modify(self, key: str, change: Callable, field: str | None = None):
        for _ in range(RETRIES_ON_STALE):
            try:
                return self.replace(change(self.get(key)))  # type: ignore[attr-defined]
            except StaleRecord:
                continue
        raise Conflict(f"{self.kind} '{key}' is being changed concurrently; retry",
                       field=field or getattr(self, "key_name", "id"))


class ModelJobRepository(Records[ModelJob], Protocol):
    """Jobs are listed per model and kind (newest first), and per status for the reconciler."""

    def list_by_model(self, model_id: str, kind: str, limit: int,
                      next_token: str | None) -> tuple[list[ModelJob], str | None]: ...

    def list_by_status(self, status: str, limit: int,
                       next_token: str | None) -> tuple[list[ModelJob], str | None]: ...

    def delete_by_model(self, model_id: str) -> int: ...
