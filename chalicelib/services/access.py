"""Who may do what: the one place that decides, for every user route and WebSocket subscription.

Each user route declares a `Rule`: the action (read or write) and where the project it
touches comes from: a `project_id` in the query or body, or a record named in the path
or body whose project is looked up here. Then:

- a project the caller may not read: 403 for a project named outright (lists, creates);
- a record of a project the caller may not read: 404, word for word what an unknown id
  answers, so that nobody learns another project's record exists;
- a write by a caller who may only read that project (a viewer): 403.

Principals come from verified tokens (`chalicelib/auth`); nothing here looks at a token.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.auth.principal import Principal
from chalicelib.errors import Forbidden, InvalidInput, NotFound

READ, WRITE = "read", "write"


@dataclass(frozen=True)
class Target:
    """Where a route finds what it touches: `source` is query, body or path; `kind` is
    "project" (the value is a project id) or a record kind the guard can resolve."""

    source: str
    name: str
    kind: str = "project"


@dataclass(frozen=True)
class Rule:
    action: str
    target: Target

    def describe(self) -> str:
        return f"{self.action} {self.target.kind} from {self.target.source} '{self.target.name}'"


def reads(target: Target) -> Rule:
    return Rule(READ, target)


def writes(target: Target) -> Rule:
    return Rule(WRITE, target)


def project_in_query(name: str = "project_id") -> Target:
    return Target("query", name)


def project_in_body(name: str = "project_id") -> Target:
    return Target("body", name)


def record_in_path(kind: str, name: str) -> Target:
    return Target("path", name, kind)


def record_in_body(kind: str, name: str) -> Target:
    return Target("body", name, kind)


@dataclass(frozen=True)
class RequestView:
    """What the guard may look at in a request (already parsed by the HTTP edge)."""

    path: Mapping[str, str]
    query: Mapping[str, str]
    body: Callable[[], Any]


class AccessGuard:
    def __init__(self, repositories: Mapping[str, Any]) -> None:
        # record kind → repository whose records carry project_id ("model", "ontology", ...)
        self.repositories = dict(repositories)

    def authorize(self, principal: Principal, rule: Rule, request: RequestView) -> None:
        target = rule.target
        value = self._value(target, request)
        if target.kind == "project":
            self.require_project(principal, rule.action, value)
            return
        self.require_record(principal, rule.action, target.kind, value)

    def require_project(self, principal: Principal, action: str, project_id: str) -> None:
        if action == READ and not principal.can_read(project_id):
            raise Forbidden(f"you may not read project '{project_id}'", field="project_id")
        if action == WRITE and not principal.can_write(project_id):
            raise Forbidden(f"you may not change project '{project_id}' (editor role needed)", field="project_id")

    def require_record(self, principal: Principal, action: str, kind: str, key: str) -> str:
        """The record's project, once the caller may `action` it; 404 exactly like an unknown id."""
        repository = self.repositories[kind]
        record = repository.get(key)  # NotFound for an unknown id
        if not principal.can_read(record.project_id):
            raise NotFound(f"{repository.kind} '{key}' does not exist", field=getattr(repository, "key_name", "id"))
        if action == WRITE and not principal.can_write(record.project_id):
            raise Forbidden(f"you may not change {repository.kind} '{key}' (editor role needed in project "
                            f"'{record.project_id}')", field="project_id")
        return record.project_id

    def readable_record_project(self, principal: Principal, kind: str, key: str) -> str | None:
        """The project of a record the caller may read, else None (unknown and foreign look alike)."""
        try:
            return self.require_record(principal, READ, kind, key)
        except NotFound:
            return None

    @staticmethod
    def _value(target: Target, request: RequestView) -> str:
        if target.source == "path":
            value = request.path.get(target.name)
        elif target.source == "query":
            value = request.query.get(target.name)
            if not value:
                raise InvalidInput(f"{target.name} query parameter is required", field=target.name)
        else:
            body = request.body()
            if not isinstance(body, dict):
                raise InvalidInput("request body must be a JSON object")
            value = body.get(target.name)
            if value is None:
                raise InvalidInput(f"{target.name} is required", field=target.name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"{target.name} must be a non-empty string", field=target.name)
        return value
