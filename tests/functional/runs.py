"""Helpers for tests that play the trainer: the run's own artifact location, with its manifest."""
from __future__ import annotations

import json

import boto3

ARTIFACTS = "ml-models-artifacts-local"


def own_artifact(api, job, manifest: dict | None = None) -> str:
    """The run's artifact location, with a manifest naming the run written there (as the trainer does)."""
    run = api.get(f"/api/ml-models/{job.model_id}/runs/{job.run_id}").json
    version = run.get("version", 1)  # a forged job (a run of another model) has none here
    prefix = f"models/{job.model_id}/v{version}/"
    body = manifest if manifest is not None else {"run_id": job.run_id, "model_id": job.model_id, "version": version}
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=ARTIFACTS, Key=prefix + "manifest.json",
                                                           Body=json.dumps(body).encode())
    return f"s3://{ARTIFACTS}/{prefix}"
