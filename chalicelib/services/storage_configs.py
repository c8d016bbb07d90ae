"""Storage configs: where a project's training data lives in S3, and in which format."""
from __future__ import annotations

from typing import Any

from chalicelib.adapters.s3 import S3Store
from chalicelib.errors import Conflict, InvalidInput, StaleRecord
from chalicelib.records import StorageConfig
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now
from chalicelib.services.data_scope import DataScope
from chalicelib.services.ports import OntologyRepository, StorageConfigRepository

FORMATS = ("csv", "jsonl", "parquet")
FIELDS = ("project_id", "name", "ontology_id", "uri", "format")


class StorageConfigService:
    def __init__(self, configs: StorageConfigRepository, ontologies: OntologyRepository, s3: S3Store,
                 scope: DataScope, clock: Clock = utc_now, ids: IdFactory = new_id) -> None:
        self.configs = configs
        self.ontologies = ontologies
        self.s3 = s3
        self.scope = scope
        self.clock = clock
        self.ids = ids

    def _check_ontology(self, ontology_id: str | None, project_id: str) -> None:
        if ontology_id is None:
            return
        ontology = self.ontologies.find(ontology_id)
        if ontology is None or ontology.project_id != project_id:
            raise InvalidInput(f"ontology '{ontology_id}' does not exist in project '{project_id}'",
                               field="ontology_id")

    def _check_uri(self, project_id: str, uri: Any) -> str:
        """The URI must lie in the project's own data location (the server decides, not the caller)."""
        location = self.scope.check(project_id, uri)
        self.s3.check_readable(location)
        return uri

    def create(self, body: Any) -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, FIELDS)
        project_id = v.project_id(body)
        name = v.string(body, "name", required=True)
        ontology_id = v.string(body, "ontology_id", max_len=v.MAX_ID)
        fmt = v.choice(body, "format", FORMATS, required=True)
        v.string(body, "uri", required=True, max_len=1024)
        self._check_ontology(ontology_id, project_id)
        uri = self._check_uri(project_id, body["uri"])
        now = self.clock()
        record = StorageConfig(id=self.ids("storage"), project_id=project_id, name=name, ontology_id=ontology_id,
                               uri=uri, format=fmt, created_at=now, updated_at=now)
        return self.configs.add(record).public()

    def get(self, config_id: str) -> dict[str, Any]:
        return self.configs.get(config_id).public()

    def list(self, project_id: str | None, limit: str | None, next_token: str | None) -> dict[str, Any]:
        if not project_id:
            raise InvalidInput("project_id query parameter is required", field="project_id")
        items, token = self.configs.list_by_project(project_id, v.limit(limit), next_token)
        return {"storage_configs": [i.public() for i in items], "next_token": token}

    def update(self, config_id: str, body: Any) -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, ("name", "ontology_id", "uri", "format"))
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = v.string(body, "name", required=True)
        if "format" in body:
            changes["format"] = v.choice(body, "format", FORMATS, required=True)
        if "uri" in body:
            v.string(body, "uri", required=True, max_len=1024)
            changes["uri"] = self._check_uri(self.configs.get(config_id).project_id, body["uri"])
        if "ontology_id" in body:
            changes["ontology_id"] = v.string(body, "ontology_id", max_len=v.MAX_ID)

        def apply(current: StorageConfig) -> StorageConfig:
            if "ontology_id" in changes:
                self._check_ontology(changes["ontology_id"], current.project_id)
            return current.but(**changes, updated_at=self.clock())

        return self.configs.modify(config_id, apply).public()

    def delete(self, config_id: str) -> None:
        current = self.configs.get(config_id)
        try:
            self.configs.delete(current)
        except StaleRecord:
            raise Conflict(f"storage config '{config_id}' changed while deleting; retry", field="id") from None

    def resolve(self, project_id: str, storage_ids: list[str]) -> list[StorageConfig]:
        """The storage configs a run reads: each of `project_id`, and still inside the project's
        data location (a grant withdrawn since the config was made is noticed here)."""
        resolved = []
        for storage_id in storage_ids:
            config = self.configs.find(storage_id)
            if config is None or config.project_id != project_id:
                raise InvalidInput(f"storage config '{storage_id}' does not exist in project '{project_id}'",
                                   field="storage_ids")
            self.scope.check(project_id, config.uri, field="storage_ids")
            resolved.append(config)
        return resolved
