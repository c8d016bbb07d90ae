"""Settings of one trainer process: the only module that reads `os.environ`."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from trainer.errors import TrainingFailed


@dataclass(frozen=True)
class Settings:
    model_id: str
    run_id: str
    callback_url: str
    callback_token: str
    artifact_bucket: str
    artifact_prefix: str = "models"
    spec_json: str | None = None
    spec_uri: str | None = None
    endpoint_url: str | None = None
    callback_retries: int = 6
    callback_backoff: float = 1.0
    callback_timeout: float = 10.0
    progress_interval: float = 2.0
    max_data_bytes: int = 2 * 1024**3
    torch_threads: int = 0  # 0: min(4, os.cpu_count())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [
            name
            for name in (
                "TRAINER_MODEL_ID",
                "TRAINER_RUN_ID",
                "TRAINER_CALLBACK_URL",
                "TRAINER_CALLBACK_TOKEN",
                "TRAINER_ARTIFACT_BUCKET",
            )
            if not env.get(name)
        ]
        if missing:
            raise TrainingFailed(f"missing environment variable(s): {', '.join(missing)}")
        spec_json, spec_uri = env.get("TRAINER_SPEC") or None, env.get("TRAINER_SPEC_URI") or None
        if (spec_json is None) == (spec_uri is None):
            raise TrainingFailed("set exactly one of TRAINER_SPEC (inline JSON) and TRAINER_SPEC_URI (s3://...)")
        return cls(
            model_id=env["TRAINER_MODEL_ID"],
            run_id=env["TRAINER_RUN_ID"],
            callback_url=env["TRAINER_CALLBACK_URL"].rstrip("/"),
            callback_token=env["TRAINER_CALLBACK_TOKEN"],
            artifact_bucket=env["TRAINER_ARTIFACT_BUCKET"],
            artifact_prefix=(env.get("TRAINER_ARTIFACT_PREFIX") or "models").strip("/"),
            spec_json=spec_json,
            spec_uri=spec_uri,
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            callback_retries=_number(env, "TRAINER_CALLBACK_RETRIES", 6, int, minimum=1),
            callback_backoff=_number(env, "TRAINER_CALLBACK_BACKOFF", 1.0, float, minimum=0),
            callback_timeout=_number(env, "TRAINER_CALLBACK_TIMEOUT", 10.0, float, minimum=0.1),
            progress_interval=_number(env, "TRAINER_PROGRESS_INTERVAL", 2.0, float, minimum=0),
            max_data_bytes=_number(env, "TRAINER_MAX_DATA_BYTES", 2 * 1024**3, int, minimum=1),
            torch_threads=_number(env, "TRAINER_TORCH_THREADS", 0, int, minimum=0),
        )

    @property
    def identity(self) -> dict[str, str]:
        return {"model_id": self.model_id, "run_id": self.run_id}


def partial_identity(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """model_id / run_id as far as they are set, for logging before Settings exist."""
    env = os.environ if environ is None else environ
    return {"model_id": env.get("TRAINER_MODEL_ID", ""), "run_id": env.get("TRAINER_RUN_ID", "")}


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
