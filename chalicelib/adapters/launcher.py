"""What the training service asks of a job launcher, whichever system runs the trainer.

Two launchers implement it: `eks.EksJobLauncher` (a Kubernetes Job on EKS) and
`local_process.LocalProcessLauncher` (the trainer as a subprocess, for `make run`).
Both hand the trainer the same environment contract (trainer/README.md).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from chalicelib import trainer_contract as contract

# What a job runs, by kind: the module of the trainer image (`python -m <module>`).
ENTRY_POINTS = {"train": "trainer", "predict": "trainer.batch_predict", "evaluate": "trainer.evaluate"}


@dataclass(frozen=True)
class TrainingJob:
    """A job of the trainer image: a training run (kind "train"; `run_id` the run's id) or a job that uses a
    trained version (kind "predict"; `run_id` the job's id). Every kind has the same contract and safeguards."""

    run_id: str
    model_id: str
    project_id: str
    model_type: str
    # The run's bearer token for the callbacks; launchers hand it over as a secret
    # (a Kubernetes Secret on EKS), never as a plain value in a manifest.
    callback_token: str = field(repr=False)
    # The trainer's plain variables (`trainer_contract.trainer_environment`); only
    # names of the contract are accepted.
    environment: dict[str, str] = field(default_factory=dict)
    # Further secret variables, handed over like the token: the run's AWS credentials
    # and their expiry (`RunCredentials.environment()`, `trainer_contract.credential_secrets`).
    # Only the contract's secret names and TRAINER_CREDENTIALS_EXPIRATION.
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    kind: str = "train"
    # The job's own bound on its wall time, below the launcher's (a tuned run: its search budget plus a
    # fixed margin); None: the launcher's deadline (the Job's activeDeadlineSeconds).
    deadline_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENTRY_POINTS:
            raise ValueError(f"TrainingJob.kind must be one of {sorted(ENTRY_POINTS)}, not {self.kind!r}")
        if self.deadline_seconds is not None and self.deadline_seconds <= 0:
            raise ValueError("TrainingJob.deadline_seconds must be positive")
        contract.check_names(self.environment, self.secrets)

    @property
    def entry_point(self) -> str:
        """The module the container runs (`python -m <entry_point>`)."""
        return ENTRY_POINTS[self.kind]

    @property
    def name(self) -> str:
        """The job's name in its launcher (`job_name`)."""
        return job_name(self.run_id, self.kind)

    def plain_environment(self) -> dict[str, str]:
        """The variables that may be written in plain text (a Job manifest)."""
        return contract.split_secrets(self.environment, self.secrets)[0]

    def secret_environment(self) -> dict[str, str]:
        """The token and every other secret variable (one found in `environment` included)."""
        secret = contract.split_secrets(self.environment, self.secrets)[1]
        secret[contract.CALLBACK_TOKEN] = self.callback_token
        return secret


JOB_PHASES = ("pending", "running", "succeeded", "failed", "missing")
# Why a pod that is still pending will not start by itself (the reconciler fails its run after the
# start deadline): the image cannot be pulled, its configuration (a Secret key) is missing, no node fits.
STUCK_REASONS = ("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "Unschedulable")


@dataclass(frozen=True)
class JobState:
    """A job as its launcher sees it: `phase` (one of JOB_PHASES), and why (a Kubernetes reason such as
    ImagePullBackOff, DeadlineExceeded or OOMKilled, and its message)."""

    phase: str
    reason: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        if self.phase not in JOB_PHASES:
            raise ValueError(f"JobState.phase must be one of {JOB_PHASES}, not {self.phase!r}")

    @property
    def stuck(self) -> bool:
        """Pending for a reason that will not go away by waiting."""
        return self.phase == "pending" and self.reason in STUCK_REASONS

    def describe(self) -> str:
        return f"{self.reason}: {self.message}" if self.message else self.reason


class JobLauncher(Protocol):
    def submit(self, job: TrainingJob) -> str:
        """Start the job and return its name.

        Raises chalicelib.errors.UpstreamUnavailable when the system cannot be reached
        and UpstreamFailed when it refused (401/403, rejected spec). Submitting the
        same run twice is not an error.
        """
        ...

    def inspect(self, job_name: str) -> JobState:
        """What the system knows of the job now (the reconciler's view; `phase` "missing" if it has none).

        Raises UpstreamUnavailable / UpstreamFailed as `submit` does."""
        ...

    def cancel(self, job_name: str, grace_seconds: int) -> None:
        """Stop the job: the trainer gets SIGTERM, then `grace_seconds` to report before it is killed.

        A job that has already ended (or is unknown) is not an error. Raises like `submit`
        when the system cannot be reached or refuses.
        """
        ...


def job_name(run_id: str, kind: str = "train") -> str:
    """A DNS-1123 name derived from the job's kind and id (at most 63 characters)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in run_id.lower()).strip("-")
    return f"{kind}-{cleaned}"[:63].rstrip("-")
