"""Reporting of a batch prediction job: `.../predictions/{prediction_id}/{progress,complete,fail}`.

The training client (`trainer.callback`) does the HTTP work — retries of final reports, at most one of
them per process; this module points it at the prediction routes and adds the job's own progress:
`{"rows": n}`, posted at start, at most every TRAINER_PROGRESS_INTERVAL seconds while predicting, and
right before `_SUCCESS` is written. Each progress answer is also the control plane's word on whether the
job is still wanted: 409 (cancelled, or ended by a report), 401/404/410 (its model is gone) raise
RunEnded. Unreachable or 5xx: the job goes on (the complete report decides).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable

from trainer.callback import RUN_ENDED_STATUSES, CallbackClient, Interval, Reporter
from trainer.errors import RunEnded
from trainer.logs import get_logger

log = get_logger("predict.callback")
# Throttled progress posts wait at most this long: an unreachable API must not slow the job down.
PROGRESS_TIMEOUT = 2.0


class PredictionCallbackClient(CallbackClient):
    """The training client, posting under `/api/ml-models/{model_id}/predictions/{prediction_id}`."""

    def __init__(self, base_url: str, model_id: str, prediction_id: str, token: str, **kwargs) -> None:
        super().__init__(base_url, model_id, prediction_id, token, **kwargs)
        self.base = f"{base_url.rstrip('/')}/api/ml-models/{model_id}/predictions/{prediction_id}"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def still_wanted(self, rows: int, timeout: float | None = None) -> bool:
        """POST progress `{"rows": rows}`; False only when the answer says the job has ended."""
        import requests

        try:
            response = self.session.post(f"{self.base}/progress", data=json.dumps({"rows": int(rows)}),
                                         headers=self.headers, timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            log.warning("progress not delivered", extra={"rows": rows, "problem": f"{type(exc).__name__}: {exc}"})
            return True
        if response.status_code in RUN_ENDED_STATUSES:
            log.warning("the prediction job has ended", extra={"status": response.status_code,
                                                               "answer": response.text[:300]})
            return False
        if response.status_code >= 300:
            log.info("progress not accepted", extra={"status": response.status_code, "rows": rows})
        return True


class PredictionReporter(Reporter):
    """At most one final report: complete `{"rows", "error_rows"}` or fail `{"reason"}`."""

    def complete(self, rows: int, error_rows: int) -> bool:  # type: ignore[override]
        return self._final("complete", {"rows": int(rows), "error_rows": int(error_rows)}, "completed")


class RowProgress:
    """Progress of the rows predicted so far; `check()` posts now, `advance()` when the interval has passed.

    Both raise RunEnded when the control plane answers that the job has ended."""

    def __init__(self, client: PredictionCallbackClient, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.interval = client, Interval(interval, clock)
        self.rows = 0

    def check(self) -> None:
        self.interval.restart()
        self._post(timeout=None)

    def advance(self, rows: int) -> None:
        self.rows += rows
        if self.interval.due():
            self._post(timeout=min(self.client.timeout, PROGRESS_TIMEOUT))

    def _post(self, timeout: float | None) -> None:
        if not self.client.still_wanted(self.rows, timeout):
            raise RunEnded("the control plane answered that this prediction job has ended (cancelled or "
                           "failed); stopping without writing anything more")
