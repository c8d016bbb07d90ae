"""The monitoring schedule: starts an evaluation for each monitored model whose turn has come.

A scheduled function (every minute in AWS; the local stack's timer) queries the models' due index
(monitor_shard = "due", next_evaluation_at ≤ now: a keys-only Query, never a Scan) and claims each due
model by moving its next_evaluation_at on by `every_minutes` in one optimistic-locked write that is
conditional on the value it read. Of two schedulers firing together exactly one claim succeeds, so each
due turn starts one evaluation. A claimed model that cannot be evaluated (no trained version, a storage
config deleted since) is logged and waits for its next turn. At most `max_models` per sweep.
"""
from __future__ import annotations

import logging
from typing import Any

from chalicelib.errors import Conflict, DomainError
from chalicelib.records import MlModel
from chalicelib.services.common import Clock, utc_now
from chalicelib.services.ports import ModelRepository
from chalicelib.services.run_settlement import shift

log = logging.getLogger("ml_models.monitoring")


class MonitoringScheduler:
    def __init__(self, models: ModelRepository, evaluations: Any, *, max_models: int = 50,
                 clock: Clock = utc_now) -> None:
        self.models = models
        # services/evaluations.py EvaluationService: create(model_id, body) starts one.
        self.evaluations = evaluations
        self.max_models = max_models
        self.clock = clock

    def start_due(self) -> dict[str, Any]:
        now = self.clock()
        started, skipped, failed = [], 0, 0
        for model_id in self.models.list_due(now, self.max_models):
            claimed = self._claim(model_id, now)
            if claimed is None:
                skipped += 1
                continue
            try:
                job = self.evaluations.create(model_id, {"storage_ids": claimed.monitoring["storage_ids"]})
            except DomainError as exc:
                failed += 1
                log.warning("scheduled_evaluation_not_started", extra={"model_id": model_id, "reason": exc.message})
                continue
            started.append(job["id"])
        summary = {"evaluations_started": len(started), "skipped": skipped, "not_started": failed}
        log.info("monitoring_sweep", extra=summary)
        return summary

    def _claim(self, model_id: str, now: str) -> MlModel | None:
        """Move the model's next turn on, if it is still due as read; None if another scheduler (or a change
        of its monitoring) came first."""
        seen: dict[str, str | None] = {}

        def claim(model: MlModel) -> MlModel:
            if "at" not in seen:
                seen["at"] = model.next_evaluation_at
            if (not model.monitoring or model.next_evaluation_at is None or model.next_evaluation_at > now
                    or model.next_evaluation_at != seen["at"]):
                raise Conflict(f"model '{model_id}' is not due", field="next_evaluation_at")
            every = int(model.monitoring.get("every_minutes", 60)) * 60
            return model.but(next_evaluation_at=shift(now, every))

        try:
            return self.models.modify(model_id, claim)
        except Conflict:
            return None
        except DomainError as exc:  # gone, or the store did not answer: the next sweep sees it again
            log.warning("monitoring_claim_failed", extra={"model_id": model_id, "reason": exc.message})
            return None
