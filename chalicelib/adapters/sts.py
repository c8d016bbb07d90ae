"""STS adapter: short-lived AWS credentials for one training run.

`RunCredentialIssuer.issue` assumes the trainer run role (infra/cloudformation/trainer-run-role.yaml)
with a session policy (`chalicelib.services.data_scope.DataScope.session_policy`), so the
credentials can do only the intersection of the two: what this run needs.

Role chaining: the API Lambda itself runs on assumed-role credentials, and AWS caps a session
assumed from another assumed role at one hour whatever the role's MaxSessionDuration. So the
duration is min(configured, 3600); a run that lasts longer gets fresh credentials through its
callback (the trainer asks the API before `expiration`), never through a longer session.

Callers see `RunCredentials` and domain errors, never botocore's; the secret and the token are
never in a repr, a log line or an error message.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.aws_faults import unavailable
from chalicelib.errors import UpstreamFailed, UpstreamUnavailable

# AssumeRole from assumed-role credentials (a Lambda's) is limited to one hour.
ROLE_CHAINING_LIMIT_SECONDS = 3600
MIN_DURATION_SECONDS = 900  # STS's floor
_SESSION_NAME_ILLEGAL = re.compile(r"[^\w+=,.@-]", re.ASCII)
_THROTTLING = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
               "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure", "InternalError"}
FAILED = "could not obtain credentials for the training run"


@dataclass(frozen=True)
class RunCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: str  # ISO-8601 UTC, e.g. 2026-11-28T13:00:00Z

    def environment(self) -> dict[str, str]:
        """The trainer's environment for these credentials (the SDK's standard variable names)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "TRAINER_CREDENTIALS_EXPIRATION": self.expiration,
        }

    def __repr__(self) -> str:
        return f"RunCredentials(access_key_id={self.access_key_id!r}, expiration={self.expiration!r})"

    __str__ = __repr__


def role_session_name(name: str) -> str:
    """`name` as an STS RoleSessionName: [\\w+=,.@-], 2 to 64 characters."""
    cleaned = _SESSION_NAME_ILLEGAL.sub("-", name)[:64]
    return cleaned if len(cleaned) >= 2 else (cleaned + "--")[:2]


def _iso_utc(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


class RunCredentialIssuer:
    """Assumes the run role for one run. The STS client is created on first use."""

    def __init__(self, client_factory: Callable[[], Any], role_arn: str, duration_seconds: int = 3600) -> None:
        if not role_arn:
            raise ValueError("TRAINER_RUN_ROLE_ARN is empty: the run role's ARN is needed to issue credentials")
        self._client_factory = client_factory
        self._client = None
        self.role_arn = role_arn
        self.duration_seconds = max(MIN_DURATION_SECONDS, min(int(duration_seconds), ROLE_CHAINING_LIMIT_SECONDS))

    @property
    def client(self):
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def issue(self, session_name: str, policy: Mapping[str, Any]) -> RunCredentials:
        """Credentials of the run role narrowed by `policy` (an IAM policy document)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from chalicelib.services.data_scope import policy_json

        try:
            reply = self.client.assume_role(
                RoleArn=self.role_arn,
                RoleSessionName=role_session_name(session_name),
                Policy=policy_json(policy),
                DurationSeconds=self.duration_seconds,
            )
        except ClientError as exc:
            # The cause stays chained for the log; the message carries no STS text (it names ARNs).
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _THROTTLING or unavailable(exc):  # throttled, or STS answered 5xx
                raise UpstreamUnavailable(f"{FAILED} (STS is throttling; retry shortly)") from exc
            raise UpstreamFailed(f"{FAILED} ({_reason(code)})") from exc
        except (BotoCoreError, OSError) as exc:
            # Connection errors, timeouts, missing credentials of the API itself.
            raise UpstreamUnavailable(f"{FAILED} (STS could not be reached; retry shortly)") from exc
        try:
            found = reply["Credentials"]
            return RunCredentials(found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"],
                                  _iso_utc(found["Expiration"]))
        except (KeyError, TypeError) as exc:
            raise UpstreamFailed(f"{FAILED} (malformed reply)") from exc


def _reason(code: str) -> str:
    """A short reason from STS's error code: known codes only, never the raw message (it names ARNs)."""
    known = {"AccessDenied": "access denied", "MalformedPolicyDocument": "session policy refused",
             "PackedPolicyTooLarge": "session policy too large", "RegionDisabledException": "region disabled",
             "ExpiredTokenException": "API credentials expired", "ValidationError": "request refused"}
    return known.get(code, "request refused")
