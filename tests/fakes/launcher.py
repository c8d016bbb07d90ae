"""A job launcher that only records what it is asked to start (and can refuse once)."""
from __future__ import annotations

from chalicelib.adapters.launcher import TrainingJob, job_name


class FakeLauncher:
    def __init__(self) -> None:
        self.jobs: list[TrainingJob] = []
        self.refuse_with: Exception | None = None

    def submit(self, job: TrainingJob) -> str:
        if self.refuse_with is not None:
            exc, self.refuse_with = self.refuse_with, None
            raise exc
        self.jobs.append(job)
        return job_name(job.run_id)
