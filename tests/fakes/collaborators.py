"""Small fakes the services take besides repositories: clock, ids, notifier, S3 documents, credentials."""
from __future__ import annotations

import copy
from typing import Any

from chalicelib.adapters.s3 import S3Location
from chalicelib.adapters.sts import RunCredentials
from chalicelib.errors import InvalidInput
from chalicelib.services.run_settlement import shift


class SteppingClock:
    """A fixed clock a test advances (utc_now's format)."""

    def __init__(self, now: str = "2026-01-01T00:00:00.000000Z") -> None:
        self.now = now

    def __call__(self) -> str:
        return self.now

    def advance(self, seconds: int) -> str:
        self.now = shift(self.now, seconds)
        return self.now


class CountingIds:
    """`prefix-1`, `prefix-2`, ... (one counter per prefix)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return f"{prefix}-{self.counts[prefix]}"


class RecordingNotifier:
    """Keeps what subscribers would have been told, as (event, model id, details) tuples."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def model_status_changed(self, model, previous_status: str | None, run_id: str = "") -> None:
        self.events.append(("status", model.id, previous_status, model.status, run_id))

    def model_deleted(self, model) -> None:
        self.events.append(("deleted", model.id))

    def model_version_promoted(self, model, previous_version: int | None) -> None:
        self.events.append(("promoted", model.id, previous_version, model.version))

    def training_progress(self, model, run_id: str, progress: dict[str, Any]) -> None:
        self.events.append(("progress", model.id, run_id, dict(progress)))

    def training_cancelled(self, run) -> None:
        self.events.append(("cancelled", run.model_id, run.run_id))

    def job_status_changed(self, job, previous_status: str | None) -> None:
        self.events.append((job.kind, job.id, previous_status, job.status))


class MemoryDocuments:
    """The DocumentStore (adapters/s3.py) over a dict of (bucket, key) → JSON document."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Any] = {}

    def put_json(self, bucket: str, key: str, document: Any) -> str:
        self.objects[(bucket, key)] = copy.deepcopy(document)
        return f"s3://{bucket}/{key}"

    def get_json(self, bucket: str, key: str, max_bytes: int) -> Any | None:
        return copy.deepcopy(self.objects.get((bucket, key)))

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        gone = [k for k in self.objects if k[0] == bucket and k[1].startswith(prefix)]
        for k in gone:
            del self.objects[k]
        return len(gone)


class FakeCredentialIssuer:
    """Issues numbered credentials and keeps each (session name, policy) it was asked for."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.issued: list[RunCredentials] = []

    def issue(self, session_name: str, policy: dict) -> RunCredentials:
        self.requests.append((session_name, copy.deepcopy(policy)))
        n = len(self.requests)
        self.issued.append(RunCredentials(access_key_id=f"ASIA{n:04d}", secret_access_key=f"secret-{n}",
                                          session_token=f"session-{n}", expiration=f"2026-01-01T0{n % 10}:00:00Z"))
        return self.issued[-1]


class FakeS3:
    """`check_readable` of the S3 adapter: locations under `unreadable` are refused."""

    def __init__(self, unreadable: tuple[str, ...] = ()) -> None:
        self.unreadable = unreadable
        self.checked: list[S3Location] = []

    def check_readable(self, location: S3Location) -> int:
        self.checked.append(location)
        if any(location.uri.startswith(u) for u in self.unreadable):
            raise InvalidInput(f"cannot read {location.uri}", field="uri")
        return 1


class CannedPredictor:
    """The online predictor (adapters/predictor.py) answering as trainer/predictor.py would for a two-class
    model: "yes" for every instance (or raising what a test sets in `raise_with`). It records each payload."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []
        self.raise_with: Exception | None = None

    def predict(self, payload: dict) -> dict:
        self.payloads.append(payload)
        if self.raise_with is not None:
            raise self.raise_with
        return {"model_id": payload["model_id"], "version": payload["version"],
                "predictions": ["yes" for _ in payload["instances"]],
                "probabilities": [[0.25, 0.75] for _ in payload["instances"]], "classes": ["no", "yes"]}
