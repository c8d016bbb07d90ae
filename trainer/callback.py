"""HTTP reporting to the control plane: progress (best effort) and the one final report.

Final reports retry connection errors and 5xx with bounded exponential backoff; a 4xx
is final (a 409 on a repeated attempt means an earlier attempt was recorded).
`Reporter` guarantees at most one final report per process, even if SIGTERM races
the normal end.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator

from trainer.errors import RunEnded
from trainer.logs import get_logger

log = get_logger("callback")
MAX_BACKOFF = 30.0
# Answers to a progress report that mean the run is over: ended or superseded (409), or its
# token no longer known (401: the model and its runs were deleted).
RUN_ENDED_STATUSES = frozenset({401, 404, 409, 410})


class CallbackRejected(Exception):
    """The control plane answered 4xx, or every attempt failed."""


class CallbackClient:
    def __init__(
        self,
        base_url: str,
        model_id: str,
        run_id: str,
        token: str,
        *,
        attempts: int = 6,
        backoff: float = 1.0,
        timeout: float = 10.0,
        session=None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import requests

        self.base = f"{base_url.rstrip('/')}/api/ml-models/{model_id}/training"
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Training-Run-Id": run_id,
        }
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self.session = session or requests.Session()
        self.sleep = sleep

    def post_final(self, action: str, body: dict, attempts: int | None = None) -> None:
        """POST .../training/<action> until a 2xx; raises CallbackRejected on 4xx or when attempts run out."""
        import requests

        url, data = f"{self.base}/{action}", json.dumps(body, allow_nan=False)
        limit = attempts or self.attempts
        for attempt in range(1, limit + 1):
            try:
                response = self.session.post(url, data=data, headers=self.headers, timeout=self.timeout)
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status < 300 or (status == 409 and attempt > 1):
                    log.info("callback delivered", extra={"action": action, "status": status, "attempt": attempt})
                    return
                if status < 500:
                    raise CallbackRejected(f"{action} callback rejected with HTTP {status}: {response.text[:300]}")
                problem = f"HTTP {status}"
            log.warning("callback attempt failed", extra={"action": action, "attempt": attempt, "problem": problem})
            if attempt < limit:
                self.sleep(min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))
        raise CallbackRejected(f"{action} callback not delivered after {limit} attempt(s): {problem}")

    def post_progress(self, body: dict) -> None:
        """One short attempt; failures are logged and ignored."""
        import requests

        try:
            response = self.session.post(
                f"{self.base}/progress", data=json.dumps(body, allow_nan=False), headers=self.headers,
                timeout=min(self.timeout, 2.0),
            )
            if response.status_code >= 300:
                log.info("progress not accepted", extra={"status": response.status_code})
        except (requests.RequestException, ValueError) as exc:
            log.info("progress not delivered", extra={"problem": f"{type(exc).__name__}: {exc}"})

    def run_is_current(self, body: dict) -> bool:
        """A progress report that also asks whether this is still the model's current run: False only when
        the control plane answers that it is not (RUN_ENDED_STATUSES). Unreachable or 5xx: True, and the
        complete report's own retries decide (the API never promotes the artifact of a run that is over)."""
        import requests

        try:
            response = self.session.post(f"{self.base}/progress", data=json.dumps(body, allow_nan=False),
                                         headers=self.headers, timeout=self.timeout)
        except requests.RequestException as exc:
            log.warning("run check not delivered", extra={"problem": f"{type(exc).__name__}: {exc}"})
            return True
        if response.status_code in RUN_ENDED_STATUSES:
            log.warning("the run has ended", extra={"status": response.status_code, "answer": response.text[:300]})
            return False
        return True


class Reporter:
    """Sends at most one final report (complete or fail) per process."""

    def __init__(self, client: CallbackClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self.outcome: str | None = None  # "completed", "failed" or "undelivered"

    def complete(self, artifact_uri: str, performance_metrics: dict, training_metrics: dict) -> bool:
        body = {
            "model_artifact_path": artifact_uri,
            "performance_metrics": performance_metrics,
            "training_metrics": training_metrics,
        }
        return self._final("complete", body, "completed")

    def fail(self, reason: str, attempts: int | None = None) -> bool:
        return self._final("fail", {"reason": reason[:2000]}, "failed", attempts)

    def _final(self, action: str, body: dict, outcome: str, attempts: int | None = None) -> bool:
        with self._lock:
            if self.outcome is not None:
                log.info("final report already sent; not sending another", extra={"action": action})
                return False
            try:
                self.client.post_final(action, body, attempts)
            except CallbackRejected as exc:
                log.error("final report failed", extra={"action": action, "problem": str(exc)})
                if action == "fail":
                    self.outcome = "undelivered"
                return False
            self.outcome = outcome
            return True


class Interval:
    """At most once per `seconds`: `due()` is True the first time and once `seconds` have passed since the
    interval last (re)started, and restarts it; `restart()` restarts it (something was just sent anyway)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.last: float | None = None

    def due(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.seconds:
            return False
        self.last = now
        return True

    def restart(self) -> None:
        self.last = self.clock()


class ProgressThrottle:
    """An on_epoch hook: at most one progress post per epoch and per `interval` seconds."""

    def __init__(self, client: CallbackClient, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.interval = client, Interval(interval, clock)
        self.latest: dict = {"epoch": 0}  # the last epoch seen, posted or not (what `PublishGate` reports)

    def __call__(self, epoch: int, training_loss: float, validation_loss: float) -> None:
        self.latest = {"epoch": int(epoch)}
        if not self.interval.due():
            return
        self.client.post_progress(
            {"epoch": int(epoch), "training_loss": float(training_loss), "validation_loss": float(validation_loss)}
        )


class PublishGate:
    """Whether this run may still publish its artifact (a version exists once its manifest does).

    `check()` asks the control plane (`run_is_current`, with the latest progress) and raises RunEnded when
    the run was cancelled, superseded or failed. `publishing()` checks, then holds the gate while the
    manifest is written. `shut()` (SIGTERM) takes the gate for the rest of the process: a manifest being
    written is finished first, none is started after it.
    """

    def __init__(self, client: CallbackClient, progress: ProgressThrottle) -> None:
        self.client, self.progress = client, progress
        self._lock = threading.Lock()

    def check(self) -> None:
        if not self.client.run_is_current(self.progress.latest):
            raise RunEnded("the control plane answered that this run has ended (cancelled, superseded or "
                           "failed); nothing was published")

    @contextlib.contextmanager
    def publishing(self) -> Iterator[None]:
        self.check()
        with self._lock:
            yield

    def shut(self) -> None:
        self._lock.acquire()  # never released: the process exits
