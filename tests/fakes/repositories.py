"""In-memory twins of the DynamoDB repositories (cosmicpython's FakeRepository).

Same semantics as `chalicelib/adapters/dynamo.py` (the contract in
`chalicelib/services/ports.py`, held by tests/functional/test_repository_contract.py):
conditional add, optimistic-locked replace and delete, newest-first paged lists.
"""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from chalicelib.errors import Conflict, InvalidInput, NotFound, StaleRecord
from chalicelib.records import MlModel, ModelJob, Ontology, Recommendation, Record, StorageConfig, TrainingRun
from chalicelib.services.ports import ACTIVE_RUN_STATUSES, MONITOR_SHARD, OptimisticModify
from chalicelib.services.validation import MAX_ITEM_BYTES, check_item_size

R = TypeVar("R", bound=Record)


def _token(owner: str, value: str, position: tuple) -> str:
    raw = json.dumps({owner: value, "after": list(position)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _position(token: str, owner: str, value: str) -> tuple:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        raise InvalidInput("next_token is not a token this API issued", field="next_token") from None
    if not isinstance(data, dict) or data.get(owner) != value:
        raise InvalidInput(f"next_token does not belong to this {owner}", field="next_token")
    after = data.get("after")
    if not isinstance(after, list) or len(after) != 2 or not all(isinstance(a, (str, int)) for a in after):
        raise InvalidInput("next_token is not a token this API issued", field="next_token")
    return tuple(after)


class MemoryRepository(OptimisticModify, Generic[R]):
    kind = "record"
    key_name = "id"

    def __init__(self) -> None:
        self.rows: dict[str, R] = {}
        self._lock = threading.Lock()
        # Hooks for tests: called before a replace is applied (to simulate a racing writer).
        self.before_replace: Callable[[R], None] | None = None

    def get(self, key: str) -> R:
        with self._lock:
            if key not in self.rows:
                raise NotFound(f"{self.kind} '{key}' does not exist", field=self.key_name)
            return self.rows[key]

    def find(self, key: str) -> R | None:
        try:
            return self.get(key)
        except NotFound:
            return None

    def add(self, record: R) -> R:
        check_item_size(record.values(), MAX_ITEM_BYTES, self.kind)  # as DynamoDB's item limit (the adapter)
        with self._lock:
            if record.key in self.rows:
                raise Conflict(f"{self.kind} '{record.key}' already exists", field=self.key_name)
            stored = record.but(lock_version=1)
            self.rows[record.key] = stored
            return stored

    def replace(self, record: R) -> R:
        if self.before_replace is not None:
            self.before_replace(record)
        check_item_size(record.values(), MAX_ITEM_BYTES, self.kind)
        with self._lock:
            current = self.rows.get(record.key)
            if current is None or current.lock_version != record.lock_version:
                raise StaleRecord(record.key)
            stored = record.but(lock_version=(record.lock_version or 0) + 1)
            self.rows[record.key] = stored
            return stored

    def delete(self, record: R) -> None:
        with self._lock:
            current = self.rows.get(record.key)
            if current is None or current.lock_version != record.lock_version:
                raise StaleRecord(record.key)
            del self.rows[record.key]

    def _by_status(self, status: str, limit: int, next_token: str | None) -> tuple[list[R], str | None]:
        """Records in `status`, least recently updated first (as the tables' status index)."""
        with self._lock:
            ordered = sorted((r for r in self.rows.values() if r.status == status), key=lambda r: (r.updated_at, r.key))
        if next_token:
            after = _position(next_token, "status", status)
            ordered = [r for r in ordered if (r.updated_at, r.key) > after]
        page = ordered[:limit]
        more = len(ordered) > limit
        return page, (_token("status", status, (page[-1].updated_at, page[-1].key)) if more and page else None)

    def _page(self, owner: str, value: str, items: list[R], order: Callable[[R], tuple], limit: int,
              next_token: str | None) -> tuple[list[R], str | None]:
        ordered = sorted(items, key=order, reverse=True)
        if next_token:
            after = _position(next_token, owner, value)
            ordered = [r for r in ordered if order(r) < after]
        page = ordered[:limit]
        more = len(ordered) > limit
        return page, (_token(owner, value, order(page[-1])) if more and page else None)

    def list_by_project(self, project_id: str, limit: int, next_token: str | None) -> tuple[list[R], str | None]:
        with self._lock:
            items = [r for r in self.rows.values() if r.project_id == project_id]
        return self._page("project_id", project_id, items, lambda r: (r.created_at, r.key), limit, next_token)


class MemoryModelRepository(MemoryRepository[MlModel]):
    kind = "model"

    def count_by_ontology(self, ontology_id: str) -> int:
        with self._lock:
            return sum(1 for r in self.rows.values() if r.ontology_id == ontology_id)

    def list_due(self, now: str, limit: int) -> list[str]:
        with self._lock:
            due = sorted((r.next_evaluation_at, r.id) for r in self.rows.values()
                         if r.monitor_shard == MONITOR_SHARD and r.next_evaluation_at and r.next_evaluation_at <= now)
        return [model_id for _, model_id in due[:limit]]


class MemoryOntologyRepository(MemoryRepository[Ontology]):
    kind = "ontology"


class MemoryStorageConfigRepository(MemoryRepository[StorageConfig]):
    kind = "storage config"


class MemoryTrainingRunRepository(MemoryRepository[TrainingRun]):
    kind = "training run"
    key_name = "run_id"

    def list_by_model(self, model_id: str, limit: int,
                      next_token: str | None) -> tuple[list[TrainingRun], str | None]:
        with self._lock:
            items = [r for r in self.rows.values() if r.model_id == model_id]
        return self._page("model_id", model_id, items, lambda r: (r.version, r.key), limit, next_token)

    def count_active_in_project(self, project_id: str) -> int:
        with self._lock:
            return sum(1 for r in self.rows.values() if r.project_id == project_id and r.status in ACTIVE_RUN_STATUSES)

    def list_by_status(self, status: str, limit: int,
                       next_token: str | None) -> tuple[list[TrainingRun], str | None]:
        return self._by_status(status, limit, next_token)

    def find_version(self, model_id: str, version: int) -> TrainingRun | None:
        with self._lock:
            return next((r for r in self.rows.values() if r.model_id == model_id and r.version == version), None)

    def delete_by_model(self, model_id: str) -> int:
        with self._lock:
            keys = [k for k, r in self.rows.items() if r.model_id == model_id]
            for key in keys:
                del self.rows[key]
        return len(keys)


class MemoryModelJobRepository(MemoryRepository[ModelJob]):
    kind = "job"

    def list_by_model(self, model_id: str, kind: str, limit: int,
                      next_token: str | None) -> tuple[list[ModelJob], str | None]:
        with self._lock:
            items = [r for r in self.rows.values() if r.model_kind == f"{model_id}#{kind}"]
        return self._page("model_kind", f"{model_id}#{kind}", items, lambda r: (r.created_at, r.key), limit,
                          next_token)

    def list_by_status(self, status: str, limit: int,
                       next_token: str | None) -> tuple[list[ModelJob], str | None]:
        return self._by_status(status, limit, next_token)

    def delete_by_model(self, model_id: str) -> int:
        with self._lock:
            doomed = [k for k, r in self.rows.items() if r.model_id == model_id]
            for key in doomed:
                del self.rows[key]
        return len(doomed)


class MemoryRecommendationRepository:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Recommendation] = {}

    def put(self, record: Recommendation) -> None:
        self.rows[(record.project_id, record.ontology_id)] = record

    def find(self, project_id: str, ontology_id: str) -> Recommendation | None:
        return self.rows.get((project_id, ontology_id))


class MemoryTrainingStarts:
    """`TrainingStarts` over the twins: both writes or neither, under both tables' locks."""

    def __init__(self, models: MemoryModelRepository, runs: MemoryTrainingRunRepository) -> None:
        self.models, self.runs = models, runs
        # Hook for tests: raises instead of committing (a transaction DynamoDB refused or never got).
        self.fail_with: Exception | None = None

    def begin(self, model: MlModel, run: TrainingRun) -> MlModel:
        if self.fail_with is not None:
            raise self.fail_with
        if model.lock_version is None:
            raise StaleRecord(model.key)
        if self.models.before_replace is not None:  # a racing writer, as for a replace of the model
            self.models.before_replace(model)
        with self.models._lock, self.runs._lock:
            current = self.models.rows.get(model.key)
            if current is None or current.lock_version != model.lock_version:
                raise StaleRecord(model.key)
            if run.key in self.runs.rows:
                raise Conflict(f"training run '{run.run_id}' already exists", field="run_id")
            stored = model.but(lock_version=model.lock_version + 1)
            self.models.rows[model.key] = stored
            self.runs.rows[run.key] = run.but(lock_version=1)
            return stored
