"""AWS credentials of one run: per-run STS credentials refreshed through the API, or the default chain.

A run's STS credentials last an hour at most (the role-chaining limit); a run may take
six. With TRAINER_CREDENTIALS_EXPIRATION set, the trainer's boto3 session holds botocore
`RefreshableCredentials` whose refresh asks the API for fresh ones
(`POST <callback>/api/ml-models/<id>/training/credentials`, with the run's bearer token),
before they expire (botocore refreshes 15 minutes ahead, and blocks in the last 10).
Without it, boto3's default chain applies (IRSA on EKS, the environment locally).
Credentials are never logged.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC

from trainer import contract
from trainer.config import Settings, parse_expiration
from trainer.errors import TrainingFailed
from trainer.logs import get_logger

log = get_logger("credentials")
METHOD = "trainer-run-credentials"
REFRESH_ATTEMPTS = 4
MAX_BACKOFF = 10.0


class CredentialsRefreshFailed(TrainingFailed):
    """The API did not hand out fresh credentials (refused, or every attempt failed)."""


def aws_session(settings: Settings, *, session=None, sleep: Callable[[float], None] = time.sleep):
    """The boto3 session every AWS client of the run is made from."""
    import boto3

    if settings.credentials_expiration is None or settings.aws_credentials is None:
        return boto3.Session(region_name=settings.region)
    import botocore.session
    from botocore.credentials import CredentialProvider, RefreshableCredentials

    access_key, secret_key, token = settings.aws_credentials
    fetch = CredentialsFetcher(settings, session=session, sleep=sleep)
    credentials = RefreshableCredentials.create_from_metadata(
        metadata={"access_key": access_key, "secret_key": secret_key, "token": token,
                  "expiry_time": settings.credentials_expiration.isoformat()},
        refresh_using=fetch,
        method=METHOD,
    )

    class RunCredentialsProvider(CredentialProvider):
        # Ahead of the environment provider, which would otherwise load the same keys
        # from AWS_* as static (never refreshed) credentials.
        METHOD = METHOD

        def load(self):
            return credentials

    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", RunCredentialsProvider())
    return boto3.Session(botocore_session=core, region_name=settings.region)


class CredentialsFetcher:
    """`refresh_using` for botocore: fresh credentials from the API, in botocore's metadata shape."""

    def __init__(self, settings: Settings, *, session=None, sleep: Callable[[float], None] = time.sleep,
                 attempts: int = REFRESH_ATTEMPTS) -> None:
        import requests

        path = settings.credentials_path or contract.CREDENTIALS_PATH.format(model_id=settings.model_id)
        self.url = settings.callback_url.rstrip("/") + path
        # The same headers as every other callback (trainer/callback.py).
        self.headers = {
            "Authorization": f"Bearer {settings.callback_token}",
            "Content-Type": "application/json",
            "X-Training-Run-Id": settings.run_id,
        }
        self.timeout = settings.callback_timeout
        self.backoff = max(settings.callback_backoff, 0.1)
        self.attempts = attempts
        self.session = session or requests.Session()
        self.sleep = sleep

    def __call__(self) -> dict[str, str]:
        import requests

        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.session.post(self.url, data="{}", headers=self.headers, timeout=self.timeout)
            except requests.RequestException as exc:
                problem = type(exc).__name__
            else:
                if response.status_code < 300:
                    return self._metadata(response)
                if response.status_code < 500:  # refused: retrying cannot help
                    raise CredentialsRefreshFailed(f"the API refused fresh credentials (HTTP {response.status_code})")
                problem = f"HTTP {response.status_code}"
            log.warning("credentials refresh attempt failed", extra={"attempt": attempt, "problem": problem})
            if attempt < self.attempts:
                self.sleep(min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))
        raise CredentialsRefreshFailed(f"no fresh credentials after {self.attempts} attempt(s): {problem}")

    def _metadata(self, response) -> dict[str, str]:
        try:
            body = response.json()
            fresh = {"access_key": body["access_key_id"], "secret_key": body["secret_access_key"],
                     "token": body["session_token"]}
            expires = parse_expiration(str(body["expiration"]), "expiration")
        except (ValueError, KeyError, TypeError, AttributeError, TrainingFailed) as exc:
            # Name the problem, never the body (it holds the credentials).
            raise CredentialsRefreshFailed(f"the credentials answer is malformed ({type(exc).__name__})") from None
        if not all(isinstance(v, str) and v for v in fresh.values()):
            raise CredentialsRefreshFailed("the credentials answer has an empty or non-string field")
        log.info("credentials refreshed", extra={"expires_at": expires.astimezone(UTC).isoformat()})
        return {**fresh, "expiry_time": expires.isoformat()}
