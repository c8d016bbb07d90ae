"""The authenticated caller (`Principal`) and the rules that turn verified token claims into one.

Pure data and rules, no JOSE library: this module is imported on every cold start and by
the WebSocket handlers that read a stored principal back from DynamoDB.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from chalicelib.errors import Unauthorized

VIEWER, EDITOR = "viewer", "editor"
ADMIN = "admin"
# Higher rank wins when two claims name the same project.
_ROLE_RANK = {VIEWER: 1, EDITOR: 2}
PROJECT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# A giant claim must not cost unbounded work: entries past this many (per claim) are not read.
MAX_CLAIM_ENTRIES = 1000
# A projects claim delivered as a JSON string is parsed only up to this size.
MAX_PROJECTS_CLAIM_CHARS = 65536


@dataclass(frozen=True)
class Principal:
    subject: str
    # project_id -> "viewer" | "editor"; read-only (a MappingProxyType over a private copy).
    roles: Mapping[str, str] = field(hash=False)
    admin: bool = False
    expires_at: int | None = None  # the token's exp (epoch seconds)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))

    def can_read(self, project_id: str) -> bool:
        return self.admin or project_id in self.roles

    def can_write(self, project_id: str) -> bool:
        return self.admin or self.roles.get(project_id) == EDITOR

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "roles": dict(self.roles), "admin": self.admin,
                "expires_at": self.expires_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Principal:
        """The inverse of `to_dict`; strict, since a stored principal we cannot read must not grant anything."""
        unknown = set(data) - {"subject", "roles", "admin", "expires_at"}
        if unknown:
            raise ValueError(f"unknown principal fields: {sorted(unknown)}")
        subject, roles = data.get("subject"), data.get("roles", {})
        admin, expires_at = data.get("admin", False), data.get("expires_at")
        if not isinstance(subject, str) or not subject:
            raise ValueError("principal subject must be a non-empty string")
        if not isinstance(roles, Mapping) or not all(
            isinstance(p, str) and PROJECT_ID_PATTERN.fullmatch(p) and r in _ROLE_RANK for p, r in roles.items()
        ):
            raise ValueError("principal roles must map project ids to 'viewer' or 'editor'")
        if not isinstance(admin, bool):
            raise ValueError("principal admin must be a boolean")
        if expires_at is not None and (isinstance(expires_at, bool) or not isinstance(expires_at, int)):
            raise ValueError("principal expires_at must be an integer or null")
        return cls(subject, roles, admin=admin, expires_at=expires_at)


# Used only when AUTH is off on the local stage.
LOCAL_UNAUTHENTICATED = Principal("auth-off", {}, admin=True)


@dataclass(frozen=True)
class ClaimRules:
    """Where a token carries project roles. Defaults documented in the README / DEPLOY guide."""

    projects_claim: str = "projects"  # {"proj-123": "editor", "proj-9": "viewer"}, or that object as a JSON string
    groups_claim: str = "cognito:groups"  # ["project:proj-123:editor", "admin"]
    admin_group: str = "admin"
    group_prefix: str = "project:"


def principal_from_claims(claims: Mapping[str, Any], rules: ClaimRules) -> Principal:
    """The permissions granted by already-verified claims. Anything malformed grants nothing."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthorized("token has no subject (sub)", field="Authorization")
    roles: dict[str, str] = {}
    admin = False
    for project_id, role in _projects_claim_entries(claims.get(rules.projects_claim)):
        if project_id == "*" and role == ADMIN:
            admin = True
        else:
            _grant(roles, project_id, role)
    for group in _bounded(_groups(claims.get(rules.groups_claim))):
        if not isinstance(group, str):
            continue
        if group == rules.admin_group:
            admin = True
        elif rules.group_prefix and group.startswith(rules.group_prefix):
            project_id, _, role = group[len(rules.group_prefix):].rpartition(":")
            _grant(roles, project_id, role)
    exp = claims.get("exp")
    expires_at = int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
    return Principal(subject, roles, admin=admin, expires_at=expires_at)


def _grant(roles: dict[str, str], project_id: Any, role: Any) -> None:
    if not isinstance(project_id, str) or not PROJECT_ID_PATTERN.fullmatch(project_id):
        return
    if not isinstance(role, str) or role not in _ROLE_RANK:
        return
    if _ROLE_RANK[role] > _ROLE_RANK.get(roles.get(project_id, ""), 0):
        roles[project_id] = role


def _projects_claim_entries(value: Any) -> Iterator[tuple[Any, Any]]:
    # Cognito custom attributes (and some other IdPs) deliver objects as JSON strings.
    if isinstance(value, str):
        if len(value) > MAX_PROJECTS_CLAIM_CHARS:
            return
        try:
            value = json.loads(value)
        except ValueError:
            return
    if isinstance(value, Mapping):
        yield from _bounded(value.items())


def _groups(value: Any) -> Iterable[Any]:
    if isinstance(value, str):  # a single group delivered as a bare string
        return (value,)
    if isinstance(value, list | tuple):
        return value
    return ()


def _bounded(items: Iterable[Any]) -> Iterator[Any]:
    for count, item in enumerate(items):
        if count >= MAX_CLAIM_ENTRIES:
            return
        yield item
