"""A job launcher that only records what it is asked to start (and can refuse once)."""
from __future__ import annotations

from chalicelib.adapters.launcher import JobState, TrainingJob


class FakeLauncher:
    def __init__(self) -> None:
        self.jobs: list[TrainingJob] = []
        self.refuse_with: Exception | None = None
        # (job name, grace seconds) of every cancel asked for; a cancel raises `cancel_refuse_with` once.
        self.cancels: list[tuple[str, int]] = []
        self.cancel_refuse_with: Exception | None = None
        # What `inspect` answers per job name (a submitted job is pending until a test says otherwise).
        self.states: dict[str, JobState] = {}

    def submit(self, job: TrainingJob) -> str:
        if self.refuse_with is not None:
            exc, self.refuse_with = self.refuse_with, None
            raise exc
        self.jobs.append(job)
        return job.name

    def inspect(self, name: str) -> JobState:
        if name in self.states:
            return self.states[name]
        known = any(job.name == name for job in self.jobs)
        return JobState("pending") if known else JobState("missing", "NotFound", f"no job {name}")

    def cancel(self, name: str, grace_seconds: int) -> None:
        if self.cancel_refuse_with is not None:
            exc, self.cancel_refuse_with = self.cancel_refuse_with, None
            raise exc
        self.cancels.append((name, grace_seconds))
