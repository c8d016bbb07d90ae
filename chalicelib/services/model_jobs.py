"""Jobs that use a trained version (batch predictions, evaluations): run like training runs.

A user route checks the request, resolves the version (the model's current one unless the request
names one) and the storage configs (the project's, inside its data location), records a `ModelJob`
and submits a Job of the trainer image (a local process on the local stack) that runs the kind's
module. Every kind has the same safeguards as a training run: its own callback token (only its hash
is stored), a deadline, and per-job AWS credentials whose session policy allows reading the
project's data, its spec and that version's artifact, and writing only its own output prefix
`s3://<artifact bucket>/<kind's prefix>/<model_id>/<job_id>/`, which the server decides.

The job writes its outputs there and one document last (`DONE`, naming the job); its complete
callback is accepted only once that document names it. A job moves queued → running (its first
progress report) → succeeded | failed, or → cancelling → cancelled. Whatever a job fails to report,
the reconciler (services/reconciler.py) settles from the cluster, as it does training runs.
A kind (`PredictionService`, `EvaluationService`) says what its request holds, what its spec adds,
what it keeps of its document, and what follows its success.
"""
from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.adapters.launcher import JobLauncher, JobState, TrainingJob, job_name
from chalicelib.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
    UpstreamUnavailable,
)
from chalicelib.records import MlModel, ModelJob, StorageConfig
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now
from chalicelib.services.data_scope import DataScope
from chalicelib.services.ml_models import current_version
from chalicelib.services.notifications import NullNotifier
from chalicelib.services.ports import ACTIVE_JOB_STATUSES, ModelJobRepository, ModelRepository, TrainingRunRepository
from chalicelib.services.run_settlement import shift
from chalicelib.services.storage_configs import StorageConfigService
from chalicelib.services.training import RUNS_PREFIX, bearer_token, token_hash
from chalicelib.trainer_contract import trainer_environment

log = logging.getLogger("ml_models.jobs")

STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
MAX_DONE_BYTES = 1024 * 1024
MAX_STORAGE_IDS = 20
MAX_REASON = 2000
# Active jobs of one kind per model (among its newest ACTIVE_WINDOW jobs): a 429 beyond.
MAX_ACTIVE_PER_MODEL = 3
ACTIVE_WINDOW = 20
CAPACITY_RETRY_AFTER_SECONDS = 60
NEVER_SUBMITTED = "the job was never submitted"
JOB_GONE = "the job no longer exists"
PAGE = 25


class ModelJobService:
    KIND = ""  # records.ModelJob.kind
    LAUNCH_KIND = ""  # launcher.ENTRY_POINTS key
    ID_PREFIX = ""
    OUTPUT_PREFIX = ""
    DONE = ""  # the document the job writes last
    LIST_KEY = ""
    REQUEST_FIELDS: tuple[str, ...] = ("storage_ids", "version")

    def __init__(self, models: ModelRepository, jobs: ModelJobRepository, runs: TrainingRunRepository,
                 storage_configs: StorageConfigService, launcher: JobLauncher, documents: Any, scope: DataScope, *,
                 callback_base_url: str, artifact_bucket: str, artifact_prefix: str, region: str,
                 endpoint_url: str | None = None, credentials: Any = None, notifier: Any = None,
                 deadline_seconds: int = 6 * 3600 + 600, start_deadline_seconds: int = 600,
                 submission_grace_seconds: int = 300, cancel_grace_seconds: int = 30,
                 max_active_per_model: int = MAX_ACTIVE_PER_MODEL, clock: Clock = utc_now,
                 ids: IdFactory = new_id) -> None:
        self.models = models
        self.jobs = jobs
        # The model's versions are its succeeded training runs (services/versions.py).
        self.runs = runs
        self.storage_configs = storage_configs
        self.launcher = launcher
        self.documents = documents
        self.scope = scope
        self.callback_base_url = callback_base_url
        self.artifact_bucket = artifact_bucket
        self.artifact_prefix = artifact_prefix.strip("/")
        self.region = region
        self.endpoint_url = endpoint_url
        self.credentials = credentials
        self.notifier = notifier or NullNotifier()
        self.deadline_seconds = deadline_seconds
        self.start_deadline_seconds = start_deadline_seconds
        self.submission_grace_seconds = submission_grace_seconds
        self.cancel_grace_seconds = cancel_grace_seconds
        self.max_active_per_model = max_active_per_model
        self.clock = clock
        self.ids = ids

    # ---- what each kind says --------------------------------------------------------

    COMPLETE_FIELDS: tuple[str, ...] = ()

    def check_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The kind-specific fields of a request, checked (before anything is read)."""
        return {}

    def parameters(self, request: dict[str, Any], storage: list[StorageConfig]) -> dict[str, Any]:
        """The kind's settings kept on the job (records.ModelJob.parameters), from `check_request`'s answer
        and the storage the job reads."""
        return request

    def spec_fields(self, job: ModelJob) -> dict[str, Any]:
        """What the kind's spec holds beyond the job, version, artifact, inputs and output."""
        return {}

    def result_of(self, job: ModelJob, done: dict[str, Any]) -> dict[str, Any]:
        """What the job keeps of its `DONE` document (records.ModelJob.result)."""
        return {}

    def after_success(self, job: ModelJob) -> None:
        """What follows a job's success (an evaluation's verdict on the model).

        Called with the job's result before the job is marked succeeded, so that whoever sees the job
        succeeded also sees its effect; it must be idempotent (a repeated callback or the reconciler
        may call it again)."""

    def view_fields(self, job: ModelJob) -> dict[str, Any]:
        return {}

    # ---- the user routes -------------------------------------------------------------

    def create(self, model_id: str, body: Any, request_base_url: str = "") -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, self.REQUEST_FIELDS)
        storage_ids = _storage_ids(body.get("storage_ids"))
        version = version_number(body.get("version"))
        request = self.check_request(body)
        model = self.models.get(model_id)
        artifact, version = version_artifact(self.runs, model, version)
        storage = self.storage_configs.resolve(model.project_id, storage_ids)
        parameters = self.parameters(request, storage)
        self._check_capacity(model)

        job_id = self.ids(self.ID_PREFIX)
        token = secrets.token_urlsafe(32)
        now = self.clock()
        job = self.jobs.add(ModelJob(
            id=job_id, kind=self.KIND, model_id=model.id, project_id=model.project_id, version=version,
            status="queued", callback_token_hash=token_hash(token), created_at=now, updated_at=now,
            model_kind=f"{model.id}#{self.KIND}", artifact_uri=artifact, output_uri=self.output_uri(model.id, job_id),
            storage_ids=[s.id for s in storage], storage_uris=[s.uri for s in storage],
            parameters=parameters,
            status_history=[{"status": "queued", "at": now, "note": f"{self.KIND} accepted"}],
            deadline_at=shift(now, self.deadline_seconds)))
        self.notifier.job_status_changed(job, None)
        try:
            name = self._launch(model, job, storage, token, self.callback_base_url or request_base_url)
        except Exception as exc:
            reason = exc.message if isinstance(exc, DomainError) else f"the {self.KIND} job could not be submitted"
            log.warning("job_submission_failed", extra={"model_id": model.id, "job_id": job_id, "reason": reason,
                                                        "error": type(exc).__name__}, exc_info=exc)
            self._end(job_id, "failed", f"submission failed: {reason}")
            if isinstance(exc, DomainError):
                raise
            raise UpstreamUnavailable(f"the {self.KIND} job could not be submitted; retry shortly",
                                      field="model_id", job_id=job_id) from exc
        job = self.jobs.modify(job_id, lambda j: j.but(job_name=name))
        if job.status == "cancelling":  # cancelled while it was being submitted
            self._stop(job)
        log.info("job_submitted", extra={"model_id": model.id, "job_id": job_id, "job_name": name, "kind": self.KIND})
        return self.view(self.jobs.get(job_id))

    def list(self, model_id: str, limit: str | None, next_token: str | None) -> dict[str, Any]:
        self.models.get(model_id)
        items, token = self.jobs.list_by_model(model_id, self.KIND, v.limit(limit), next_token)
        return {self.LIST_KEY: [self.view(j) for j in items], "next_token": token}

    def get(self, model_id: str, job_id: str) -> dict[str, Any]:
        return self.view(self._job(model_id, job_id))

    def cancel(self, model_id: str, job_id: str, body: Any) -> dict[str, Any]:
        """Stop a job: `cancelling`, its job told to stop (SIGTERM, then the grace period), then `cancelled`.
        Nothing it reports afterwards is accepted, so nothing of it is ever taken as its result."""
        if body is not None:
            v.reject_unknown(v.require_object(body), ())
        job = self._job(model_id, job_id)
        if job.status in FINAL_STATUSES or job.status == "cancelling":
            raise Conflict(f"{self.KIND} '{job_id}' is {job.status}: there is nothing to cancel", field="status",
                           current_status=job.status)
        job = self._change(job_id, "cancelling", "cancel requested", allowed=("queued", "running"))
        self._stop(job)
        return self.view(self.jobs.get(job_id))

    def stop_all(self, model_id: str) -> int:
        """Stop every active job of this kind of a model being deleted (its records and outputs go next): each
        job is told to stop; what it reports afterwards is refused. How many were told."""
        stopped, token = 0, None
        while True:
            jobs, token = self.jobs.list_by_model(model_id, self.KIND, PAGE, token)
            for job in jobs:
                if job.status in FINAL_STATUSES:
                    continue
                try:
                    self.launcher.cancel(job.job_name or job_name(job.id, self.LAUNCH_KIND), self.cancel_grace_seconds)
                    stopped += 1
                except Exception as exc:  # noqa: BLE001 — the model is going; its job's deadline ends it
                    log.warning("job_stop_failed", extra={"model_id": model_id, "job_id": job.id,
                                                                 "error": type(exc).__name__}, exc_info=exc)
            if token is None:
                return stopped

    def view(self, job: ModelJob) -> dict[str, Any]:
        return {
            "id": job.id, "model_id": job.model_id, "project_id": job.project_id, "version": job.version,
            "status": job.status, "output_uri": job.output_uri, "artifact_uri": job.artifact_uri,
            "storage_ids": list(job.storage_ids), **self.view_fields(job),
            "failure_reason": job.failure_reason, "status_history": job.status_history,
            "created_at": job.created_at, "updated_at": job.updated_at,
        }

    def output_uri(self, model_id: str, job_id: str) -> str:
        return f"s3://{self.artifact_bucket}/{self.OUTPUT_PREFIX}/{model_id}/{job_id}/"

    # ---- the job's callbacks -----------------------------------------------------------

    def authenticate(self, model_id: str, job_id: str, authorization: str | None) -> ModelJob:
        token = bearer_token(authorization)
        job = self.jobs.find(job_id) if job_id else None
        expected = job.callback_token_hash if job and job.model_id == model_id else token_hash("")
        if not hmac.compare_digest(token_hash(token), expected) or job is None:
            raise Unauthorized(f"the bearer token is not valid for this {self.KIND} job", field="Authorization")
        return job

    def progress(self, model_id: str, job_id: str, authorization: str | None, body: Any) -> dict[str, Any]:
        job = self.authenticate(model_id, job_id, authorization)
        body = v.require_object(body)
        v.reject_unknown(body, ("rows",))
        rows = _count(body, "rows")
        self._require_live(job)
        note = "the job reported progress"
        self._change(job_id, "running", note, allowed=("queued", "running"),
                     change=lambda j: j.but(result={**j.result, "rows_done": rows}))
        return {"status": "progress recorded"}

    def complete(self, model_id: str, job_id: str, authorization: str | None, body: Any) -> dict[str, Any]:
        job = self.authenticate(model_id, job_id, authorization)
        body = v.require_object(body)
        v.reject_unknown(body, self.COMPLETE_FIELDS)
        for name in self.COMPLETE_FIELDS:
            if name in body:
                _count(body, name)
        if job.status == "succeeded":
            return {"status": f"{self.KIND} completed"}  # a repeated callback
        self._require_live(job)
        done = self._done(job)
        if done is None:
            raise Conflict(f"the job's {job.output_uri}{self.DONE} does not exist or does not name this job; "
                           "the output is incomplete", field="output_uri")
        self._succeed(job, done)
        return {"status": f"{self.KIND} completed"}

    def fail(self, model_id: str, job_id: str, authorization: str | None, body: Any) -> dict[str, Any]:
        job = self.authenticate(model_id, job_id, authorization)
        body = v.require_object(body)
        v.reject_unknown(body, ("reason",))
        reason = v.string(body, "reason", required=True, max_len=MAX_REASON)
        if job.status == "failed":
            return {"status": f"{self.KIND} failed"}
        self._require_live(job)
        self._end(job_id, "failed", reason)
        return {"status": f"{self.KIND} failed"}

    def refresh_credentials(self, model_id: str, job_id: str, authorization: str | None,
                            body: Any) -> dict[str, Any]:
        """Fresh per-job credentials for a job still running (STS sessions last at most an hour)."""
        job = self.authenticate(model_id, job_id, authorization)
        if body is not None:
            v.reject_unknown(v.require_object(body), ())
        self._require_live(job)
        if self.credentials is None:
            raise Conflict("this stage issues no per-job credentials", field=f"{self.KIND}_id")
        issued = self.credentials.issue(job.id, self._policy(job))
        return {"access_key_id": issued.access_key_id, "secret_access_key": issued.secret_access_key,
                "session_token": issued.session_token, "expiration": issued.expiration}

    def _policy(self, job: ModelJob) -> dict[str, Any]:
        return self.scope.job_session_policy(
            project_id=job.project_id, model_id=job.model_id, version=job.version, job_id=job.id,
            artifact_prefix=self.artifact_prefix or "models", runs_prefix=RUNS_PREFIX,
            output_prefix=self.OUTPUT_PREFIX)

    # ---- the reconciler ---------------------------------------------------------------

    def active_jobs(self) -> Iterator[ModelJob]:
        """Jobs not yet ended, per status on the status index (never a Scan), least recently changed first."""
        for status in ACTIVE_JOB_STATUSES:
            token: str | None = None
            while True:
                items, token = self.jobs.list_by_status(status, PAGE, token)
                yield from (j for j in items if j.status == status and j.kind == self.KIND)
                if token is None:
                    break

    def settle(self, job: ModelJob) -> str:
        """End `job` if its Kubernetes Job (local process) says it ended or cannot start; the outcome."""
        if job.status == "cancelling":
            self.launcher.cancel(job.job_name or job_name(job.id, self.LAUNCH_KIND), self.cancel_grace_seconds)
            self._change(job.id, "cancelled", "the job was stopped by the reconciler", allowed=("cancelling",))
            return "cancelled"
        state = self.launcher.inspect(job.job_name or job_name(job.id, self.LAUNCH_KIND))
        reason = self._failure(job, state, self.clock())
        if reason is None and state.phase == "succeeded":
            done = self._done(job)
            if done is not None:
                self._succeed(job, done)
                return "succeeded"
            reason = (f"the {self.KIND} job exited without reporting (its job completed, but no {self.DONE} "
                      f"naming it is at {job.output_uri})")
        if reason is None:
            return "unchanged"
        log.warning("job_reconciled_failed", extra={"model_id": job.model_id, "job_id": job.id,
                                                           "reason": reason, "job_phase": state.phase})
        self._end(job.id, "failed", reason)
        return "failed"

    def _failure(self, job: ModelJob, state: JobState, now: str) -> str | None:
        if state.phase == "missing":
            if job.job_name:
                return f"{JOB_GONE} ({state.describe()})"
            if now > shift(job.created_at, self.submission_grace_seconds):
                return f"{NEVER_SUBMITTED} ({self.submission_grace_seconds} s after it was accepted)"
            return None
        if state.phase == "failed":
            return f"the {self.KIND} job failed: {state.describe()}"
        if state.stuck and now > shift(job.created_at, self.start_deadline_seconds):
            return f"the job's pod did not start within {self.start_deadline_seconds} s: {state.describe()}"
        if state.phase != "succeeded" and job.deadline_at and now > job.deadline_at:
            return f"the job did not report a result before its deadline ({job.deadline_at})"
        return None

    # ---- internals -------------------------------------------------------------------

    def _job(self, model_id: str, job_id: str) -> ModelJob:
        job = self.jobs.find(job_id) if isinstance(job_id, str) and len(job_id) <= v.MAX_ID else None
        if job is None or job.model_id != model_id or job.kind != self.KIND:
            raise NotFound(f"{self.KIND} '{job_id}' does not exist for model '{model_id}'", field=f"{self.KIND}_id")
        return job

    def _check_capacity(self, model: MlModel) -> None:
        recent, _ = self.jobs.list_by_model(model.id, self.KIND, ACTIVE_WINDOW, None)
        active = sum(1 for j in recent if j.status in ACTIVE_JOB_STATUSES)
        if active >= self.max_active_per_model:
            raise TooManyRequests(
                f"model '{model.id}' has {active} {self.KIND} jobs running; the limit is {self.max_active_per_model}: "
                "retry when one has ended", field="model_id", retry_after=CAPACITY_RETRY_AFTER_SECONDS,
                limit=self.max_active_per_model, active_jobs=active)

    def _launch(self, model: MlModel, job: ModelJob, storage: list[StorageConfig], token: str,
                callback_url: str) -> str:
        spec = {
            "kind": self.KIND, f"{self.KIND}_id": job.id, "model_id": model.id, "version": job.version,
            "artifact_uri": job.artifact_uri,
            "inputs": [{"id": s.id, "uri": s.uri, "format": s.format} for s in storage],
            **self.spec_fields(job), "output_uri": job.output_uri,
        }
        spec_uri = self.documents.put_json(self.artifact_bucket, f"{RUNS_PREFIX}/{model.id}/{job.id}/spec.json", spec)
        job_secrets: dict[str, str] = {}
        if self.credentials is not None:
            job_secrets = self.credentials.issue(job.id, self._policy(job)).environment()
        return self.launcher.submit(TrainingJob(
            run_id=job.id, model_id=model.id, project_id=model.project_id, model_type=model.type, kind=self.LAUNCH_KIND,
            callback_token=token, secrets=job_secrets,
            environment=trainer_environment(
                model_id=model.id, run_id=job.id, callback_url=callback_url, spec_uri=spec_uri,
                artifact_bucket=self.artifact_bucket, artifact_prefix=self.artifact_prefix, region=self.region,
                endpoint_url=self.endpoint_url,
                credentials_path=f"/api/ml-models/{model.id}/{self.LIST_KEY}/{job.id}/credentials")))

    def _stop(self, job: ModelJob) -> None:
        try:
            self.launcher.cancel(job.job_name or job_name(job.id, self.LAUNCH_KIND), self.cancel_grace_seconds)
            self._change(job.id, "cancelled", "the job was stopped", allowed=("cancelling",))
        except Exception as exc:  # noqa: BLE001 — stays cancelling; the reconciler asks again
            reason = exc.message if isinstance(exc, DomainError) else type(exc).__name__
            log.warning("job_cancel_incomplete", extra={"model_id": job.model_id, "job_id": job.id,
                                                               "reason": reason}, exc_info=exc)

    def _require_live(self, job: ModelJob) -> None:
        if job.status in FINAL_STATUSES or job.status == "cancelling":
            raise Conflict(f"{self.KIND} '{job.id}' is {job.status}; it accepts no more reports", field="status",
                           current_status=job.status)

    def _done(self, job: ModelJob) -> dict[str, Any] | None:
        """The document the job writes last (`DONE`), if it is there and names the job; else None."""
        key = job.output_uri.removeprefix(f"s3://{self.artifact_bucket}/") + self.DONE
        done = self.documents.get_json(self.artifact_bucket, key, max_bytes=MAX_DONE_BYTES)
        if not isinstance(done, dict):
            return None
        named = {k: done.get(k) for k in (f"{self.KIND}_id", "model_id", "version")}
        if named != {f"{self.KIND}_id": job.id, "model_id": job.model_id, "version": job.version}:
            return None
        return done

    def _succeed(self, job: ModelJob, done: dict[str, Any]) -> None:
        result = self.result_of(job, done)
        self.after_success(job.but(result=result))
        self._end(job.id, "succeeded", "the job wrote its output", change=lambda j: j.but(result=result))

    def _end(self, job_id: str, status: str, note: str,
             change: Callable[[ModelJob], ModelJob] | None = None) -> ModelJob:
        allowed = ("cancelling",) if status == "cancelled" else ("queued", "running")

        def apply(job: ModelJob) -> ModelJob:
            job = change(job) if change else job
            return job.but(failure_reason=note[:MAX_REASON]) if status == "failed" else job

        return self._change(job_id, status, note, allowed=allowed, change=apply)

    def _change(self, job_id: str, status: str, note: str, *, allowed: tuple[str, ...],
                change: Callable[[ModelJob], ModelJob] | None = None) -> ModelJob:
        """Move the job to `status` if it is in one of `allowed` (409 otherwise); notify subscribers."""
        previous: dict[str, str] = {}

        def move(job: ModelJob) -> ModelJob:
            if job.status not in allowed:
                raise Conflict(f"{self.KIND} '{job_id}' is {job.status}", field="status", current_status=job.status)
            previous["status"] = job.status
            now = self.clock()
            updated = change(job) if change else job
            if job.status == status:
                return updated.but(updated_at=now)
            history = [*job.status_history, {"status": status, "at": now, "note": note[:500]}]
            return updated.but(status=status, status_history=history, updated_at=now)

        saved = self.jobs.modify(job_id, move)
        if previous.get("status") != status:
            log.info(f"job_{status}", extra={"model_id": saved.model_id, "job_id": job_id, "note": note})
            self.notifier.job_status_changed(saved, previous.get("status"))
        return saved


def _storage_ids(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) and s for s in value):
        raise InvalidInput("storage_ids must be a non-empty array of storage config ids", field="storage_ids")
    if len(value) > MAX_STORAGE_IDS:
        raise InvalidInput(f"storage_ids may name at most {MAX_STORAGE_IDS} storage configs", field="storage_ids")
    if any(len(s) > v.MAX_ID for s in value):
        raise InvalidInput(f"a storage id is at most {v.MAX_ID} characters", field="storage_ids")
    return list(dict.fromkeys(value))


def version_artifact(runs: TrainingRunRepository, model: MlModel, version: int | None) -> tuple[str, int]:
    """A version's artifact location and number: the named version (404 if it never trained), else the
    model's current one (409 if it has none)."""
    if version is None:
        current = current_version(model)
        if current is None:
            raise Conflict(f"model '{model.id}' has no trained version to predict with (status {model.status})",
                           field="version", current_status=model.status)
        return model.model_artifact_path, current
    run = runs.find_version(model.id, version)
    if run is None or run.status != "succeeded" or not run.model_artifact_path:
        raise NotFound(f"version '{version}' of model '{model.id}' does not exist", field="version")
    return run.model_artifact_path, version


def version_number(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        raise InvalidInput("version must be a positive integer", field="version")
    return value


def _count(body: dict[str, Any], name: str) -> int:
    return v.count(body.get(name, 0), name)
