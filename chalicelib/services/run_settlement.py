"""Ending training runs: every way out of `training` goes through `RunSettlement.finish`.

The trainer's callbacks, a failed submission, the local launcher noticing a dead
trainer and reads noticing a run past its deadline all end a run here, and only
for the model's current run (`while_current`). A cancel takes the model out of the
run first (`begin_cancel`), so nothing the run reports afterwards is accepted, then
ends the run once its job was told to stop (`end_cancel`). Reading a model (MlModelService)
receives `expire_if_overdue` from the composition root, so it never needs the
training service itself.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import Conflict
from chalicelib.observability import NullRunMetrics, RunMetrics
from chalicelib.records import MlModel, TrainingRun
from chalicelib.services.common import Clock, utc_now
from chalicelib.services.notifications import NullNotifier
from chalicelib.services.ports import ModelRepository, TrainingRunRepository

log = logging.getLogger("ml_models.training")

FINAL_RUN_STATUSES = ("succeeded", "failed", "cancelled")
# A model in training whose run record is still missing after this long is taken out of training.
ORPHAN_GRACE_SECONDS = 600


def shift(timestamp: str, seconds: int) -> str:
    """An ISO-8601 UTC timestamp (utc_now's format) moved by `seconds`."""
    moved = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) + timedelta(
        seconds=seconds)
    return moved.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RunSettlement:
    def __init__(self, models: ModelRepository, runs: TrainingRunRepository, notifier: Any = None,
                 clock: Clock = utc_now, metrics: RunMetrics | None = None) -> None:
        self.models = models
        self.runs = runs
        self.notifier = notifier or NullNotifier()
        self.metrics = metrics or NullRunMetrics()
        self.clock = clock

    def status_change(self, run: TrainingRun, status: str, note: str) -> TrainingRun:
        now = self.clock()
        history = [*run.status_history, {"status": status, "at": now, "note": note[:500]}]
        return run.but(status=status, status_history=history, updated_at=now)

    def while_current(self, model_id: str, run_id: str, change: Callable[[MlModel], MlModel]) -> MlModel:
        """Apply `change` to the model while `run_id` is its current training run (409 otherwise)."""

        def guarded(model: MlModel) -> MlModel:
            if model.status != "training" or model.training_task_id != run_id:
                raise Conflict(f"training run '{run_id}' is not the current run of model '{model_id}'",
                               field="run_id", current_status=model.status)
            return change(model)

        return self.models.modify(model_id, guarded)

    def finish(self, model_id: str, run_id: str, outcome: str, *, reason: str = "", artifact: str = "",
               performance: dict | None = None, training: dict | None = None,
               model_status: str | None = None, lineage: dict | None = None) -> None:
        """End `run_id`: the model leaves `training` (only if this is its current run), then the run."""
        run = self.runs.get(run_id)
        if run.status in FINAL_RUN_STATUSES:
            raise Conflict(f"training run '{run_id}' already ended as {run.status}", field="run_id",
                           run_status=run.status)
        now = self.clock()

        def leave_training(model: MlModel) -> MlModel:
            metadata = dict(model.metadata)
            if outcome == "succeeded":
                metadata.pop("failure_reason", None)
                return model.but(status="trained", version=run.version, trained_at=now, model_artifact_path=artifact,
                                 performance_metrics=performance or {}, training_metrics=training or {},
                                 metadata=metadata, updated_at=now)
            metadata["failure_reason"] = reason
            updated = model.but(status=model_status or "failed", metadata=metadata, updated_at=now)
            if model_status is not None:  # the job never ran: put the model back as it was
                updated = updated.but(training_task_id="")
            return updated

        updated = self.while_current(model_id, run_id, leave_training)

        def end(r: TrainingRun) -> TrainingRun:
            if outcome == "succeeded":
                r = r.but(model_artifact_path=artifact, performance_metrics=performance or {},
                          training_metrics=training or {}, data_lineage=lineage or {})
            else:
                r = r.but(failure_reason=reason)
            return self.status_change(r, outcome, reason or "trainer reported completion")

        self.runs.modify(run_id, end)
        log.info(f"training_{outcome}", extra={"model_id": model_id, "run_id": run_id, "reason": reason})
        # A run whose job never ran (model_status: put back as it was) was never accepted.
        self.metrics.run_ended(outcome if model_status is None else "not_submitted", model_id, run_id)
        self.notifier.model_status_changed(updated, "training", run_id)

    def begin_cancel(self, model_id: str, run_id: str) -> MlModel:
        """A cancel's first step: the model back to the status it had before the run, no longer pointing at
        it (one locked write, so no late callback of the run can settle or promote anything after it), then
        the run `cancelling`. Its version and artifact never moved (only success moves them). 409 unless
        `run_id` is the model's current run."""
        run = self.runs.get(run_id)
        if run.status in FINAL_RUN_STATUSES:
            raise Conflict(f"training run '{run_id}' already ended as {run.status}", field="run_id",
                           run_status=run.status)
        updated = self.while_current(model_id, run_id, lambda model: model.but(
            status=run.previous_model_status, training_task_id="", updated_at=self.clock()))
        self.runs.modify(run_id, lambda r: r if r.status in FINAL_RUN_STATUSES else self.status_change(
            r, "cancelling", "cancel requested"))
        log.info("training_cancelling", extra={"model_id": model_id, "run_id": run_id,
                                               "model_status": updated.status})
        self.notifier.model_status_changed(updated, "training", run_id)
        return updated

    def end_cancel(self, run_id: str, note: str = "the job was stopped") -> TrainingRun:
        """A cancel's last step, once the job was asked to stop: the run `cancelled` (a no-op if it is not
        `cancelling`). The reconciler ends a cancel whose job could not be reached the same way."""
        ended: dict[str, bool] = {}

        def end(r: TrainingRun) -> TrainingRun:
            ended["here"] = r.status == "cancelling"  # re-applied on a concurrent write: the last answer counts
            return self.status_change(r, "cancelled", note) if ended["here"] else r

        run = self.runs.modify(run_id, end)
        if ended.get("here"):
            log.info("training_cancelled", extra={"model_id": run.model_id, "run_id": run_id})
            self.metrics.run_ended("cancelled", run.model_id, run_id)
            self.notifier.training_cancelled(run)
        return run

    def abandon(self, model_id: str, run_id: str, status: str, reason: str) -> None:
        """Take the model out of a run that has no run record (so `finish` cannot end it)."""

        def leave(model: MlModel) -> MlModel:
            return model.but(status=status, training_task_id="", updated_at=self.clock(),
                             metadata={**model.metadata, "failure_reason": reason})

        try:
            updated = self.while_current(model_id, run_id, leave)
        except Conflict:
            return  # it moved on meanwhile
        log.warning("training_abandoned", extra={"model_id": model_id, "run_id": run_id, "reason": reason})
        self.metrics.run_ended("not_submitted", model_id, run_id)
        self.notifier.model_status_changed(updated, "training", run_id)

    def expire_if_overdue(self, model: MlModel) -> MlModel:
        """Fail the model's run if it is past its deadline without a report; return the model as it is now.

        A trainer killed without a chance to report (OOM kill, lost node) sends no
        callback. Reads of the model notice the deadline has passed, so the model
        never stays in `training`.
        """
        if model.status != "training" or not model.training_task_id:
            return model
        run = self.runs.find(model.training_task_id)
        if run is None:
            # The run record is written right after the model enters training; if it is
            # still missing a while later, writing it failed and nothing will ever report.
            if self.clock() > shift(model.updated_at, ORPHAN_GRACE_SECONDS):
                self.abandon(model.id, model.training_task_id, "failed",
                             "the training run was never recorded, so it could not start")
                return self.models.get(model.id)
            return model
        if not run.deadline_at or self.clock() <= run.deadline_at:
            return model
        try:
            self.finish(model.id, run.run_id, "failed",
                        reason=f"the trainer did not report a result before the run's deadline ({run.deadline_at})")
        except Conflict:
            pass  # the run ended meanwhile
        return self.models.get(model.id)
