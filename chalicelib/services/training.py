"""Training runs: accepting a train request, launching the trainer, and its callbacks.

A run moves queued → submitted → running → succeeded | failed, or from any of the first
three → cancelling → cancelled (`cancel`: the model goes back to the status it had before
the run at the first arrow, then the job is told to stop).
The model record is the source of truth for "what is training now": it moves
into `training` with one optimistic-locked write that also allocates the run's
version number, so of N concurrent requests exactly one wins. Every way out of
`training` goes through `RunSettlement.finish`, which only acts for the model's
current run.

The server decides where a run reads and writes: its data must lie in the
project's data location (`DataScope`), its artifact goes to
`<artifact bucket>/<prefix>/<model_id>/v<version>/` and nowhere else (the complete
callback is refused for any other path, and only accepted once the manifest there
names this run), and the trainer gets per-run AWS credentials whose session policy
allows exactly that.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.launcher import JobLauncher, TrainingJob, job_name
from chalicelib.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    StaleRecord,
    TooManyRequests,
    Unauthorized,
    UpstreamUnavailable,
)
from chalicelib.observability import NullRunMetrics, RunMetrics, bind
from chalicelib.records import MlModel, Ontology, StorageConfig, TrainingRun
from chalicelib.services import result_summary
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now
from chalicelib.services.data_scope import DataScope
from chalicelib.services.notifications import NullNotifier
from chalicelib.services.ports import (
    RETRIES_ON_STALE,
    ModelRepository,
    OntologyRepository,
    TrainingRunRepository,
    TrainingStarts,
)
from chalicelib.services.run_settlement import FINAL_RUN_STATUSES, RunSettlement, shift
from chalicelib.services.storage_configs import StorageConfigService
from chalicelib.trainer_contract import trainer_environment

log = logging.getLogger("ml_models.training")

NOT_TRAINABLE = ("training", "archived", "deprecated")
RUN_STATUSES = ("queued", "submitted", "running", "cancelling", "succeeded", "failed", "cancelled")
COMPLETED = {"status": "training completed"}
FAILED = {"status": "training failed"}
MAX_REASON = 2000
MAX_STORAGE_IDS = 20
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
RUNS_PREFIX = "runs"
# When a project is at its limit of concurrent runs: the Retry-After of the 429 (runs take minutes).
CAPACITY_RETRY_AFTER_SECONDS = 60


MAX_LINEAGE_OBJECTS = 100


def data_lineage(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the run read, from its manifest's "data", for the run record: the objects (uri, ETag, size,
    rows) up to MAX_LINEAGE_OBJECTS, with the total (all of them stay in the manifest)."""
    data = manifest.get("data") if isinstance(manifest.get("data"), dict) else {}
    objects = [o for o in data.get("objects") or [] if isinstance(o, dict)]
    keep = [{k: o.get(k) for k in ("uri", "etag", "size", "rows") if isinstance(o.get(k), (str, int))}
            for o in objects[:MAX_LINEAGE_OBJECTS]]
    lineage: dict[str, Any] = {"objects": keep, "objects_total": len(objects)}
    for key in ("synthetic", "rows"):
        if isinstance(data.get(key), (bool, int)):
            lineage[key] = data[key]
    return lineage


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
        raise Unauthorized("missing bearer token: send Authorization: Bearer <run token>", field="Authorization")
    return authorization[7:].strip()


def counts_rejections(action: str) -> Callable:
    """A trainer callback whose refusal (401 bad token, 409 run not current or already ended) is
    counted (`RunMetrics.callback_rejected`): a rising count is a trainer or a caller to look at."""

    def decorate(method: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @functools.wraps(method)
        def counted(self: TrainingService, model_id: str, authorization: str | None, run_id: str | None,
                    body: Any) -> dict[str, Any]:
            try:
                return method(self, model_id, authorization, run_id, body)
            except (Unauthorized, Conflict) as exc:
                self.metrics.callback_rejected(action, exc.status, model_id, run_id)
                raise

        return counted

    return decorate


# A search trial's report (`progress` with `tuning`): every key optional, each checked.
TUNING_PROGRESS_INTEGERS = ("trial", "trials_done", "max_trials", "budget_seconds")
TUNING_PROGRESS_NUMBERS = ("score", "best_score", "elapsed_seconds")
TUNING_TRIAL_STATES = ("complete", "pruned", "failed")


def tuning_progress(value: Any) -> dict[str, Any]:
    body = v.require_object(value, "tuning")
    v.reject_unknown(body, (*TUNING_PROGRESS_INTEGERS, *TUNING_PROGRESS_NUMBERS, "state", "metric"), "tuning")
    for key in TUNING_PROGRESS_INTEGERS:
        if body.get(key) is not None:
            v.count(body[key], f"tuning.{key}")
    for key in TUNING_PROGRESS_NUMBERS:
        if body.get(key) is not None:
            v.finite_number(body[key], f"tuning.{key}")
    if body.get("state") is not None and body["state"] not in TUNING_TRIAL_STATES:
        raise InvalidInput(f"tuning.state must be one of {', '.join(TUNING_TRIAL_STATES)}", field="tuning.state")
    if body.get("metric") is not None and (not isinstance(body["metric"], str) or len(body["metric"]) > 64):
        raise InvalidInput("tuning.metric must be a metric name", field="tuning.metric")
    return dict(body)


class TrainingService:
    def __init__(self, models: ModelRepository, ontologies: OntologyRepository, runs: TrainingRunRepository,
                 storage_configs: StorageConfigService, launcher: JobLauncher, documents: Any,
                 settlement: RunSettlement, scope: DataScope, *, starts: TrainingStarts, callback_base_url: str,
                 artifact_bucket: str,
                 artifact_prefix: str, region: str, endpoint_url: str | None = None, credentials: Any = None,
                 notifier: Any = None, metrics: RunMetrics | None = None,
                 deadline_seconds: int = 6 * 3600 + 600, grace_seconds: int = 600,
                 tuning_margin_seconds: int = 900, max_concurrent_runs: int = 5,
                 cancel_grace_seconds: int = 30,
                 clock: Clock = utc_now, ids: IdFactory = new_id) -> None:
        self.models = models
        self.ontologies = ontologies
        self.runs = runs
        # Writes the model's entry into training and the run record in one transaction.
        self.starts = starts
        self.storage_configs = storage_configs
        self.launcher = launcher
        # Reads and writes the run's JSON documents in S3 (its spec, its manifest).
        self.documents = documents
        self.settlement = settlement
        self.scope = scope
        self.callback_base_url = callback_base_url
        self.artifact_bucket = artifact_bucket
        self.artifact_prefix = artifact_prefix.strip("/")
        self.region = region
        self.endpoint_url = endpoint_url
        # Issues per-run AWS credentials (adapters/sts.py); None: the trainer uses its own role.
        self.credentials = credentials
        # A run that has not reported this long after acceptance is failed: the Job's own deadline plus
        # `grace_seconds` for the trainer's fail report to arrive.
        self.deadline_seconds = deadline_seconds
        self.grace_seconds = grace_seconds
        # A tuned run's Job may run its search budget plus this margin (loading, the final fit, saving).
        self.tuning_margin_seconds = tuning_margin_seconds
        self.max_concurrent_runs = max_concurrent_runs
        # SIGTERM to SIGKILL for a cancelled trainer (as the EKS pod's terminationGracePeriodSeconds).
        self.cancel_grace_seconds = cancel_grace_seconds
        self.notifier = notifier or NullNotifier()
        self.metrics = metrics or NullRunMetrics()
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
        if len(storage_ids) > MAX_STORAGE_IDS:
            raise InvalidInput(f"storage_ids may name at most {MAX_STORAGE_IDS} storage configs", field="storage_ids")
        override = v.training_config(body.get("training_config"), with_defaults=False)

        model = self.models.get(model_id)
        self._check_trainable(model)
        storage = self.storage_configs.resolve(model.project_id, list(dict.fromkeys(storage_ids)))
        ontology = self.ontologies.get(model.ontology_id)
        # The run's config (the model's, with this request's keys on top) is what the trainer will check:
        # check it here against the same schema, so a bad one is a 400 now rather than a failed run.
        v.training_config(override, with_defaults=False, model_type=model.type)
        config = v.training_config({**model.training_config, **override}, with_defaults=False, model_type=model.type,
                                   where=" (in the model's training_config, with this request's keys on top)")
        self._check_capacity(model.project_id)

        run_id = self.ids("run")
        bind(model_id=model_id, run_id=run_id)  # on every log line of this request from here on
        token = secrets.token_urlsafe(32)
        model, run, previous_status = self._enter_training(model_id, run_id, config, storage, token)
        self.notifier.model_status_changed(model, previous_status, run_id)
        try:
            job_name = self._launch(model, run, ontology, storage, config, token,
                                    self.callback_base_url or request_base_url)
        except Exception as exc:
            reason = exc.message if isinstance(exc, DomainError) else "the training job could not be submitted"
            # The cause (a botocore or Kubernetes error) is logged; the caller and the record get `reason`.
            log.warning("submission_failed", extra={"model_id": model_id, "run_id": run_id, "reason": reason,
                                                    "error": type(exc).__name__}, exc_info=exc)
            self.settlement.finish(model_id, run_id, "failed", reason=f"submission failed: {reason}",
                                   model_status=previous_status)
            if isinstance(exc, DomainError):
                raise
            raise UpstreamUnavailable("the training job could not be submitted; retry shortly", field="model_id",
                                      run_id=run_id) from exc
        submitted = self.runs.modify(run_id, lambda r: (self.settlement.status_change(
            r, "submitted", "job submitted") if r.status == "queued" else r).but(job_name=job_name))
        if submitted.status == "cancelling":  # cancelled while it was being submitted: stop what just started
            self._stop_job(submitted)
        log.info("training_submitted", extra={"model_id": model_id, "run_id": run_id, "job_name": job_name})
        self.metrics.run_accepted(model_id, run_id)
        return self.models.get(model_id).public()

    def _launch(self, model: MlModel, run: TrainingRun, ontology: Ontology, storage: list[StorageConfig],
                config: dict[str, Any], token: str, callback_url: str) -> str:
        spec_uri = self._write_spec(model, run, ontology, storage, config)
        job_secrets = self._issue_credentials(run).environment() if self.credentials is not None else {}
        job = TrainingJob(run_id=run.run_id, model_id=model.id, project_id=model.project_id,
                          model_type=model.type, callback_token=token, secrets=job_secrets,
                          deadline_seconds=self.job_deadline_seconds(config),
                          environment=trainer_environment(
                              model_id=model.id, run_id=run.run_id, callback_url=callback_url, spec_uri=spec_uri,
                              artifact_bucket=self.artifact_bucket, artifact_prefix=self.artifact_prefix,
                              region=self.region, endpoint_url=self.endpoint_url))
        return self.launcher.submit(job)

    def _check_trainable(self, model: MlModel) -> None:
        if model.status in NOT_TRAINABLE:
            raise Conflict(f"model '{model.id}' is {model.status}; training cannot start",
                           field="status", current_status=model.status)

    def _check_capacity(self, project_id: str) -> None:
        """At most `max_concurrent_runs` active runs per project (429 before the model is touched).

        Checked, not reserved: train requests for different models of one project that arrive
        together (within the index's propagation, typically well under a second) may each see
        room, so the limit can be passed by at most the number of such simultaneous requests
        minus one. One model never has two runs (its own lock, `_enter_training`)."""
        active = self.runs.count_active_in_project(project_id)
        if active >= self.max_concurrent_runs:
            raise TooManyRequests(
                f"project '{project_id}' has {active} active training runs; the limit is {self.max_concurrent_runs} "
                "(MAX_CONCURRENT_RUNS_PER_PROJECT): retry when one has ended",
                field="project_id", retry_after=CAPACITY_RETRY_AFTER_SECONDS, limit=self.max_concurrent_runs,
                active_runs=active)

    def _enter_training(self, model_id: str, run_id: str, config: dict[str, Any], storage: list[StorageConfig],
                        token: str) -> tuple[MlModel, TrainingRun, str]:
        """Move the model into training, allocate the run's version and record the run: one transaction
        (`TrainingStarts`), retried on fresh state when the model changed since it was read."""
        for _ in range(RETRIES_ON_STALE):
            current = self.models.get(model_id)
            self._check_trainable(current)
            model = current.but(status="training", training_task_id=run_id, runs_started=current.runs_started + 1,
                                updated_at=self.clock())
            run = self._new_run(model, run_id, current.status, config, storage, token)
            try:
                return self.starts.begin(model, run), run, current.status
            except StaleRecord:
                continue
        raise Conflict(f"model '{model_id}' is being changed concurrently; retry", field="model_id")

    def _new_run(self, model: MlModel, run_id: str, previous_status: str, config: dict[str, Any],
                 storage: list[StorageConfig], token: str) -> TrainingRun:
        now = self.clock()
        return TrainingRun(
            run_id=run_id, model_id=model.id, project_id=model.project_id, version=int(model.runs_started),
            model_type=model.type, status="queued",
            status_history=[{"status": "queued", "at": now, "note": "training accepted"}],
            training_config=config, storage_ids=[s.id for s in storage], storage_uris=[s.uri for s in storage],
            previous_model_status=previous_status, callback_token_hash=token_hash(token), created_at=now,
            updated_at=now, deadline_at=shift(now, self.run_deadline_seconds(config)),
        )

    def job_deadline_seconds(self, config: dict[str, Any]) -> int | None:
        """The Job's own bound on its wall time: a tuned run's search budget plus the fixed margin (never past
        the stage's training deadline); None for an untuned run (the stage's deadline applies)."""
        tuning = config.get("tuning")
        if not isinstance(tuning, dict) or not tuning.get("budget_seconds"):
            return None
        return min(int(tuning["budget_seconds"]) + self.tuning_margin_seconds,
                   self.deadline_seconds - self.grace_seconds)

    def run_deadline_seconds(self, config: dict[str, Any]) -> int:
        job = self.job_deadline_seconds(config)
        return self.deadline_seconds if job is None else job + self.grace_seconds

    def _write_spec(self, model: MlModel, run: TrainingRun, ontology: Ontology, storage: list[StorageConfig],
                    config: dict[str, Any]) -> str:
        spec = {
            "model_id": model.id, "run_id": run.run_id, "model_type": model.type,
            "version": run.version,
            "ontology": {"id": ontology.id, "content": ontology.content},
            "storage": [{"id": s.id, "uri": s.uri, "format": s.format} for s in storage],
            "training_config": config,
        }
        key = f"{RUNS_PREFIX}/{model.id}/{run.run_id}/spec.json"
        return self.documents.put_json(self.artifact_bucket, key, spec)

    def _issue_credentials(self, run: TrainingRun) -> Any:
        """AWS credentials for this run only: its project's data, its spec, its artifact version."""
        policy = self.scope.session_policy(project_id=run.project_id, model_id=run.model_id, version=run.version,
                                           run_id=run.run_id, artifact_prefix=self.artifact_prefix,
                                           runs_prefix=RUNS_PREFIX)
        return self.credentials.issue(run.run_id, policy)

    def artifact_uri(self, run: TrainingRun) -> str:
        """Where this run's artifact must be: decided by the server, never by the trainer."""
        root = f"{self.artifact_prefix}/" if self.artifact_prefix else ""
        return f"s3://{self.artifact_bucket}/{root}{run.model_id}/v{run.version}/"

    # ---- the cancel route ------------------------------------------------------------

    def cancel(self, model_id: str, body: Any) -> dict[str, Any]:
        """Stop the model's current run: the model back as it was before the run, then its job stopped.

        The job is asked to stop only after the model has left the run, so whatever the trainer reports
        while it stops is refused (409) and none of its output is ever promoted. A launcher that cannot
        be reached leaves the run `cancelling` (logged); the model is already out of training."""
        if body is not None:
            v.reject_unknown(v.require_object(body), ())
        model = self.models.get(model_id)
        if model.status != "training" or not model.training_task_id:
            raise Conflict(f"model '{model_id}' is {model.status}, not training: there is no run to cancel",
                           field="status", current_status=model.status)
        run_id = model.training_task_id
        bind(model_id=model_id, run_id=run_id)
        if self.runs.find(run_id) is None:  # its record was never written, so nothing was started
            self.settlement.abandon(model_id, run_id, "failed", "the training run was never recorded")
            return self.models.get(model_id).public()
        updated = self.settlement.begin_cancel(model_id, run_id)
        self._stop_job(self.runs.get(run_id))
        return updated.public()

    def _stop_job(self, run: TrainingRun) -> None:
        """Ask the launcher to stop the run's job, then end the run; on failure it stays `cancelling`."""
        try:
            self.launcher.cancel(run.job_name or job_name(run.run_id), self.cancel_grace_seconds)
            self.settlement.end_cancel(run.run_id)
        except Exception as exc:  # noqa: BLE001 — the model is out of training already; log and leave
            reason = exc.message if isinstance(exc, DomainError) else type(exc).__name__
            log.warning("cancel_incomplete", extra={"model_id": run.model_id, "run_id": run.run_id,
                                                    "reason": reason}, exc_info=exc)

    # ---- runs ------------------------------------------------------------------------

    def list_runs(self, model_id: str, limit: str | None, next_token: str | None) -> dict[str, Any]:
        self.models.get(model_id)
        items, token = self.runs.list_by_model(model_id, v.limit(limit), next_token)
        return {"runs": [r.public() for r in items], "next_token": token}

    def get_run(self, model_id: str, run_id: str) -> dict[str, Any]:
        run = self.runs.find(run_id)
        if run is None or run.model_id != model_id:
            raise NotFound(f"training run '{run_id}' does not exist for model '{model_id}'", field="run_id")
        return run.public()

    # ---- callbacks -------------------------------------------------------------------

    def authenticate(self, model_id: str, authorization: str | None, run_id: str | None) -> TrainingRun:
        """The run this callback speaks for, after a constant-time check of its token."""
        token = bearer_token(authorization)
        if not run_id:
            run_id = self.models.get(model_id).training_task_id
        run = self.runs.find(run_id) if run_id else None
        expected = run.callback_token_hash if run and run.model_id == model_id else token_hash("")
        if not hmac.compare_digest(token_hash(token), expected) or run is None:
            raise Unauthorized("the bearer token is not valid for this model's training run", field="Authorization")
        return run

    @counts_rejections("complete")
    def complete(self, model_id: str, authorization: str | None, run_id: str | None, body: Any) -> dict[str, Any]:
        run = self.authenticate(model_id, authorization, run_id)
        body = v.require_object(body)
        v.reject_unknown(body, ("model_artifact_path", "performance_metrics", "training_metrics"))
        path = v.string(body, "model_artifact_path", required=True, max_len=1024)
        performance = v.finite_metrics(body.get("performance_metrics") or {}, "performance_metrics")
        training = v.finite_metrics(body.get("training_metrics") or {}, "training_metrics")
        expected = self.artifact_uri(run)
        if path.rstrip("/") != expected.rstrip("/"):
            raise InvalidInput(f"model_artifact_path must be this run's artifact location {expected}",
                               field="model_artifact_path", expected=expected)
        if run.status == "succeeded":
            return COMPLETED  # a repeated callback: already recorded
        manifest = self._check_manifest(run, expected)
        # The record keeps at most RECORD_METRICS_BYTES of metrics (a many-class confusion matrix would not fit
        # a DynamoDB item); what is cut must be whole in the manifest, else 413 naming the field.
        performance, training = result_summary.for_record(performance, training, manifest, expected + MANIFEST)
        self.settlement.finish(model_id, run.run_id, "succeeded", artifact=expected, performance=performance,
                               training=training, lineage=data_lineage(manifest))
        return COMPLETED

    def _check_manifest(self, run: TrainingRun, artifact: str) -> dict[str, Any]:
        """The artifact's manifest: the artifact is complete (its manifest is written last) and was made by this
        run."""
        key = artifact.removeprefix(f"s3://{self.artifact_bucket}/") + MANIFEST
        manifest = self.documents.get_json(self.artifact_bucket, key, max_bytes=MAX_MANIFEST_BYTES)
        if manifest is None:
            raise Conflict(f"the run's manifest {artifact}{MANIFEST} does not exist; the artifact is incomplete",
                           field="model_artifact_path")
        named = {k: manifest.get(k) for k in ("run_id", "model_id", "version")} if isinstance(manifest, dict) else {}
        if named != {"run_id": run.run_id, "model_id": run.model_id, "version": run.version}:
            raise Conflict(f"the manifest at {artifact}{MANIFEST} does not name this run ({run.run_id})",
                           field="model_artifact_path")
        return manifest

    def complete_from_manifest(self, run: TrainingRun) -> bool:
        """Complete `run` from its artifact's manifest, as the complete callback would have (the reconciler:
        the job succeeded but no callback arrived). False if no valid manifest there names the run; Conflict
        (from `finish`) if the run ended meanwhile."""
        expected = self.artifact_uri(run)
        try:
            manifest = self._check_manifest(run, expected)
            performance = v.finite_metrics(manifest.get("performance_metrics") or {}, "performance_metrics")
            training = v.finite_metrics(manifest.get("training_metrics") or {}, "training_metrics")
        except (Conflict, InvalidInput) as exc:
            log.warning("manifest_unusable", extra={"model_id": run.model_id, "run_id": run.run_id,
                                                    "reason": exc.message})
            return False
        # The manifest holds every field whole, so the record's summary never has to refuse one.
        performance, training = result_summary.for_record(performance, training, manifest, expected + MANIFEST)
        self.settlement.finish(run.model_id, run.run_id, "succeeded", artifact=expected, performance=performance,
                               training=training, lineage=data_lineage(manifest))
        return True

    @counts_rejections("fail")
    def fail(self, model_id: str, authorization: str | None, run_id: str | None, body: Any) -> dict[str, Any]:
        run = self.authenticate(model_id, authorization, run_id)
        body = v.require_object(body)
        v.reject_unknown(body, ("reason",))
        reason = v.string(body, "reason", required=True, max_len=MAX_REASON)
        if run.status == "failed":
            return FAILED
        self.settlement.finish(model_id, run.run_id, "failed", reason=reason)
        return FAILED

    @counts_rejections("credentials")
    def refresh_credentials(self, model_id: str, authorization: str | None, run_id: str | None,
                            body: Any) -> dict[str, Any]:
        """Fresh per-run credentials for a trainer still running (STS sessions last at most an hour)."""
        run = self.authenticate(model_id, authorization, run_id)
        if body is not None:
            v.reject_unknown(v.require_object(body), ())
        if run.status in FINAL_RUN_STATUSES:
            raise Conflict(f"training run '{run.run_id}' already ended as {run.status}", field="run_id")
        model = self.models.get(model_id)
        if model.status != "training" or model.training_task_id != run.run_id:  # cancelled: it is stopping
            raise Conflict(f"training run '{run.run_id}' is not the current run of model '{model_id}'",
                           field="run_id", current_status=model.status)
        if self.credentials is None:
            raise Conflict("this stage issues no per-run credentials", field="run_id")
        issued = self._issue_credentials(run)
        return {"access_key_id": issued.access_key_id, "secret_access_key": issued.secret_access_key,
                "session_token": issued.session_token, "expiration": issued.expiration}

    @counts_rejections("progress")
    def progress(self, model_id: str, authorization: str | None, run_id: str | None, body: Any) -> dict[str, Any]:
        """The trainer's report of an epoch (`epoch`, losses) or of a hyperparameter-search trial (`tuning`):
        kept in training_metrics and sent to subscribers."""
        run = self.authenticate(model_id, authorization, run_id)
        body = v.require_object(body)
        v.reject_unknown(body, ("epoch", "training_loss", "validation_loss", "tuning"))
        if "epoch" not in body and "tuning" not in body:
            raise InvalidInput("a progress report needs epoch or tuning", field="epoch")
        progress: dict[str, Any] = {}
        if "epoch" in body:
            progress["epoch"] = v.count(body["epoch"], "epoch")
        for key in ("training_loss", "validation_loss"):
            if key in body:
                progress[key] = v.finite_number(body[key], key)
        if "tuning" in body:
            progress["tuning"] = tuning_progress(body["tuning"])
        if run.status in FINAL_RUN_STATUSES:
            raise Conflict(f"training run '{run.run_id}' already ended as {run.status}", field="run_id")
        # On the record a trial's report is `tuning_progress` (the finished search is the trainer's `tuning`).
        kept = {("tuning_progress" if key == "tuning" else key): value for key, value in progress.items()}
        updated = self.settlement.while_current(model_id, run.run_id, lambda model: model.but(
            training_metrics={**model.training_metrics, **kept}, updated_at=self.clock()))
        if run.status != "running":
            self.runs.modify(run.run_id, lambda r: self.settlement.status_change(
                r, "running", "trainer reported progress") if r.status in ("queued", "submitted") else r)
        self.notifier.training_progress(updated, run.run_id, progress)
        return {"status": "progress recorded"}
