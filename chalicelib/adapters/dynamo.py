"""DynamoDB repositories: domain-shaped records (plain dicts) in, out; PynamoDB inside.

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

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, PynamoDBException
from pynamodb.models import Model

from chalicelib.adapters import tables
from chalicelib.errors import Conflict, InvalidInput, NotFound, UpstreamUnavailable

T = TypeVar("T", bound=Model)
R = TypeVar("R")

# Attributes that never leave the repository (internal bookkeeping).
LOCK = "lock_version"


# How often a read-change-write is retried on fresh state before answering 409.
RETRIES_ON_STALE = 5


class StaleRecord(Exception):
    """The record changed since it was read; the caller may re-read and retry."""


def _condition_failed(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


# DynamoDB answers that mean "try again shortly", not "your request is wrong".
TRANSIENT_CODES = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
                   "InternalServerError", "ServiceUnavailable"}


def dynamo_call(method: Callable[..., R]) -> Callable[..., R]:
    """Translate DynamoDB being unreachable or throttling into UpstreamUnavailable (503).

    Anything else (a missing table, a malformed request) stays an error of ours.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        try:
            return method(*args, **kwargs)
        except PynamoDBException as exc:
            cause = getattr(exc, "cause", None)
            if exc.cause_response_code in TRANSIENT_CODES or isinstance(cause, _connection_errors()):
                raise UpstreamUnavailable("the database is temporarily unavailable; retry shortly") from exc
            raise

    return wrapper


def _connection_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ReadTimeoutError

    return (BotoConnectionError, ReadTimeoutError)


def encode_token(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_token(token: str, expected_hash: tuple[str, str]) -> dict[str, Any]:
    """Turn a `next_token` back into an exclusive start key, refusing forged or foreign tokens."""
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("next_token is not a token this API issued", field="next_token") from None
    name, value = expected_hash
    if not isinstance(key, dict) or key.get(name, {}).get("S") != value:
        raise InvalidInput(f"next_token does not belong to this {name}", field="next_token")
    return key


class Repository(Generic[T]):
    """Generic conditional CRUD for one PynamoDB table whose hash key is `key_name`."""

    table: type[T]
    key_name = "id"
    kind = "record"
    hidden: tuple[str, ...] = (LOCK,)

    def _to_record(self, item: T) -> dict[str, Any]:
        data = {name: getattr(item, name) for name in item.get_attributes()}
        return data

    def _from_record(self, record: dict[str, Any]) -> T:
        item = self.table()
        for name in self.table.get_attributes():
            if name in record:
                setattr(item, name, record[name])
        return item

    def public(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in self.hidden}

    @dynamo_call
    def get(self, key: str) -> dict[str, Any]:
        try:
            return self._to_record(self.table.get(key, consistent_read=True))
        except DoesNotExist:
            raise NotFound(f"{self.kind} '{key}' does not exist", field=self.key_name) from None

    def find(self, key: str) -> dict[str, Any] | None:
        try:
            return self.get(key)
        except NotFound:
            return None

    @dynamo_call
    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        item = self._from_record(record)
        key_attr = getattr(self.table, self.key_name)
        try:
            item.save(condition=key_attr.does_not_exist())
        except PutError as exc:
            if _condition_failed(exc):
                raise Conflict(f"{self.kind} '{record[self.key_name]}' already exists", field=self.key_name) from exc
            raise
        return self._to_record(item)

    @dynamo_call
    def replace(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write `record` back if nobody changed it since it was read (its lock_version)."""
        item = self._from_record(record)
        try:
            item.save()
        except PutError as exc:
            if _condition_failed(exc):
                raise StaleRecord(record[self.key_name]) from exc
            raise
        return self._to_record(item)

    def modify(self, key: str, change: Callable[[dict[str, Any]], dict[str, Any]],
               field: str | None = None) -> dict[str, Any]:
        """Read, apply `change`, write back under the optimistic lock; on a concurrent write,
        re-read and re-apply. `change` may raise to refuse the fresh state."""
        for _ in range(RETRIES_ON_STALE):
            try:
                return self.replace(change(self.get(key)))
            except StaleRecord:
                continue
        raise Conflict(f"{self.kind} '{key}' is being changed concurrently; retry", field=field or self.key_name)

    @dynamo_call
    def delete(self, record: dict[str, Any], condition: Any = None) -> None:
        item = self._from_record(record)
        try:
            item.delete(condition=condition)
        except DeleteError as exc:
            if _condition_failed(exc):
                raise StaleRecord(record[self.key_name]) from exc
            raise

    @dynamo_call
    def list_by_project(self, project_id: str, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
        start = decode_token(next_token, ("project_id", project_id)) if next_token else None
        results = self.table.project_index.query(
            project_id, scan_index_forward=False, limit=limit, last_evaluated_key=start
        )
        items = [self._to_record(item) for item in results]
        return items, encode_token(results.last_evaluated_key)


class ModelRepository(Repository[tables.MlModelTable]):
    table = tables.MlModelTable
    kind = "model"
    hidden = (LOCK, "runs_started")

    @dynamo_call
    def count_by_ontology(self, ontology_id: str) -> int:
        return self.table.ontology_index.count(ontology_id)


class OntologyRepository(Repository[tables.OntologyTable]):
    table = tables.OntologyTable
    kind = "ontology"


class StorageConfigRepository(Repository[tables.StorageConfigTable]):
    table = tables.StorageConfigTable
    kind = "storage config"


class TrainingRunRepository(Repository[tables.TrainingRunTable]):
    table = tables.TrainingRunTable
    key_name = "run_id"
    kind = "training run"
    hidden = (LOCK, "callback_token_hash")

    @dynamo_call
    def list_by_model(self, model_id: str, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
        start = decode_token(next_token, ("model_id", model_id)) if next_token else None
        results = self.table.model_index.query(
            model_id, scan_index_forward=False, limit=limit, last_evaluated_key=start
        )
        return [self._to_record(item) for item in results], encode_token(results.last_evaluated_key)


class RecommendationRepository:
    table = tables.RecommendationTable

    @dynamo_call
    def put(self, record: dict[str, Any]) -> None:
        self.table(**record).save()

    @dynamo_call
    def find(self, project_id: str, ontology_id: str) -> dict[str, Any] | None:
        try:
            item = self.table.get(project_id, ontology_id)
        except DoesNotExist:
            return None
        return {name: getattr(item, name) for name in item.get_attributes()}
