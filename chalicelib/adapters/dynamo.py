"""DynamoDB repositories: typed records (`chalicelib.records`) in and out; PynamoDB inside.

Every create is conditional on the key not existing; every replace is conditional
on the optimistic-lock version the record was read at (`StaleRecord` otherwise);
listing is a Query on the project index, newest first, paginated by an opaque token.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from botocore.exceptions import BotoCoreError
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, PynamoDBException
from pynamodb.models import Model

from chalicelib.adapters import tables
from chalicelib.adapters.aws_faults import unavailable
from chalicelib.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, StaleRecord, UpstreamUnavailable
from chalicelib.records import MlModel, ModelJob, Ontology, Recommendation, Record, StorageConfig, TrainingRun
from chalicelib.services.ports import (
    ACTIVE_RUN_STATUSES,
    JOB_KINDS,
    MONITOR_SHARD,
    RETRIES_ON_STALE,
    OptimisticModify,
)
from chalicelib.services.validation import DYNAMODB_ITEM_BYTES, MAX_ITEM_BYTES, attribute_bytes, check_item_size

__all__ = ["RETRIES_ON_STALE", "StaleRecord", "ModelRepository", "OntologyRepository", "StorageConfigRepository",
           "TrainingRunRepository", "ModelJobRepository", "RecommendationRepository"]

T = TypeVar("T", bound=Model)
R = TypeVar("R")


def _condition_failed(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def dynamo_call(method: Callable[..., R]) -> Callable[..., R]:
    """Translate DynamoDB being unreachable or throttling into UpstreamUnavailable (503).

    Anything else (a missing table, a malformed request) stays an error of ours.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        try:
            return method(*args, **kwargs)
        except (PynamoDBException, BotoCoreError, OSError) as exc:
            # Throttled, timed out, refused or dropped mid-request (a dropped connection's error has
            # no response: ask `unavailable`, never `exc.cause_response_code`, which raises on it).
            if unavailable(exc):
                raise UpstreamUnavailable("the database is temporarily unavailable; retry shortly") from exc
            if _item_too_large(exc):
                raise _too_large(args) from exc
            raise

    return wrapper


def _item_too_large(exc: BaseException) -> bool:
    """DynamoDB's own refusal of an item over 400 KB (a ValidationException): were our estimate
    (check_item_size) ever short, the caller still gets a 413, not a 500."""
    response = getattr(getattr(exc, "cause", None), "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    message = str(error.get("Message", "")) if isinstance(error, dict) else ""
    return "Item size has exceeded the maximum allowed size" in message


def _too_large(args: tuple[Any, ...]) -> PayloadTooLarge:
    record = next((a for a in args if isinstance(a, Record)), None)
    if record is None:
        return PayloadTooLarge(f"the record is over DynamoDB's item limit of {DYNAMODB_ITEM_BYTES} bytes")
    values = record.values()
    biggest = max(values, key=lambda name: attribute_bytes(name, values[name]))
    return PayloadTooLarge(f"the record is over DynamoDB's item limit of {DYNAMODB_ITEM_BYTES} bytes; its "
                           f"largest field is {biggest}", field=biggest)


def encode_token(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


MAX_TOKEN_CHARS = 2048


def decode_token(token: str, expected_hash: tuple[str, str], shape: dict[str, str]) -> dict[str, Any]:
    """Turn a `next_token` back into an exclusive start key, refusing forged or foreign tokens.

    `shape` is the start key's attributes and their DynamoDB types (table key and index keys):
    anything else is refused here rather than sent to DynamoDB."""
    not_ours = InvalidInput("next_token is not a token this API issued", field="next_token")
    if len(token) > MAX_TOKEN_CHARS:
        raise not_ours
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise not_ours from None
    name, value = expected_hash
    if not isinstance(key, dict) or not isinstance(key.get(name), dict) or key[name].get("S") != value:
        raise InvalidInput(f"next_token does not belong to this {name}", field="next_token")
    if set(key) != set(shape):
        raise not_ours
    for attribute, kind in shape.items():
        typed = key[attribute]
        if not isinstance(typed, dict) or set(typed) != {kind} or not isinstance(typed[kind], str):
            raise not_ours
        if kind == "N" and not _is_number(typed[kind]):
            raise not_ours
    return key


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return len(text) <= 40


class SchemaMismatch(TypeError):
    """A record type and its table disagree on the fields they hold."""


def check_schema(table: type[Model], record_type: type[Record]) -> None:
    """The table declares exactly the record's fields: nothing is dropped or invented on the way."""
    declared, wanted = set(table.get_attributes()), set(record_type.field_names())
    if declared != wanted:
        raise SchemaMismatch(f"{table.__name__} and {record_type.__name__} differ: table only "
                             f"{sorted(declared - wanted)}, record only {sorted(wanted - declared)}")


def to_item(table: type[T], record: Record) -> T:
    if not isinstance(record, Record):
        raise TypeError(f"expected a record, got {type(record).__name__}")
    item = table()
    for name, value in record.values().items():
        if name not in table.get_attributes():
            raise SchemaMismatch(f"{table.__name__} has no attribute {name!r}")
        if value is not None:  # unset (null) attributes, and a lock not yet taken (a new record)
            setattr(item, name, value)
    return item


def to_record(record_type: type[R], item: Model) -> R:
    return record_type(**{name: getattr(item, name) for name in record_type.field_names()})


class Repository(OptimisticModify, Generic[T, R]):
    """Conditional CRUD for one PynamoDB table whose hash key is `key_name`."""

    table: type[T]
    record_type: type[R]
    key_name = "id"
    kind = "record"
    # Writes over this estimate are refused (413) before they reach DynamoDB (validation.check_item_size).
    item_limit = MAX_ITEM_BYTES

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "table" in cls.__dict__:
            check_schema(cls.table, cls.record_type)

    def _record(self, item: T) -> R:
        return to_record(self.record_type, item)

    @dynamo_call
    def get(self, key: str) -> R:
        try:
            return self._record(self.table.get(key, consistent_read=True))
        except DoesNotExist:
            raise NotFound(f"{self.kind} '{key}' does not exist", field=self.key_name) from None

    def find(self, key: str) -> R | None:
        try:
            return self.get(key)
        except NotFound:
            return None

    @dynamo_call
    def add(self, record: R) -> R:
        check_item_size(record.values(), self.item_limit, self.kind)
        item = to_item(self.table, record.but(lock_version=None))
        key_attr = getattr(self.table, self.key_name)
        try:
            item.save(condition=key_attr.does_not_exist())
        except PutError as exc:
            if _condition_failed(exc):
                raise Conflict(f"{self.kind} '{record.key}' already exists", field=self.key_name) from exc
            raise
        return self._record(item)

    @dynamo_call
    def replace(self, record: R) -> R:
        """Write `record` back if nobody changed it since it was read (its lock_version)."""
        if record.lock_version is None:  # never read from the store: nothing to be unchanged since
            raise StaleRecord(record.key)
        check_item_size(record.values(), self.item_limit, self.kind)
        item = to_item(self.table, record)
        try:
            item.save()
        except PutError as exc:
            if _condition_failed(exc):
                raise StaleRecord(record.key) from exc
            raise
        return self._record(item)

    @dynamo_call
    def delete(self, record: R) -> None:
        item = to_item(self.table, record)
        try:
            item.delete()
        except DeleteError as exc:
            if _condition_failed(exc):
                raise StaleRecord(record.key) from exc
            raise

    @dynamo_call
    def list_by_project(self, project_id: str, limit: int, next_token: str | None) -> tuple[list[R], str | None]:
        shape = {self.key_name: "S", "project_id": "S", "created_at": "S"}
        start = decode_token(next_token, ("project_id", project_id), shape) if next_token else None
        results = self.table.project_index.query(
            project_id, scan_index_forward=False, limit=limit, last_evaluated_key=start
        )
        items = [self._record(item) for item in results]
        return items, encode_token(results.last_evaluated_key)


class ModelRepository(Repository[tables.MlModelTable, MlModel]):
    table = tables.MlModelTable
    record_type = MlModel
    kind = "model"

    @dynamo_call
    def count_by_ontology(self, ontology_id: str) -> int:
        return self.table.ontology_index.count(ontology_id)

    @dynamo_call
    def list_due(self, now: str, limit: int) -> list[str]:
        """Ids of monitored models whose next evaluation is due at `now`, earliest first (a keys-only Query)."""
        results = self.table.due_index.query(MONITOR_SHARD, self.table.next_evaluation_at <= now, limit=limit)
        return [item.id for item in results]


class OntologyRepository(Repository[tables.OntologyTable, Ontology]):
    table = tables.OntologyTable
    record_type = Ontology
    kind = "ontology"


class StorageConfigRepository(Repository[tables.StorageConfigTable, StorageConfig]):
    table = tables.StorageConfigTable
    record_type = StorageConfig
    kind = "storage config"


class TrainingRunRepository(Repository[tables.TrainingRunTable, TrainingRun]):
    table = tables.TrainingRunTable
    record_type = TrainingRun
    key_name = "run_id"
    kind = "training run"

    @dynamo_call
    def list_by_model(self, model_id: str, limit: int,
                      next_token: str | None) -> tuple[list[TrainingRun], str | None]:
        shape = {self.key_name: "S", "model_id": "S", "version": "N"}
        start = decode_token(next_token, ("model_id", model_id), shape) if next_token else None
        results = self.table.model_index.query(
            model_id, scan_index_forward=False, limit=limit, last_evaluated_key=start
        )
        return [self._record(item) for item in results], encode_token(results.last_evaluated_key)

    @dynamo_call
    def find_version(self, model_id: str, version: int) -> TrainingRun | None:
        for item in self.table.model_index.query(model_id, self.table.version == version, limit=1):
            return self._record(item)
        return None

    @dynamo_call
    def delete_by_model(self, model_id: str) -> int:
        """Batch deletes (25 a request, PynamoDB's batch) of the runs a Query on the model index finds."""
        deleted = 0
        with self.table.batch_write() as batch:
            for item in self.table.model_index.query(model_id, attributes_to_get=[self.key_name]):
                batch.delete(self.table(item.run_id))
                deleted += 1
        return deleted

    @dynamo_call
    def count_active_in_project(self, project_id: str) -> int:
        """One keys-only Query per active status on the project/status index (never a Scan)."""
        index = self.table.project_status_index
        return sum(index.count(project_id, self.table.status == status) for status in ACTIVE_RUN_STATUSES)

    @dynamo_call
    def list_by_status(self, status: str, limit: int,
                       next_token: str | None) -> tuple[list[TrainingRun], str | None]:
        """Runs in `status`, least recently updated first: a Query on the status index (never a Scan)."""
        shape = {self.key_name: "S", "status": "S", "updated_at": "S"}
        start = decode_token(next_token, ("status", status), shape) if next_token else None
        results = self.table.status_index.query(status, limit=limit, last_evaluated_key=start)
        return [self._record(item) for item in results], encode_token(results.last_evaluated_key)


class ModelJobRepository(Repository[tables.ModelJobTable, ModelJob]):
    table = tables.ModelJobTable
    record_type = ModelJob
    kind = "job"

    @dynamo_call
    def list_by_model(self, model_id: str, kind: str, limit: int,
                      next_token: str | None) -> tuple[list[ModelJob], str | None]:
        """One model's jobs of `kind`, newest first."""
        shape = {self.key_name: "S", "model_kind": "S", "created_at": "S"}
        model_kind = f"{model_id}#{kind}"
        start = decode_token(next_token, ("model_kind", model_kind), shape) if next_token else None
        results = self.table.model_kind_index.query(model_kind, scan_index_forward=False, limit=limit,
                                                    last_evaluated_key=start)
        return [self._record(item) for item in results], encode_token(results.last_evaluated_key)

    @dynamo_call
    def list_by_status(self, status: str, limit: int,
                       next_token: str | None) -> tuple[list[ModelJob], str | None]:
        """Jobs in `status`, least recently updated first (never a Scan)."""
        shape = {self.key_name: "S", "status": "S", "updated_at": "S"}
        start = decode_token(next_token, ("status", status), shape) if next_token else None
        results = self.table.status_index.query(status, limit=limit, last_evaluated_key=start)
        return [self._record(item) for item in results], encode_token(results.last_evaluated_key)

    @dynamo_call
    def delete_by_model(self, model_id: str) -> int:
        """Delete every job of the model (each kind's index), in batches."""
        deleted = 0
        with self.table.batch_write() as batch:
            for kind in JOB_KINDS:
                for item in self.table.model_kind_index.query(f"{model_id}#{kind}", attributes_to_get=["id"]):
                    batch.delete(self.table(item.id))
                    deleted += 1
        return deleted


class RecommendationRepository:
    table = tables.RecommendationTable

    def __init__(self) -> None:
        check_schema(self.table, Recommendation)

    @dynamo_call
    def put(self, record: Recommendation) -> None:
        check_item_size(record.values(), MAX_ITEM_BYTES, "recommendation")
        to_item(self.table, record).save()

    @dynamo_call
    def find(self, project_id: str, ontology_id: str) -> Recommendation | None:
        try:
            item = self.table.get(project_id, ontology_id)
        except DoesNotExist:
            return None
        return to_record(Recommendation, item)


class TrainingStartTransaction:
    """`TrainingStarts` on DynamoDB: TransactWriteItems of the model (its version condition) and the run."""

    def __init__(self) -> None:
        self._connection: tuple[tuple, object] | None = None

    @dynamo_call
    def begin(self, model: MlModel, run: TrainingRun) -> MlModel:
        from pynamodb.connection import Connection
        from pynamodb.exceptions import TransactWriteError
        from pynamodb.transactions import TransactWrite

        if model.lock_version is None:
            raise StaleRecord(model.key)
        check_item_size(model.values(), ModelRepository.item_limit, ModelRepository.kind)
        check_item_size(run.values(), TrainingRunRepository.item_limit, TrainingRunRepository.kind)
        model_item = to_item(tables.MlModelTable, model)
        run_item = to_item(tables.TrainingRunTable, run.but(lock_version=None))
        meta = tables.MlModelTable.Meta
        settings = (meta.region, getattr(meta, "host", None), getattr(meta, "connect_timeout_seconds", None),
                    getattr(meta, "read_timeout_seconds", None), getattr(meta, "max_retry_attempts", None))
        if self._connection is None or self._connection[0] != settings:
            # One connection (one botocore client) per table settings: making a client is ~0.1 s.
            region, host, connect, read, retries = settings
            self._connection = (settings, Connection(
                region=region, host=host, connect_timeout_seconds=connect, read_timeout_seconds=read,
                max_retry_attempts=retries))
        try:
            with TransactWrite(connection=self._connection[1]) as transaction:
                transaction.save(model_item)  # conditional on the version read (PynamoDB adds it)
                transaction.save(run_item, condition=tables.TrainingRunTable.run_id.does_not_exist())
        except TransactWriteError as exc:
            reasons = getattr(exc, "cancellation_reasons", None) or []
            codes = [getattr(reason, "code", None) for reason in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                raise StaleRecord(model.key) from exc
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                raise Conflict(f"training run '{run.run_id}' already exists", field="run_id") from exc
            raise
        return to_record(MlModel, model_item)
