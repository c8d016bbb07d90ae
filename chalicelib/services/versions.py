"""A model's versions: listing them, promoting one (rollback), and removing them with the model.

A version is a training run that succeeded: its record in the training-runs table keeps the
artifact location and metrics the complete callback accepted, and its artifact stays under
`<artifact bucket>/<prefix>/<model_id>/v<N>/`. No other store is needed. The model record
says which version is current (`version` and `model_artifact_path`); promoting a version
copies that version's fields onto the model.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalicelib.errors import Conflict, NotFound
from chalicelib.records import MlModel, TrainingRun
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, utc_now
from chalicelib.services.ml_models import current_version
from chalicelib.services.notifications import NullNotifier
from chalicelib.services.ports import ModelRepository, TrainingRunRepository
from chalicelib.services.training import RUNS_PREFIX

PREDICTIONS_PREFIX = "predictions"  # services/predictions.py writes each job's output under it
EVALUATIONS_PREFIX = "evaluations"  # services/evaluations.py: each evaluation's report.json

log = logging.getLogger("ml_models.versions")

MANIFEST = "manifest.json"
# A page of versions reads at most this many pages of runs (failed runs are skipped), so a model
# with a long run of failures still answers at once; the token continues where it stopped.
MAX_RUN_PAGES = 5


def trained_at(run: TrainingRun) -> str:
    """When the run succeeded (its history says), else when its record last changed."""
    return next((h["at"] for h in reversed(run.status_history) if h.get("status") == "succeeded"), run.updated_at)


class ModelVersionService:
    def __init__(self, models: ModelRepository, runs: TrainingRunRepository, documents: Any, *,
                 artifact_bucket: str, artifact_prefix: str = "models", notifier: Any = None,
                 clock: Clock = utc_now, jobs: Any = None) -> None:
        self.models = models
        self.runs = runs
        # The model's prediction jobs (ports.ModelJobRepository), removed with it; None: none kept.
        self.jobs = jobs
        # Stops a model's running jobs before their records and outputs go (PredictionService.stop_all);
        # set by the composition root, which builds the prediction service lazily.
        self.stop_jobs: Callable[[str], int] | None = None
        # The artifact bucket's documents and objects (adapters/s3.py DocumentStore).
        self.documents = documents
        self.artifact_bucket = artifact_bucket
        self.artifact_prefix = artifact_prefix.strip("/")
        self.notifier = notifier or NullNotifier()
        self.clock = clock

    def list(self, model_id: str, limit: str | None, next_token: str | None) -> dict[str, Any]:
        """The model's versions, newest first, and which one is current."""
        model = self.models.get(model_id)
        size = v.limit(limit)
        found: list[TrainingRun] = []
        token = next_token
        for _ in range(MAX_RUN_PAGES):
            runs, token = self.runs.list_by_model(model_id, size - len(found), token)
            found.extend(r for r in runs if r.status == "succeeded")
            if token is None or len(found) >= size:
                break
        current = current_version(model)
        return {"versions": [self.view(r, current) for r in found], "current_version": current,
                "next_token": token}

    def view(self, run: TrainingRun, current: int | None) -> dict[str, Any]:
        return {
            "version": run.version, "run_id": run.run_id, "model_artifact_path": run.model_artifact_path,
            "performance_metrics": run.performance_metrics, "training_metrics": run.training_metrics,
            "trained_at": trained_at(run), "storage_ids": list(run.storage_ids),
            # The objects read (uri, ETag, size, rows; the first 100, all of them in the manifest).
            "data": {"storage_uris": list(run.storage_uris), "manifest": run.model_artifact_path + MANIFEST,
                     **run.data_lineage},
            "current": run.version == current,
        }

    def promote(self, model_id: str, version: str | int) -> dict[str, Any]:
        """Make `version` the model's current one: its artifact and metrics, status `trained`."""
        self.models.get(model_id)  # an unknown model is a 404 about the model, not the version
        run = self._version(model_id, version)
        previous: dict[str, Any] = {}

        def promote(current: MlModel) -> MlModel:
            if current.status == "training":
                raise Conflict(f"model '{model_id}' is training; a version can be promoted once the run ends",
                               field="status", current_status=current.status)
            previous.update(status=current.status, version=current_version(current))
            return current.but(status="trained", version=run.version, model_artifact_path=run.model_artifact_path,
                               performance_metrics=run.performance_metrics, training_metrics=run.training_metrics,
                               trained_at=trained_at(run), updated_at=self.clock())

        saved = self.models.modify(model_id, promote, field="status")
        log.info("version_promoted", extra={"model_id": model_id, "run_id": run.run_id, "version": run.version,
                                            "previous_version": previous["version"]})
        self.notifier.model_version_promoted(saved, previous["version"])
        if saved.status != previous["status"]:
            self.notifier.model_status_changed(saved, previous_status=previous["status"], run_id=run.run_id)
        return saved.public()

    def _version(self, model_id: str, version: str | int) -> TrainingRun:
        text = str(version)
        run = self.runs.find_version(model_id, int(text)) if text.isdigit() and len(text) <= 9 else None
        if run is None or run.status != "succeeded":
            raise NotFound(f"version '{text}' of model '{model_id}' does not exist", field="version")
        return run

    def remove_remains(self, model: MlModel) -> None:
        """After the model record is deleted: its runs, artifacts and run specs. Best effort: what fails is
        logged (with what was left) and the delete still succeeds; the record is gone for every caller."""
        steps: list[tuple[str, Callable[[], int]]] = [
            *([("running prediction jobs", lambda: self.stop_jobs(model.id))] if self.stop_jobs else []),
            ("training runs", lambda: self.runs.delete_by_model(model.id)),
            ("artifacts", lambda: self.documents.delete_prefix(self.artifact_bucket, self._artifacts(model.id))),
            ("run specs", lambda: self.documents.delete_prefix(self.artifact_bucket, f"{RUNS_PREFIX}/{model.id}/")),
            ("prediction outputs", lambda: self.documents.delete_prefix(
                self.artifact_bucket, f"{PREDICTIONS_PREFIX}/{model.id}/")),
            ("evaluation reports", lambda: self.documents.delete_prefix(
                self.artifact_bucket, f"{EVALUATIONS_PREFIX}/{model.id}/")),
        ]
        if self.jobs is not None:
            steps.append(("prediction and evaluation jobs", lambda: self.jobs.delete_by_model(model.id)))
        for what, step in steps:
            try:
                count = step()
            except Exception as exc:  # noqa: BLE001 — the model is deleted already; say what was left behind
                log.warning("model_remains_left", extra={"model_id": model.id, "what": what,
                                                         "error": type(exc).__name__}, exc_info=exc)
                continue
            log.info("model_remains_deleted", extra={"model_id": model.id, "what": what, "count": count})

    def _artifacts(self, model_id: str) -> str:
        root = f"{self.artifact_prefix}/" if self.artifact_prefix else ""
        return f"{root}{model_id}/"
