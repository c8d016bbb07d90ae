"""What the training service asks of a job launcher, whichever system runs the trainer.

Two launchers implement it: `eks.EksJobLauncher` (a Kubernetes Job on EKS) and
`local_process.LocalProcessLauncher` (the trainer as a subprocess, for `make run`).
Both hand the trainer the same environment contract (trainer/README.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class TrainingJob:
    run_id: str
    model_id: str
    project_id: str
    model_type: str
    # The run's bearer token for the callbacks; launchers hand it over as a secret
    # (a Kubernetes Secret on EKS), never as a plain value in a manifest.
    callback_token: str
    # The trainer's environment contract except the token: TRAINER_MODEL_ID,
    # TRAINER_RUN_ID, TRAINER_CALLBACK_URL, TRAINER_SPEC or TRAINER_SPEC_URI,
    # TRAINER_ARTIFACT_BUCKET, TRAINER_ARTIFACT_PREFIX, and AWS_* where needed.
    environment: dict[str, str] = field(default_factory=dict)


class JobLauncher(Protocol):
    def submit(self, job: TrainingJob) -> str:
        """Start the job and return its name.

        Raises chalicelib.errors.UpstreamUnavailable when the system cannot be reached
        and UpstreamFailed when it refused (401/403, rejected spec). Submitting the
        same run twice is not an error.
        """
        ...


def job_name(run_id: str) -> str:
    """A DNS-1123 name derived from the run id (at most 63 characters)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in run_id.lower()).strip("-")
    return f"train-{cleaned}"[:63].rstrip("-")
