"""Settings of one trainer process: the only module that reads `os.environ`.

The variable names are the contract's (`trainer.contract`); secrets never appear in a repr.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trainer import contract as c
from trainer.errors import TrainingFailed


@dataclass(frozen=True)
class Settings:
    model_id: str
    run_id: str
    callback_url: str
    callback_token: str = field(repr=False)
    artifact_bucket: str
    artifact_prefix: str = "models"
    spec_json: str | None = None
    spec_uri: str | None = None
    endpoint_url: str | None = None
    callback_retries: int = 6
    callback_backoff: float = 1.0
    callback_timeout: float = 10.0
    progress_interval: float = 2.0
    # The tree types and the linear model fit on at most this many rows (trainer.pipeline; 0: all rows).
    fit_sample_rows: int = 2_000_000
    # Decoded data parts kept in memory between a run's passes (trainer.stream.PartStream.cache_bytes).
    cache_bytes: int = 512 * 1024 * 1024
    torch_threads: int = 0  # 0: min(4, os.cpu_count())
    region: str | None = None
    # Per-run STS credentials, set together with their expiry; without them boto3's
    # default chain applies (IRSA on EKS, the environment locally).
    aws_credentials: tuple[str, str, str] | None = field(default=None, repr=False)
    credentials_expiration: datetime | None = None
    # The API path that hands out fresh credentials (contract.CREDENTIALS_PATH for a training run).
    credentials_path: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [name for name in sorted(c.REQUIRED) if not env.get(name)]
        if missing:
            raise TrainingFailed(f"missing environment variable(s): {', '.join(missing)}")
        spec_json, spec_uri = env.get(c.SPEC) or None, env.get(c.SPEC_URI) or None
        if (spec_json is None) == (spec_uri is None):
            raise TrainingFailed(f"set exactly one of {c.SPEC} (inline JSON) and {c.SPEC_URI} (s3://...)")
        return cls(
            model_id=env[c.MODEL_ID],
            run_id=env[c.RUN_ID],
            callback_url=env[c.CALLBACK_URL].rstrip("/"),
            callback_token=env[c.CALLBACK_TOKEN],
            artifact_bucket=env[c.ARTIFACT_BUCKET],
            artifact_prefix=(env.get(c.ARTIFACT_PREFIX) or "models").strip("/"),
            spec_json=spec_json,
            spec_uri=spec_uri,
            endpoint_url=env.get(c.AWS_ENDPOINT_URL_S3) or env.get(c.AWS_ENDPOINT_URL) or None,
            callback_retries=_number(env, c.CALLBACK_RETRIES, 6, int, minimum=1),
            callback_backoff=_number(env, c.CALLBACK_BACKOFF, 1.0, float, minimum=0),
            callback_timeout=_number(env, c.CALLBACK_TIMEOUT, 10.0, float, minimum=0.1),
            progress_interval=_number(env, c.PROGRESS_INTERVAL, 2.0, float, minimum=0),
            fit_sample_rows=_number(env, c.FIT_SAMPLE_ROWS, 2_000_000, int, minimum=0),
            cache_bytes=_number(env, c.CACHE_BYTES, 512 * 1024 * 1024, int, minimum=0),
            torch_threads=_number(env, c.TORCH_THREADS, 0, int, minimum=0),
            region=env.get(c.AWS_REGION) or env.get(c.AWS_DEFAULT_REGION) or None,
            credentials_path=env.get(c.CREDENTIALS_ROUTE) or c.CREDENTIALS_PATH.format(model_id=env[c.MODEL_ID]),
            **_run_credentials(env),
        )

    @property
    def identity(self) -> dict[str, str]:
        return {"model_id": self.model_id, "run_id": self.run_id}


def partial_identity(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """model_id / run_id as far as they are set, for logging before Settings exist."""
    env = os.environ if environ is None else environ
    return {"model_id": env.get(c.MODEL_ID, ""), "run_id": env.get(c.RUN_ID, "")}


def _run_credentials(env: Mapping[str, str]) -> dict:
    """Per-run credentials when TRAINER_CREDENTIALS_EXPIRATION says they expire, else none."""
    raw = env.get(c.CREDENTIALS_EXPIRATION)
    if not raw:
        return {}
    missing = [name for name in c.AWS_CREDENTIALS if not env.get(name)]
    if missing:
        raise TrainingFailed(f"{c.CREDENTIALS_EXPIRATION} is set but {', '.join(missing)} is not")
    return {"aws_credentials": tuple(env[name] for name in c.AWS_CREDENTIALS),
            "credentials_expiration": parse_expiration(raw, c.CREDENTIALS_EXPIRATION)}


def parse_expiration(raw: str, name: str) -> datetime:
    """An ISO-8601 instant as an aware UTC datetime ("Z" accepted; a naive value is UTC)."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TrainingFailed(f"{name}={raw!r} is not an ISO-8601 date and time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(env: Mapping[str, str], name: str, default, kind, minimum):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise TrainingFailed(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value < minimum:
        raise TrainingFailed(f"{name}={raw!r} must be >= {minimum}")
    return value
