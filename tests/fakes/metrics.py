"""A RunMetrics twin that records what the services count (chalicelib/observability.py)."""
from __future__ import annotations


class RecordingRunMetrics:
    def __init__(self) -> None:
        self.counts: list[tuple[str, dict]] = []

    def run_accepted(self, model_id: str, run_id: str) -> None:
        self.counts.append(("accepted", {"model_id": model_id, "run_id": run_id}))

    def run_ended(self, outcome: str, model_id: str, run_id: str) -> None:
        self.counts.append((outcome, {"model_id": model_id, "run_id": run_id}))

    def callback_rejected(self, action: str, status: int, model_id: str, run_id: str | None) -> None:
        self.counts.append(("callback_rejected", {"action": action, "status": status, "model_id": model_id,
                                                  "run_id": run_id}))

    def names(self) -> list[str]:
        return [name for name, _ in self.counts]
