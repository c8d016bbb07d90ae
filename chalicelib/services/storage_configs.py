"""Storage configs: where a project's training data lives in S3, and in which format."""
from __future__ import annotations

from typing import Any

from chalicelib.adapters.dynamo import OntologyRepository, StaleRecord, StorageConfigRepository
from chalicelib.adapters.s3 import S3Store, parse_s3_uri
from chalicelib.errors import Conflict, InvalidInput
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now

FORMATS = ("csv", "jsonl", "parquet")
FIELDS = ("project_id", "name", "ontology_id", "uri", "format")


class StorageConfigService:
    def __init__(self, configs: StorageConfigRepository, ontologies: OntologyRepository, s3: S3Store,
                 clock: Clock = utc_now, ids: IdFactory = new_id) -> None:
        self.configs = configs
        self.ontologies = ontologies
        self.s3 = s3
        self.clock = clock
        self.ids = ids

    def _check_ontology(self, ontology_id: str | None, project_id: str) -> None:
        if ontology_id is None:
            return
        ontology = self.ontologies.find(ontology_id)
        if ontology is None or ontology["project_id"] != project_id:
            raise InvalidInput(f"ontology '{ontology_id}' does not exist in project '{project_id}'",
                               field="ontology_id")

    def _check_uri(self, uri: Any) -> str:
        location = parse_s3_uri(uri)
        self.s3.check_readable(location)
        return uri

    def create(self, body: Any) -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, FIELDS)
        project_id = v.string(body, "project_id", required=True, max_len=v.MAX_ID)
        name = v.string(body, "name", required=True)
        ontology_id = v.string(body, "ontology_id", max_len=v.MAX_ID)
        fmt = v.choice(body, "format", FORMATS, required=True)
        v.string(body, "uri", required=True, max_len=1024)
        self._check_ontology(ontology_id, project_id)
        uri = self._check_uri(body["uri"])
        now = self.clock()
        record = {"id": self.ids("storage"), "project_id": project_id, "name": name, "ontology_id": ontology_id,
                  "uri": uri, "format": fmt, "created_at": now, "updated_at": now}
        return self.configs.public(self.configs.add(record))

    def get(self, config_id: str) -> dict[str, Any]:
        return self.configs.public(self.configs.get(config_id))

    def list(self, project_id: str | None, limit: str | None, next_token: str | None) -> dict[str, Any]:
        if not project_id:
            raise InvalidInput("project_id query parameter is required", field="project_id")
        items, token = self.configs.list_by_project(project_id, v.limit(limit), next_token)
        return {"storage_configs": [self.configs.public(i) for i in items], "next_token": token}

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
            changes["uri"] = self._check_uri(body["uri"])
        if "ontology_id" in body:
            changes["ontology_id"] = v.string(body, "ontology_id", max_len=v.MAX_ID)

        def apply(current: dict[str, Any]) -> dict[str, Any]:
            if "ontology_id" in changes:
                self._check_ontology(changes["ontology_id"], current["project_id"])
            return {**current, **changes, "updated_at": self.clock()}

        return self.configs.public(self.configs.modify(config_id, apply))

    def delete(self, config_id: str) -> None:
        current = self.configs.get(config_id)
        try:
            self.configs.delete(current)
        except StaleRecord:
            raise Conflict(f"storage config '{config_id}' changed while deleting; retry", field="id") from None

    def resolve(self, project_id: str, storage_ids: list[str]) -> list[dict[str, Any]]:
        """The storage configs a training run reads, all of `project_id` (404-free: 400 names the id)."""
        resolved = []
        for storage_id in storage_ids:
            config = self.configs.find(storage_id)
            if config is None or config["project_id"] != project_id:
                raise InvalidInput(f"storage config '{storage_id}' does not exist in project '{project_id}'",
                                   field="storage_ids")
            resolved.append(self.configs.public(config))
        return resolved
