"""The trainer's environment contract, API side: what the API hands every trainer.

`trainer_environment` builds a run's plain variables, `credential_secrets` its AWS
credentials (secrets, like the callback token), and `process_environment` the whole
environment of a local trainer process. The Lambda package holds no `trainer/`, so the
trainer keeps its own copy in `trainer/contract.py`;
`tests/unit/test_trainer_contract_parity.py` holds the two equal.
"""
from __future__ import annotations

from collections.abc import Mapping

MODEL_ID = "TRAINER_MODEL_ID"
RUN_ID = "TRAINER_RUN_ID"
CALLBACK_URL = "TRAINER_CALLBACK_URL"
CALLBACK_TOKEN = "TRAINER_CALLBACK_TOKEN"
SPEC = "TRAINER_SPEC"
SPEC_URI = "TRAINER_SPEC_URI"
ARTIFACT_BUCKET = "TRAINER_ARTIFACT_BUCKET"
ARTIFACT_PREFIX = "TRAINER_ARTIFACT_PREFIX"
CREDENTIALS_EXPIRATION = "TRAINER_CREDENTIALS_EXPIRATION"
# Where a job other than a training run asks for fresh credentials (its own callback path).
CREDENTIALS_ROUTE = "TRAINER_CREDENTIALS_PATH"

CALLBACK_RETRIES = "TRAINER_CALLBACK_RETRIES"
CALLBACK_BACKOFF = "TRAINER_CALLBACK_BACKOFF"
CALLBACK_TIMEOUT = "TRAINER_CALLBACK_TIMEOUT"
PROGRESS_INTERVAL = "TRAINER_PROGRESS_INTERVAL"
FIT_SAMPLE_ROWS = "TRAINER_FIT_SAMPLE_ROWS"
# A training run keeps its decoded data in memory between passes when it fits this many bytes (default
# 512 MiB; 0 keeps none).
CACHE_BYTES = "TRAINER_CACHE_BYTES"
TORCH_THREADS = "TRAINER_TORCH_THREADS"
# Rows per batch of a batch prediction job (`python -m trainer.batch_predict`), default 50,000.
PREDICT_BATCH_ROWS = "TRAINER_PREDICT_BATCH_ROWS"

AWS_REGION = "AWS_REGION"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
AWS_ENDPOINT_URL_S3 = "AWS_ENDPOINT_URL_S3"
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN"

REQUIRED = frozenset({MODEL_ID, RUN_ID, CALLBACK_URL, CALLBACK_TOKEN, ARTIFACT_BUCKET})
SPEC_SOURCES = (SPEC, SPEC_URI)
# Handed over as secrets only (the run's Kubernetes Secret), never as plain values.
SECRET = frozenset({CALLBACK_TOKEN, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN})
# Operator knobs with defaults; a local trainer inherits them from the API's environment.
TUNING = frozenset({CALLBACK_RETRIES, CALLBACK_BACKOFF, CALLBACK_TIMEOUT, PROGRESS_INTERVAL, FIT_SAMPLE_ROWS,
                    CACHE_BYTES, TORCH_THREADS, PREDICT_BATCH_ROWS})
AWS_CREDENTIALS = (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
NAMES = frozenset({
    MODEL_ID, RUN_ID, CALLBACK_URL, CALLBACK_TOKEN, SPEC, SPEC_URI, ARTIFACT_BUCKET, ARTIFACT_PREFIX,
    CREDENTIALS_EXPIRATION, CREDENTIALS_ROUTE, AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3,
    *TUNING, *AWS_CREDENTIALS,
})

CREDENTIALS_PATH = "/api/ml-models/{model_id}/training/credentials"
# What a `TrainingJob`'s `secrets` may hold: the secrets, and the expiry that travels
# with the credentials (adapters/sts.py hands them over together; kept secret as well).
ACCEPTED_AS_SECRET = SECRET | {CREDENTIALS_EXPIRATION}

# What any Python process needs from its parent's environment, and nothing more: the
# API's own AWS credentials, table names and signing keys must not reach a trainer.
PROCESS_BASICS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TEMP", "TMP",
                  "SYSTEMROOT", "SYSTEMDRIVE")


def trainer_environment(*, model_id: str, run_id: str, callback_url: str, spec_uri: str, artifact_bucket: str,
                        artifact_prefix: str, region: str, endpoint_url: str | None = None,
                        credentials_expiration: str | None = None,
                        credentials_path: str | None = None) -> dict[str, str]:
    """A run's plain (non-secret) variables; the token and credentials travel as secrets."""
    env = {
        MODEL_ID: model_id,
        RUN_ID: run_id,
        CALLBACK_URL: callback_url.rstrip("/"),
        SPEC_URI: spec_uri,
        ARTIFACT_BUCKET: artifact_bucket,
        ARTIFACT_PREFIX: artifact_prefix,
        AWS_REGION: region,
        AWS_DEFAULT_REGION: region,
    }
    if endpoint_url:
        env[AWS_ENDPOINT_URL] = endpoint_url
    if credentials_expiration:
        env[CREDENTIALS_EXPIRATION] = credentials_expiration
    if credentials_path:
        env[CREDENTIALS_ROUTE] = credentials_path
    return env


def credential_secrets(*, access_key_id: str, secret_access_key: str, session_token: str,
                       expiration: str | None = None) -> dict[str, str]:
    """Per-run AWS credentials (and, if given, their expiry) as the secrets a `TrainingJob` carries."""
    secrets = {AWS_ACCESS_KEY_ID: access_key_id, AWS_SECRET_ACCESS_KEY: secret_access_key,
               AWS_SESSION_TOKEN: session_token}
    if expiration:
        secrets[CREDENTIALS_EXPIRATION] = expiration
    return secrets


def check_names(environment: Mapping[str, str], secrets: Mapping[str, str]) -> None:
    """Raise ValueError for a name outside the contract, or a non-secret passed as a secret."""
    unknown = sorted(set(environment) - NAMES)
    if unknown:
        raise ValueError(f"not part of the trainer's environment contract: {', '.join(unknown)}")
    not_secret = sorted(set(secrets) - ACCEPTED_AS_SECRET)
    if not_secret:
        raise ValueError(f"not secret variables of the trainer's contract: {', '.join(not_secret)}")


def split_secrets(environment: Mapping[str, str], secrets: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) variables: secret names found in `environment` move to the secrets,
    where an explicit value in `secrets` wins."""
    plain = {k: v for k, v in environment.items() if k not in SECRET and k not in secrets}
    secret = {**{k: v for k, v in environment.items() if k in SECRET}, **secrets}
    return plain, secret


def process_environment(job_environment: Mapping[str, str], secrets: Mapping[str, str],
                        base: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a local trainer process.

    The run's contract variables (`job_environment` and `secrets`, the latter winning),
    the operator's tuning knobs from `base`, and the few basics any process needs from
    `base` (PATH, HOME, locale, temp dirs). Nothing else of the API's environment.
    """
    check_names(job_environment, secrets)
    env = {k: base[k] for k in PROCESS_BASICS if base.get(k)}
    env.update({k: base[k] for k in sorted(TUNING) if base.get(k)})
    plain, secret = split_secrets(job_environment, secrets)
    env.update(plain)
    env.update(secret)
    return env
