"""Ontologies: OWL in Turtle, stored with a parsed summary served beside the content."""
from __future__ import annotations

from typing import Any

from chalicelib.errors import Conflict, InvalidInput, StaleRecord
from chalicelib.ontology import summarize
from chalicelib.records import Ontology
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now
from chalicelib.services.ports import ModelRepository, OntologyRepository

# DynamoDB items are at most 400 KB; keep the Turtle well inside that.
MAX_CONTENT_BYTES = 300_000
FIELDS = ("project_id", "name", "description", "content")


def _content(body: dict[str, Any]) -> str:
    content = v.string(body, "content", required=True, max_len=MAX_CONTENT_BYTES)
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise InvalidInput(f"content must be at most {MAX_CONTENT_BYTES} bytes", field="content")
    summarize(content)  # raises InvalidInput naming the line when the Turtle is broken
    return content


class OntologyService:
    def __init__(self, ontologies: OntologyRepository, models: ModelRepository,
                 clock: Clock = utc_now, ids: IdFactory = new_id) -> None:
        self.ontologies = ontologies
        self.models = models
        self.clock = clock
        self.ids = ids

    def view(self, record: Ontology, with_summary: bool = True) -> dict[str, Any]:
        data = record.public()
        if with_summary:
            data["summary"] = summarize(record.content).to_dict()
        return data

    def create(self, body: Any) -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, FIELDS)
        project_id = v.project_id(body)
        name = v.string(body, "name", required=True)
        description = v.string(body, "description", max_len=v.MAX_DESCRIPTION, allow_empty=True) or ""
        content = _content(body)
        now = self.clock()
        record = Ontology(id=self.ids("onto"), project_id=project_id, name=name, description=description,
                          content=content, created_at=now, updated_at=now)
        return self.view(self.ontologies.add(record))

    def get(self, ontology_id: str) -> dict[str, Any]:
        return self.view(self.ontologies.get(ontology_id))

    def list(self, project_id: str | None, limit: str | None, next_token: str | None) -> dict[str, Any]:
        if not project_id:
            raise InvalidInput("project_id query parameter is required", field="project_id")
        items, token = self.ontologies.list_by_project(project_id, v.limit(limit), next_token)
        return {"ontologies": [self.view(i, with_summary=False) for i in items], "next_token": token}

    def update(self, ontology_id: str, body: Any) -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, ("name", "description", "content"))
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = v.string(body, "name", required=True)
        if "description" in body:
            changes["description"] = v.string(body, "description", max_len=v.MAX_DESCRIPTION, allow_empty=True) or ""
        if "content" in body:
            changes["content"] = _content(body)
        return self.view(self.ontologies.modify(
            ontology_id, lambda current: current.but(**changes, updated_at=self.clock())))

    def delete(self, ontology_id: str) -> None:
        current = self.ontologies.get(ontology_id)
        users = self.models.count_by_ontology(ontology_id)
        if users:
            raise Conflict(f"ontology '{ontology_id}' is used by {users} model(s); delete or re-point them first",
                           field="id", models=users)
        try:
            self.ontologies.delete(current)
        except StaleRecord:
            raise Conflict(f"ontology '{ontology_id}' changed while deleting; retry", field="id") from None
