"""The reconciler: settles runs that have not ended from what the cluster says about their jobs.

A trainer reports its own end (the complete and fail callbacks), but some ends send no report: a
pod that never starts (an image that cannot be pulled, no node that fits: a Kubernetes Job does
not fail a pending pod), a Job failed by its deadline or an OOM kill, a trainer that exited
without its callback arriving, a Job deleted, a train request that died before submitting. A
scheduled function (every minute) asks the launcher for each active run's job (`JobLauncher.inspect`)
and ends the run through `RunSettlement.finish`, like every other way out of `training`:

- job pending for a reason that will not go away (launcher.STUCK_REASONS) past the start
  deadline after acceptance → failed, the pod's reason and message in failure_reason;
- job failed (DeadlineExceeded, BackoffLimitExceeded, OOMKilled) → failed with that reason;
- job succeeded: completed from the run's manifest if it is there and names the run (nothing is
  lost), else failed "the trainer exited without reporting";
- job missing after it was submitted → failed "the job no longer exists"; a run still without a
  job the submission grace after acceptance → failed "the job was never submitted";
- a run past its deadline → failed, as a read of the model would do.

A run `cancelling` (its cancel could not reach the launcher) is asked to stop again and ended
`cancelled`. Jobs of other kinds on the same launcher (batch predictions, services/predictions.py)
are swept after the runs by the same rules, each by its own service's `settle`.
Runs are found per active status on the runs' status index (never a Scan), oldest
change first; a sweep handles at most `max_runs` and starts none after `budget_seconds`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.adapters.launcher import JobState, job_name
from chalicelib.errors import Conflict, DomainError
from chalicelib.records import TrainingRun
from chalicelib.services.common import Clock, utc_now
from chalicelib.services.ports import TrainingRunRepository
from chalicelib.services.run_settlement import RunSettlement, shift

log = logging.getLogger("ml_models.reconciler")

# The statuses swept, in this order (a run's model is `training` in the first three).
SWEPT_STATUSES = ("queued", "submitted", "running", "cancelling")
NEVER_SUBMITTED = "the job was never submitted"
JOB_GONE = "the job no longer exists"
NO_REPORT = "the trainer exited without reporting"
PAGE = 25


@dataclass
class Sweep:
    """What one reconcile did: counts per outcome ("failed", "succeeded", "cancelled", "unchanged",
    "skipped" (ended meanwhile), "error" (the launcher or a store could not answer))."""

    seen: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    exhausted: bool = True  # False: stopped at max_runs or the time budget, more may be waiting

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def summary(self) -> dict[str, Any]:
        return {"runs_seen": self.seen, **self.outcomes, "exhausted": self.exhausted}


class Reconciler:
    def __init__(self, runs: TrainingRunRepository, launcher: Any, settlement: RunSettlement,
                 complete_from_manifest: Callable[[TrainingRun], bool], *, start_deadline_seconds: int = 600,
                 submission_grace_seconds: int = 300, cancel_grace_seconds: int = 30, max_runs: int = 100,
                 budget_seconds: float = 20.0, clock: Clock = utc_now,
                 monotonic: Callable[[], float] = time.monotonic, jobs: Sequence[Any] = ()) -> None:
        self.runs = runs
        self.launcher = launcher
        self.settlement = settlement
        # TrainingService.complete_from_manifest: the run completed from its artifact's manifest, or False.
        self.complete_from_manifest = complete_from_manifest
        self.start_deadline_seconds = start_deadline_seconds
        self.submission_grace_seconds = submission_grace_seconds
        self.cancel_grace_seconds = cancel_grace_seconds
        self.max_runs = max_runs
        self.budget_seconds = budget_seconds
        self.clock = clock
        self.monotonic = monotonic
        # Services of other jobs on the same launcher (services/predictions.py), each with `active_jobs()`
        # and `settle(job) -> outcome`: swept after the runs, within the same limits.
        self.jobs = list(jobs)

    def reconcile(self) -> dict[str, Any]:
        """One sweep over the active runs; returns (and logs) its summary."""
        sweep, started = Sweep(), self.monotonic()
        for settle, item in self._active():
            if sweep.seen >= self.max_runs or self.monotonic() - started > self.budget_seconds:
                sweep.exhausted = False
                break
            sweep.seen += 1
            sweep.count(self._safely(settle, item))
        log.info("reconcile_finished", extra=sweep.summary())
        return sweep.summary()

    def _active_runs(self):
        for status in SWEPT_STATUSES:
            token: str | None = None
            while True:
                items, token = self.runs.list_by_status(status, PAGE, token)
                yield from (r for r in items if r.status == status)  # the index may lag the record
                if token is None:
                    break

    def _active(self) -> Iterator[tuple[Callable[[Any], str], Any]]:
        yield from ((self.settle, run) for run in self._active_runs())
        for service in self.jobs:
            yield from ((service.settle, job) for job in service.active_jobs())

    def _safely(self, settle: Callable[[Any], str], item: Any) -> str:
        try:
            return settle(item)
        except Conflict:
            return "skipped"  # it ended (or moved on) meanwhile
        except DomainError as exc:  # the cluster or a store did not answer: next minute's sweep retries
            log.warning("reconcile_run_failed", extra={"model_id": item.model_id, "run_id": item.key,
                                                       "reason": exc.message})
            return "error"

    def settle(self, run: TrainingRun) -> str:
        """End `run` if its job says it has ended or cannot start; the outcome ("unchanged" if not)."""
        if run.status == "cancelling":
            self.launcher.cancel(run.job_name or job_name(run.run_id), self.cancel_grace_seconds)
            self.settlement.end_cancel(run.run_id, "the job was stopped by the reconciler")
            return "cancelled"
        now = self.clock()
        state = self.launcher.inspect(run.job_name or job_name(run.run_id))
        reason = self._failure(run, state, now)
        if reason is None and state.phase == "succeeded":
            if self.complete_from_manifest(run):
                log.info("reconciled_from_manifest", extra={"model_id": run.model_id, "run_id": run.run_id})
                return "succeeded"
            reason = f"{NO_REPORT} (its job completed, but no manifest naming the run is at its artifact location)"
        if reason is None:
            return "unchanged"
        log.warning("reconciled_failed", extra={"model_id": run.model_id, "run_id": run.run_id, "reason": reason,
                                                "job_phase": state.phase, "job_reason": state.reason})
        self.settlement.finish(run.model_id, run.run_id, "failed", reason=reason)
        return "failed"

    def _failure(self, run: TrainingRun, state: JobState, now: str) -> str | None:
        """Why `run` has failed, from its job's state; None if it has not (yet)."""
        if state.phase == "missing":
            if run.job_name:
                return f"{JOB_GONE} ({state.describe()})"
            if now > shift(run.created_at, self.submission_grace_seconds):
                return f"{NEVER_SUBMITTED} ({self.submission_grace_seconds} s after the run was accepted)"
            return None  # the train request may still be submitting it
        if state.phase == "failed":
            return f"the training job failed: {state.describe()}"
        if state.stuck and now > shift(run.created_at, self.start_deadline_seconds):
            return (f"the trainer's pod did not start within {self.start_deadline_seconds} s: "
                    f"{state.describe()}")
        if state.phase != "succeeded" and run.deadline_at and now > run.deadline_at:
            return f"the trainer did not report a result before the run's deadline ({run.deadline_at})"
        return None
