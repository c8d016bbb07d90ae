"""Training runs: accepting a train request, launching the trainer, and its callbacks.

A run moves queued → submitted → running → succeeded | failed (or cancelled).
The model record is the source of truth for "what is training now": it moves
into `training` with one optimistic-locked write that also allocates the run's
version number, so of N concurrent requests exactly one wins. Every way out of
`training` (trainer callback, failed submission, launcher noticing a dead
trainer) goes through `_finish`, which only acts for the model's current run.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamo import ModelRepository, OntologyRepository, TrainingRunRepository
from chalicelib.adapters.launcher import JobLauncher, TrainingJob
from chalicelib.adapters.s3 import parse_s3_uri
from chalicelib.errors import Conflict, DomainError, InvalidInput, NotFound, Unauthorized, UpstreamUnavailable
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now
from chalicelib.services.notifications import NullNotifier
from chalicelib.services.storage_configs import StorageConfigService

log = logging.getLogger("ml_models.training")

NOT_TRAINABLE = ("training", "archived", "deprecated")
RUN_STATUSES = ("queued", "submitted", "running", "succeeded", "failed", "cancelled")
FINAL_RUN_STATUSES = ("succeeded", "failed", "cancelled")
COMPLETED = {"status": "training completed"}
FAILED = {"status": "training failed"}
MAX_REASON = 2000
# A model in training whose run record is still missing after this long is taken out of training.
ORPHAN_GRACE_SECONDS = 600


def shift(timestamp: str, seconds: int) -> str:
    """An ISO-8601 UTC timestamp (utc_now's format) moved by `seconds`."""
    moved = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) + timedelta(
        seconds=seconds)
    return moved.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
        raise Unauthorized("missing bearer token: send Authorization: Bearer <run token>", field="Authorization")
    return authorization[7:].strip()


class TrainingService:
    def __init__(self, models: ModelRepository, ontologies: OntologyRepository, runs: TrainingRunRepository,
                 storage_configs: StorageConfigService, launcher: JobLauncher, spec_store: Any,
                 callback_base_url: str, artifact_bucket: str, artifact_prefix: str,
                 trainer_env: dict[str, str] | None = None, notifier: Any = None,
                 deadline_seconds: int = 6 * 3600 + 600, clock: Clock = utc_now, ids: IdFactory = new_id) -> None:
        self.models = models
        self.ontologies = ontologies
        self.runs = runs
        self.storage_configs = storage_configs
        self.launcher = launcher
        self.spec_store = spec_store
        self.callback_base_url = callback_base_url
        self.artifact_bucket = artifact_bucket
        self.artifact_prefix = artifact_prefix
        self.trainer_env = trainer_env or {}
        self.deadline_seconds = deadline_seconds
        self.notifier = notifier or NullNotifier()
        self.clock = clock
        self.ids = ids

    # ---- the train route -------------------------------------------------------------

    def start(self, body: Any, request_base_url: str = "") -> dict[str, Any]:
        """Accept a train request. Callbacks go to the configured base URL, else to the
        URL this request came in through (API Gateway's domain and stage)."""
        body = v.require_object(body)
        v.reject_unknown(body, ("model_id", "storage_ids", "training_config"))
        model_id = v.string(body, "model_id", required=True, max_len=v.MAX_ID)
        storage_ids = body.get("storage_ids") or []
        if not isinstance(storage_ids, list) or not all(isinstance(s, str) and s for s in storage_ids):
            raise InvalidInput("storage_ids must be an array of storage config ids", field="storage_ids")
        override = v.training_config(body.get("training_config"), with_defaults=False)

        model = self.models.get(model_id)
        self._check_trainable(model)
        storage = self.storage_configs.resolve(model["project_id"], list(dict.fromkeys(storage_ids)))
        ontology = self.ontologies.get(model["ontology_id"])
        config = {**model["training_config"], **override}

        run_id = self.ids("run")
        model, previous_status = self._enter_training(model_id, run_id)
        token = secrets.token_urlsafe(32)
        try:
            run = self._record_run(model, run_id, previous_status, config, storage, token)
        except Exception:
            self._abandon(model_id, run_id, previous_status, "the training run could not be recorded")
            raise
        self.notifier.model_status_changed(self.models.public(model), previous_status, run_id)
        try:
            spec_uri = self._write_spec(model, run, ontology, storage, config)
            job = TrainingJob(run_id=run_id, model_id=model_id, project_id=model["project_id"],
                              model_type=model["type"], callback_token=token,
                              environment=self._trainer_environment(model_id, run_id, spec_uri,
                                                                    self.callback_base_url or request_base_url))
            job_name = self.launcher.submit(job)
        except Exception as exc:
            reason = exc.message if isinstance(exc, DomainError) else f"could not submit the training job: {exc}"
            log.warning(json.dumps({"event": "submission_failed", "model_id": model_id, "run_id": run_id,
                                    "reason": reason}))
            self._finish(model_id, run_id, "failed", reason=f"submission failed: {reason}",
                         model_status=previous_status)
            if isinstance(exc, DomainError):
                raise
            raise UpstreamUnavailable(f"the training job could not be submitted: {exc}", field="model_id",
                                      run_id=run_id) from exc
        self._update_run(run_id, lambda r: {**r, "job_name": job_name,
                                            **self._status(r, "submitted", "job submitted")})
        log.info(json.dumps({"event": "training_submitted", "model_id": model_id, "run_id": run_id,
                             "job_name": job_name}))
        return self.models.public(self.models.get(model_id))

    def _check_trainable(self, model: dict[str, Any]) -> None:
        if model["status"] in NOT_TRAINABLE:
            raise Conflict(f"model '{model['id']}' is {model['status']}; training cannot start",
                           field="status", current_status=model["status"])

    def _enter_training(self, model_id: str, run_id: str) -> tuple[dict[str, Any], str]:
        """Move the model into training and allocate the run's version, in one locked write."""
        previous: dict[str, str] = {}

        def enter(current: dict[str, Any]) -> dict[str, Any]:
            self._check_trainable(current)
            previous["status"] = current["status"]
            return {**current, "status": "training", "training_task_id": run_id,
                    "runs_started": (current.get("runs_started") or 0) + 1, "updated_at": self.clock()}

        return self.models.modify(model_id, enter, field="model_id"), previous["status"]

    def _record_run(self, model: dict[str, Any], run_id: str, previous_status: str, config: dict[str, Any],
                    storage: list[dict[str, Any]], token: str) -> dict[str, Any]:
        now = self.clock()
        return self.runs.add({
            "run_id": run_id, "model_id": model["id"], "project_id": model["project_id"],
            "version": int(model["runs_started"]), "model_type": model["type"], "status": "queued",
            "status_history": [{"status": "queued", "at": now, "note": "training accepted"}],
            "training_config": config, "storage_ids": [s["id"] for s in storage],
            "storage_uris": [s["uri"] for s in storage], "previous_model_status": previous_status,
            "callback_token_hash": token_hash(token), "created_at": now, "updated_at": now,
            "deadline_at": shift(now, self.deadline_seconds),
        })

    def _write_spec(self, model: dict[str, Any], run: dict[str, Any], ontology: dict[str, Any],
                    storage: list[dict[str, Any]], config: dict[str, Any]) -> str:
        spec = {
            "model_id": model["id"], "run_id": run["run_id"], "model_type": model["type"],
            "version": run["version"],
            "ontology": {"id": ontology["id"], "content": ontology["content"]},
            "storage": [{"id": s["id"], "uri": s["uri"], "format": s["format"]} for s in storage],
            "training_config": config,
        }
        key = f"runs/{model['id']}/{run['run_id']}/spec.json"
        return self.spec_store.put_json(self.artifact_bucket, key, spec)

    def _trainer_environment(self, model_id: str, run_id: str, spec_uri: str, callback_url: str) -> dict[str, str]:
        return {
            **self.trainer_env,
            "TRAINER_MODEL_ID": model_id,
            "TRAINER_RUN_ID": run_id,
            "TRAINER_CALLBACK_URL": callback_url.rstrip("/"),
            "TRAINER_SPEC_URI": spec_uri,
            "TRAINER_ARTIFACT_BUCKET": self.artifact_bucket,
            "TRAINER_ARTIFACT_PREFIX": self.artifact_prefix,
        }

    # ---- runs ------------------------------------------------------------------------

    def list_runs(self, model_id: str, limit: str | None, next_token: str | None) -> dict[str, Any]:
        self.models.get(model_id)
        items, token = self.runs.list_by_model(model_id, v.limit(limit), next_token)
        return {"runs": [self.runs.public(r) for r in items], "next_token": token}

    def get_run(self, model_id: str, run_id: str) -> dict[str, Any]:
        run = self.runs.find(run_id)
        if run is None or run["model_id"] != model_id:
            raise NotFound(f"training run '{run_id}' does not exist for model '{model_id}'", field="run_id")
        return self.runs.public(run)

    # ---- callbacks -------------------------------------------------------------------

    def authenticate(self, model_id: str, authorization: str | None, run_id: str | None) -> dict[str, Any]:
        """The run this callback speaks for, after a constant-time check of its token."""
        token = bearer_token(authorization)
        if not run_id:
            run_id = self.models.get(model_id)["training_task_id"]
        run = self.runs.find(run_id) if run_id else None
        expected = run["callback_token_hash"] if run and run["model_id"] == model_id else token_hash("")
        if not hmac.compare_digest(token_hash(token), expected) or run is None:
            raise Unauthorized("the bearer token is not valid for this model's training run", field="Authorization")
        return run

    def complete(self, model_id: str, authorization: str | None, run_id: str | None, body: Any) -> dict[str, Any]:
        run = self.authenticate(model_id, authorization, run_id)
        body = v.require_object(body)
        v.reject_unknown(body, ("model_artifact_path", "performance_metrics", "training_metrics"))
        path = v.string(body, "model_artifact_path", required=True, max_len=1024)
        parse_s3_uri(path, field="model_artifact_path")
        performance = v.finite_metrics(body.get("performance_metrics") or {}, "performance_metrics")
        training = v.finite_metrics(body.get("training_metrics") or {}, "training_metrics")
        if run["status"] == "succeeded":
            return COMPLETED  # a repeated callback: already recorded
        self._finish(model_id, run["run_id"], "succeeded", artifact=path, performance=performance,
                     training=training)
        return COMPLETED

    def fail(self, model_id: str, authorization: str | None, run_id: str | None, body: Any) -> dict[str, Any]:
        run = self.authenticate(model_id, authorization, run_id)
        body = v.require_object(body)
        v.reject_unknown(body, ("reason",))
        reason = v.string(body, "reason", required=True, max_len=MAX_REASON)
        if run["status"] == "failed":
            return FAILED
        self._finish(model_id, run["run_id"], "failed", reason=reason)
        return FAILED

    def progress(self, model_id: str, authorization: str | None, run_id: str | None, body: Any) -> dict[str, Any]:
        """The trainer's per-epoch report: kept in training_metrics and sent to subscribers."""
        run = self.authenticate(model_id, authorization, run_id)
        body = v.require_object(body)
        v.reject_unknown(body, ("epoch", "training_loss", "validation_loss"))
        epoch = body.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise InvalidInput("epoch must be a non-negative integer", field="epoch")
        progress = {"epoch": epoch}
        for key in ("training_loss", "validation_loss"):
            if key in body:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise InvalidInput(f"{key} must be a finite number", field=key)
                progress[key] = value
        if run["status"] in FINAL_RUN_STATUSES:
            raise Conflict(f"training run '{run['run_id']}' already ended as {run['status']}", field="run_id")
        updated = self._change_training_model(model_id, run["run_id"], lambda model: {
            **model, "training_metrics": {**model["training_metrics"], **progress}, "updated_at": self.clock()})
        if run["status"] != "running":
            self._update_run(run["run_id"], lambda r: {**r, **self._status(r, "running", "trainer reported progress")}
                             if r["status"] in ("queued", "submitted") else r)
        self.notifier.training_progress(self.models.public(updated), run["run_id"], progress)
        return {"status": "progress recorded"}

    # ---- ending a run ----------------------------------------------------------------

    def expire_if_overdue(self, model: dict[str, Any]) -> dict[str, Any]:
        """Fail the model's run if it is past its deadline without a report; return the model as it is now.

        A trainer killed without a chance to report (OOM kill, lost node) sends no
        callback. Reads of the model notice the deadline has passed, so the model
        never stays in `training`.
        """
        if model["status"] != "training" or not model["training_task_id"]:
            return model
        run = self.runs.find(model["training_task_id"])
        if run is None:
            # The run record is written right after the model enters training; if it is
            # still missing a while later, writing it failed and nothing will ever report.
            if self.clock() > shift(model["updated_at"], ORPHAN_GRACE_SECONDS):
                self._abandon(model["id"], model["training_task_id"], "failed",
                              "the training run was never recorded, so it could not start")
                return self.models.public(self.models.get(model["id"]))
            return model
        if not run.get("deadline_at") or self.clock() <= run["deadline_at"]:
            return model
        try:
            self._finish(model["id"], run["run_id"], "failed",
                         reason=f"the trainer did not report a result before the run's deadline ({run['deadline_at']})")
        except Conflict:
            pass  # the run ended meanwhile
        return self.models.public(self.models.get(model["id"]))


    def _finish(self, model_id: str, run_id: str, outcome: str, *, reason: str = "", artifact: str = "",
                performance: dict | None = None, training: dict | None = None,
                model_status: str | None = None) -> None:
        """End `run_id`: the model leaves `training` (only if this is its current run), then the run."""
        run = self.runs.get(run_id)
        if run["status"] in FINAL_RUN_STATUSES:
            raise Conflict(f"training run '{run_id}' already ended as {run['status']}", field="run_id",
                           run_status=run["status"])
        now = self.clock()

        def leave_training(model: dict[str, Any]) -> dict[str, Any]:
            metadata = dict(model["metadata"])
            if outcome == "succeeded":
                metadata.pop("failure_reason", None)
                return {**model, "status": "trained", "version": run["version"], "trained_at": now,
                        "model_artifact_path": artifact, "performance_metrics": performance or {},
                        "training_metrics": training or {}, "metadata": metadata, "updated_at": now}
            metadata["failure_reason"] = reason
            updated = {**model, "status": model_status or "failed", "metadata": metadata, "updated_at": now}
            if model_status is not None:  # the job never ran: put the model back as it was
                updated["training_task_id"] = ""
            return updated

        updated = self._change_training_model(model_id, run_id, leave_training)

        def end(r: dict[str, Any]) -> dict[str, Any]:
            extra = {"model_artifact_path": artifact, "performance_metrics": performance or {},
                     "training_metrics": training or {}} if outcome == "succeeded" else {"failure_reason": reason}
            return {**r, **extra, **self._status(r, outcome, reason or "trainer reported completion")}

        self._update_run(run_id, end)
        log.info(json.dumps({"event": f"training_{outcome}", "model_id": model_id, "run_id": run_id,
                             "reason": reason}))
        self.notifier.model_status_changed(self.models.public(updated), "training", run_id)

    def _abandon(self, model_id: str, run_id: str, status: str, reason: str) -> None:
        """Take the model out of a run that has no run record (so `_finish` cannot end it)."""

        def leave(model: dict[str, Any]) -> dict[str, Any]:
            return {**model, "status": status, "training_task_id": "", "updated_at": self.clock(),
                    "metadata": {**model["metadata"], "failure_reason": reason}}

        try:
            updated = self._change_training_model(model_id, run_id, leave)
        except Conflict:
            return  # it moved on meanwhile
        log.warning(json.dumps({"event": "training_abandoned", "model_id": model_id, "run_id": run_id,
                                "reason": reason}))
        self.notifier.model_status_changed(self.models.public(updated), "training", run_id)

    def _change_training_model(self, model_id: str, run_id: str,
                               change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Apply `change` to the model while `run_id` is its current training run (409 otherwise)."""

        def while_current(model: dict[str, Any]) -> dict[str, Any]:
            if model["status"] != "training" or model["training_task_id"] != run_id:
                raise Conflict(f"training run '{run_id}' is not the current run of model '{model_id}'",
                               field="run_id", current_status=model["status"])
            return change(model)

        return self.models.modify(model_id, while_current)

    def _status(self, run: dict[str, Any], status: str, note: str) -> dict[str, Any]:
        now = self.clock()
        history = list(run["status_history"]) + [{"status": status, "at": now, "note": note[:500]}]
        return {"status": status, "status_history": history, "updated_at": now}

    def _update_run(self, run_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        return self.runs.modify(run_id, change)
