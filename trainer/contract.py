"""The trainer's environment contract, trainer side: every variable the trainer reads.

The API hands these to the trainer (a Kubernetes Job on EKS, a local process for
`make run`). The trainer image holds no `chalicelib`, so the API keeps its own copy in
`chalicelib/trainer_contract.py`; `tests/unit/test_trainer_contract_parity.py` holds the
two equal (names, required set, secret set). trainer/README.md describes each variable.
"""
from __future__ import annotations

# The run: who it is, where to report, what to train, where the artifact goes.
MODEL_ID = "TRAINER_MODEL_ID"
RUN_ID = "TRAINER_RUN_ID"
CALLBACK_URL = "TRAINER_CALLBACK_URL"
CALLBACK_TOKEN = "TRAINER_CALLBACK_TOKEN"
SPEC = "TRAINER_SPEC"
SPEC_URI = "TRAINER_SPEC_URI"
ARTIFACT_BUCKET = "TRAINER_ARTIFACT_BUCKET"
ARTIFACT_PREFIX = "TRAINER_ARTIFACT_PREFIX"
# Set with per-run STS credentials: when they expire (ISO-8601, UTC); the trainer then
# refreshes them through the API before they do.
CREDENTIALS_EXPIRATION = "TRAINER_CREDENTIALS_EXPIRATION"
# Where a job other than a training run asks for fresh credentials (its own callback path).
CREDENTIALS_ROUTE = "TRAINER_CREDENTIALS_PATH"

# Tuning knobs with defaults (operators may set them; the API does not need to).
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

# AWS, as boto3 reads them.
AWS_REGION = "AWS_REGION"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
AWS_ENDPOINT_URL_S3 = "AWS_ENDPOINT_URL_S3"
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN"

REQUIRED = frozenset({MODEL_ID, RUN_ID, CALLBACK_URL, CALLBACK_TOKEN, ARTIFACT_BUCKET})
# Exactly one of these is set.
SPEC_SOURCES = (SPEC, SPEC_URI)
# Never written in plain text (a Job manifest, a log line, a repr).
SECRET = frozenset({CALLBACK_TOKEN, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN})
TUNING = frozenset({CALLBACK_RETRIES, CALLBACK_BACKOFF, CALLBACK_TIMEOUT, PROGRESS_INTERVAL, FIT_SAMPLE_ROWS,
                    CACHE_BYTES, TORCH_THREADS, PREDICT_BATCH_ROWS})
AWS_CREDENTIALS = (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
NAMES = frozenset({
    MODEL_ID, RUN_ID, CALLBACK_URL, CALLBACK_TOKEN, SPEC, SPEC_URI, ARTIFACT_BUCKET, ARTIFACT_PREFIX,
    CREDENTIALS_EXPIRATION, CREDENTIALS_ROUTE, AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3,
    *TUNING, *AWS_CREDENTIALS,
})

# The API route the trainer asks for fresh credentials (relative to the callback URL).
CREDENTIALS_PATH = "/api/ml-models/{model_id}/training/credentials"
