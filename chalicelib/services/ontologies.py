"""Ontologies: OWL in Turtle, stored with a parsed summary served beside the content.

What an ontology may cost is bounded before and during its one parse, and the parse happens
once, when the content is written: the summary is stored on the record, so a GET (and a
recommendation) reads it instead of parsing again. The limits (413 naming `content`, except
the byte size, a 400 like any over-long string):
- `MAX_CONTENT_BYTES` of Turtle;
- `MAX_PREFIXES` prefix directives (`@prefix` / `PREFIX`), counted before parsing: rdflib's cost
  grows with the square of their number (9,400 of them took 12 s);
- `chalicelib.ontology.MAX_TRIPLES` triples: the parse stops at the first one over;
- `MAX_RECORD_BYTES` for the content and its stored summary together (DynamoDB's items are at
  most 400 KB, and the rest of the record needs room too).
"""
from __future__ import annotations

import json
import re
from typing import Any

from chalicelib.errors import Conflict, InvalidInput, PayloadTooLarge, StaleRecord
from chalicelib.ontology import MAX_TRIPLES, OntologySummary, summarize
from chalicelib.records import Ontology
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now
from chalicelib.services.ports import ModelRepository, OntologyRepository
from chalicelib.services.validation import MAX_ITEM_BYTES

__all__ = ["MAX_CONTENT_BYTES", "MAX_PREFIXES", "MAX_RECORD_BYTES", "MAX_TRIPLES", "OntologyService",
           "summary_of"]

# DynamoDB items are at most 400 KB; keep the Turtle well inside that.
MAX_CONTENT_BYTES = 300_000
MAX_PREFIXES = 100
MAX_RECORD_BYTES = MAX_ITEM_BYTES  # the repositories' per-record limit (validation.py)
FIELDS = ("project_id", "name", "description", "content")
# A prefix directive, Turtle (`@prefix ex: <`) or SPARQL style (`PREFIX ex: <`, any case).
_PREFIX = re.compile(r"(?:@prefix|\bprefix)\s+[^\s:<>]*:\s*<", re.IGNORECASE)


def _content(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The content, checked against the limits and parsed once, and its summary as stored."""
    content = v.string(body, "content", required=True, max_len=MAX_CONTENT_BYTES)
    size = len(content.encode("utf-8", errors="surrogatepass"))
    if size > MAX_CONTENT_BYTES:
        raise InvalidInput(f"content must be at most {MAX_CONTENT_BYTES} bytes", field="content")
    prefixes = len(_PREFIX.findall(content))
    if prefixes > MAX_PREFIXES:
        raise PayloadTooLarge(f"content declares {prefixes} prefixes; the limit is {MAX_PREFIXES}",
                              field="content", limit=MAX_PREFIXES)
    # Raises InvalidInput naming the line when the Turtle is broken, PayloadTooLarge past MAX_TRIPLES.
    summary = summarize(content).to_stored()
    total = size + len(json.dumps(summary))
    if total > MAX_RECORD_BYTES:
        raise PayloadTooLarge(f"content and its parsed summary take {total} bytes; the limit is {MAX_RECORD_BYTES}",
                              field="content", limit=MAX_RECORD_BYTES)
    return content, summary


def summary_of(record: Ontology) -> OntologySummary:
    """The ontology's parsed summary: the stored one; parsed from the content only for a record
    written before summaries were stored."""
    if record.summary:
        return OntologySummary.from_stored(record.summary)
    return summarize(record.content)


class OntologyService:
    def __init__(self, ontologies: OntologyRepository, models: ModelRepository,
                 clock: Clock = utc_now, ids: IdFactory = new_id) -> None:
        self.ontologies = ontologies
        self.models = models
        self.clock = clock
        self.ids = ids

    def view(self, record: Ontology, with_summary: bool = True) -> dict[str, Any]:
        data = record.public()
        data.pop("summary")  # the stored form; the response's is `OntologySummary.to_dict()`
        if with_summary:
            data["summary"] = summary_of(record).to_dict()
        return data

    def create(self, body: Any) -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, FIELDS)
        project_id = v.project_id(body)
        name = v.string(body, "name", required=True)
        description = v.string(body, "description", max_len=v.MAX_DESCRIPTION, allow_empty=True) or ""
        content, summary = _content(body)
        now = self.clock()
        record = Ontology(id=self.ids("onto"), project_id=project_id, name=name, description=description,
                          content=content, summary=summary, created_at=now, updated_at=now)
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
            changes["content"], changes["summary"] = _content(body)
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
