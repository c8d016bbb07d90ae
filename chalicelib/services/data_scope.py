"""Where a project's training data may live, and what one training run may touch in S3.

Hides two rules of tenant isolation:

- `DataScope.check`: a storage config's URI must lie under the project's own location
  (`s3://<data bucket>/<project_id>/` for each of the stage's data buckets) or under a location
  the stage grants the project (`PROJECT_DATA_GRANTS`). The artifact bucket (training specs,
  model artifacts) is never a data location.
- `DataScope.session_policy`: the STS session policy of one run: read the project's
  locations and its own spec, write its own `models/<model_id>/v<version>/`. The run role's
  identity policy (infra/cloudformation/trainer-run-role.yaml) is the outer bound; this
  narrows it per run.

Pure: no boto3. A misconfigured stage fails in `from_config`, at start, naming the bad entry.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from chalicelib.adapters.s3 import S3Location, parse_s3_uri
from chalicelib.errors import InvalidInput

PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Model and run ids, and the artifact/runs prefixes, go into ARNs: nothing IAM would read as a
# wildcard (`*`, `?`) or a policy variable (`${...}`).
_ARN_SAFE_ID = PROJECT_ID
_ARN_SAFE_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# Characters a granted prefix may not hold: IAM wildcards and policy variables, besides the
# path rules every prefix follows.
_POLICY_SPECIAL = re.compile(r"[*?${}]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# STS refuses a session policy over 2048 characters of plaintext (and, packed with the
# session's tags, over its PackedPolicySize). `policy_json` is what is sent.
MAX_SESSION_POLICY_CHARS = 2048
# Worst case `from_config` checks every project's policy against: ids are server-made
# (`model-<32 hex>`, `run-<32 hex>`), so 64 characters leaves room.
ASSUMED_ID_CHARS = 64
ASSUMED_VERSION = 10**9
IAM_VERSION = "2012-10-17"


class SessionPolicyTooLarge(ValueError):
    """The project's locations do not fit one STS session policy: fewer grants, or shorter prefixes."""


def policy_json(policy: Mapping[str, Any]) -> str:
    """The policy as STS receives it: compact JSON, the form its size limit counts."""
    return json.dumps(policy, separators=(",", ":"))


def _path_problem(prefix: str) -> str | None:
    """Why `prefix` (an S3 key prefix) is not a plain path, or None."""
    if _CONTROL.search(prefix):
        return "control characters"
    if "\\" in prefix:
        return "a backslash"
    if "//" in prefix:
        return "an empty path segment ('//')"
    segments = prefix.split("/")
    if any(s in (".", "..") for s in segments):
        return "a '.' or '..' path segment"
    if prefix.startswith("/"):
        return "a leading '/'"
    return None


def _require_project_id(project_id: Any) -> str:
    if not isinstance(project_id, str) or not PROJECT_ID.fullmatch(project_id):
        raise InvalidInput("project_id must be 1-100 letters, digits, '.', '_' or '-', starting with a letter "
                           "or digit", field="project_id")
    return project_id


def _object_arn(partition: str, bucket: str, prefix: str) -> str:
    return f"arn:{partition}:s3:::{bucket}/{prefix}*"


@dataclass(frozen=True)
class DataScope:
    data_buckets: tuple[str, ...]
    # {project id: (granted location URIs, each s3://bucket/prefix/ or s3://bucket/)}
    grants: Mapping[str, tuple[str, ...]] = field(hash=False)
    artifact_bucket: str

    @classmethod
    def from_config(cls, data_buckets: str, grants_json: str, artifact_bucket: str) -> DataScope:
        """From stage config: DATA_BUCKETS (comma-separated bucket names), PROJECT_DATA_GRANTS
        (JSON `{"proj-123": ["s3://team-bucket/some/prefix/"]}`, empty means none), ARTIFACT_BUCKET.

        Raises ValueError naming the bad entry.
        """
        if not _BUCKET.fullmatch(artifact_bucket or ""):
            raise ValueError(f"ARTIFACT_BUCKET: not a bucket name: {artifact_bucket!r}")
        buckets = tuple(dict.fromkeys(b.strip() for b in (data_buckets or "").split(",") if b.strip()))
        for bucket in buckets:
            if not _BUCKET.fullmatch(bucket):
                raise ValueError(f"DATA_BUCKETS: not a bucket name: {bucket!r}")
            if bucket == artifact_bucket:
                raise ValueError(f"DATA_BUCKETS: {bucket!r} is the artifact bucket, which never holds training data")
        grants = _parse_grants(grants_json, artifact_bucket)
        scope = cls(buckets, MappingProxyType(grants), artifact_bucket)
        scope._check_policy_sizes()
        return scope

    def _check_policy_sizes(self) -> None:
        worst = {"model_id": "m" * ASSUMED_ID_CHARS, "version": ASSUMED_VERSION, "run_id": "r" * ASSUMED_ID_CHARS}
        for project_id in ["p" * 100, *self.grants]:
            try:
                self.session_policy(project_id=project_id, **worst)
            except SessionPolicyTooLarge as exc:
                where = f"PROJECT_DATA_GRANTS[{project_id!r}]" if project_id in self.grants else "DATA_BUCKETS"
                raise ValueError(f"{where}: {exc}") from None

    # ---- storage locations ----------------------------------------------------------------------

    def locations(self, project_id: str) -> list[S3Location]:
        """Where `project_id`'s data may live: its prefix in each data bucket, then its grants."""
        _require_project_id(project_id)
        own = [S3Location(bucket, f"{project_id}/") for bucket in self.data_buckets]
        granted = [parse_s3_uri(uri) for uri in self.grants.get(project_id, ())]
        return own + [S3Location(g.bucket, g.prefix) for g in granted]

    def check(self, project_id: str, uri: Any, field: str = "uri") -> S3Location:
        """`uri` as a location, if it lies under one of the project's locations; else InvalidInput."""
        _require_project_id(project_id)
        location = parse_s3_uri(uri, field)
        problem = _path_problem(location.prefix)
        if problem:
            raise InvalidInput(f"{field} must be a plain S3 prefix, without {problem}; got '{uri}'", field=field)
        if location.bucket == self.artifact_bucket:
            raise InvalidInput(f"{field} must not point into the artifact bucket s3://{self.artifact_bucket}/ "
                               f"(it holds training specs and model artifacts, never training data); got '{uri}'",
                               field=field)
        for allowed in self.locations(project_id):
            # Every location's prefix is "" or ends with "/", so a plain startswith cannot reach
            # a sibling (proj-1/ never matches proj-12/...).
            if location.bucket == allowed.bucket and location.prefix.startswith(allowed.prefix):
                return location
        own = " or ".join(f"s3://{b}/{project_id}/" for b in self.data_buckets) or "no data bucket (none configured)"
        raise InvalidInput(f"{field} must lie under {own} (this project's data location) or a location granted "
                           f"to the project; got '{uri}'", field=field)

    # ---- one run's permissions ------------------------------------------------------------------

    def session_policy(self, *, project_id: str, model_id: str, version: int, run_id: str,
                       artifact_prefix: str = "models", runs_prefix: str = "runs",
                       partition: str = "aws") -> dict:
        """The IAM session policy of one training run (compact with `policy_json`).

        Reads: the project's locations, its own spec `<runs_prefix>/<model_id>/<run_id>/`.
        Reads and writes: `<artifact_prefix>/<model_id>/v<version>/`. Lists: each bucket only
        under those prefixes. Raises SessionPolicyTooLarge when it would exceed STS's 2048
        characters.
        """
        self._check_ids(project_id, model_id, run_id, version, artifact_prefix, runs_prefix)
        artifacts = f"{artifact_prefix}/{model_id}/v{version}/"
        return self._policy(project_id, partition, reads=[f"{runs_prefix}/{model_id}/{run_id}/"],
                            writes=[artifacts], lists=[artifacts])

    def job_session_policy(self, *, project_id: str, model_id: str, version: int, job_id: str,
                           artifact_prefix: str = "models", runs_prefix: str = "runs",
                           output_prefix: str = "predictions", partition: str = "aws") -> dict:
        """The IAM session policy of one job that uses a trained version (a batch prediction).

        Reads: the project's locations, its spec `<runs_prefix>/<model_id>/<job_id>/`, the version's
        artifact `<artifact_prefix>/<model_id>/v<version>/` (read only). Reads and writes: its own
        output `<output_prefix>/<model_id>/<job_id>/`. Lists: the project's locations only."""
        self._check_ids(project_id, model_id, job_id, version, artifact_prefix, runs_prefix, output_prefix)
        output = f"{output_prefix}/{model_id}/{job_id}/"
        return self._policy(project_id, partition,
                            reads=[f"{runs_prefix}/{model_id}/{job_id}/", f"{artifact_prefix}/{model_id}/v{version}/"],
                            writes=[output], lists=[])

    @staticmethod
    def _check_ids(project_id: str, model_id: str, job_id: str, version: int, *prefixes: str) -> None:
        _require_project_id(project_id)
        for name, value in (("model_id", model_id), ("run_id", job_id)):
            if not isinstance(value, str) or not _ARN_SAFE_ID.fullmatch(value):
                raise InvalidInput(f"{name} cannot be used in a session policy: {value!r}", field=name)
        for value in prefixes:
            if not _ARN_SAFE_PREFIX.fullmatch(value):
                raise ValueError(f"a prefix cannot be used in a session policy: {value!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInput(f"version must be a positive integer, got {version!r}", field="version")

    def _policy(self, project_id: str, partition: str, *, reads: list[str], writes: list[str],
                lists: list[str]) -> dict:
        """Get on the project's data and the artifact bucket's `reads`, Get and Put on its `writes`, List on
        the data prefixes and the artifact bucket's `lists`."""
        data = self.locations(project_id)
        statements: list[dict] = [
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": _one_or_many([_object_arn(partition, d.bucket, d.prefix) for d in data]
                                      + [_object_arn(partition, self.artifact_bucket, r) for r in reads])},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": _one_or_many([_object_arn(partition, self.artifact_bucket, w) for w in writes])},
        ]
        listing: dict[str, set[str]] = {}
        for d in data:
            listing.setdefault(d.bucket, set()).add(d.prefix)
        for prefix in lists:
            listing.setdefault(self.artifact_bucket, set()).add(prefix)
        statements.extend(_list_statements(partition, listing))
        policy = {"Version": IAM_VERSION, "Statement": statements}
        size = len(policy_json(policy))
        if size > MAX_SESSION_POLICY_CHARS:
            raise SessionPolicyTooLarge(
                f"the session policy of project {project_id!r} would be {size} characters, over STS's "
                f"{MAX_SESSION_POLICY_CHARS} ({len(data)} data locations): grant fewer or broader locations")
        return policy


def _one_or_many(values: list[str]) -> str | list[str]:
    unique = list(dict.fromkeys(values))
    return unique[0] if len(unique) == 1 else unique


def _list_statements(partition: str, listing: dict[str, set[str]]) -> list[dict]:
    """s3:ListBucket statements, one per distinct set of prefixes.

    Buckets share a statement only when their prefixes are the same, so that a condition never
    lets one bucket be listed under another's prefix. A "" prefix (a whole-bucket grant) takes
    no condition: listing without a prefix must then be allowed too.
    """
    by_prefixes: dict[tuple[str, ...], list[str]] = {}
    for bucket, prefixes in listing.items():
        key = () if "" in prefixes else tuple(sorted(_minimal(prefixes)))
        by_prefixes.setdefault(key, []).append(f"arn:{partition}:s3:::{bucket}")
    found = []
    for prefixes, buckets in by_prefixes.items():
        statement: dict[str, Any] = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": _one_or_many(buckets)}
        if prefixes:
            statement["Condition"] = {"StringLike": {"s3:prefix": _one_or_many([f"{p}*" for p in prefixes])}}
        found.append(statement)
    return found


def _minimal(prefixes: set[str]) -> set[str]:
    """The prefixes not already covered by a shorter one."""
    return {p for p in prefixes if not any(q != p and p.startswith(q) for q in prefixes)}


def _parse_grants(grants_json: str, artifact_bucket: str) -> dict[str, tuple[str, ...]]:
    text = (grants_json or "").strip() or "{}"
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError("PROJECT_DATA_GRANTS: not JSON; expected {\"<project id>\": [\"s3://bucket/prefix/\", ...]}") \
            from None
    if not isinstance(raw, dict):
        raise ValueError("PROJECT_DATA_GRANTS: expected a JSON object {\"<project id>\": [\"s3://bucket/prefix/\"]}")
    grants: dict[str, tuple[str, ...]] = {}
    for project_id, uris in raw.items():
        if not PROJECT_ID.fullmatch(project_id):
            raise ValueError(f"PROJECT_DATA_GRANTS: {project_id!r} is not a project id")
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ValueError(f"PROJECT_DATA_GRANTS[{project_id!r}]: expected a list of s3:// URIs")
        grants[project_id] = tuple(dict.fromkeys(_parse_grant(project_id, u, artifact_bucket) for u in uris))
    return grants


def _parse_grant(project_id: str, uri: str, artifact_bucket: str) -> str:
    where = f"PROJECT_DATA_GRANTS[{project_id!r}]: {uri!r}"
    try:
        location = parse_s3_uri(uri)
    except InvalidInput:
        raise ValueError(f"{where} is not an s3://bucket/prefix/ URI") from None
    if location.bucket == artifact_bucket:
        raise ValueError(f"{where} is in the artifact bucket, which never holds training data")
    if location.prefix and not location.prefix.endswith("/"):
        raise ValueError(f"{where} must end with '/' (a prefix), or be s3://bucket/ for the whole bucket")
    problem = _path_problem(location.prefix) or ("'*', '?', '$', '{' or '}'"
                                                 if _POLICY_SPECIAL.search(location.prefix) else None)
    if problem:
        raise ValueError(f"{where} holds {problem}")
    return f"s3://{location.bucket}/{location.prefix}"
