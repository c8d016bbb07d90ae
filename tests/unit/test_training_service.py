"""TrainingService on the in-memory twins: starting a run, its callbacks, its deadline and credentials."""
from __future__ import annotations

import pytest
from fakes.collaborators import (
    CountingIds,
    FakeCredentialIssuer,
    FakeS3,
    MemoryDocuments,
    RecordingNotifier,
    SteppingClock,
)
from fakes.launcher import FakeLauncher
from fakes.records import an_ontology
from fakes.repositories import (
    MemoryModelRepository,
    MemoryOntologyRepository,
    MemoryStorageConfigRepository,
    MemoryTrainingRunRepository,
    MemoryTrainingStarts,
)

from chalicelib.errors import Conflict, InvalidInput, UpstreamFailed, UpstreamUnavailable
from chalicelib.records import MlModel, StorageConfig
from chalicelib.services.data_scope import DataScope
from chalicelib.services.run_settlement import RunSettlement
from chalicelib.services.storage_configs import StorageConfigService
from chalicelib.services.training import COMPLETED, TrainingService

PROJECT, MODEL = "proj-1", "model-a"
DEADLINE = 3600


class World:
    def __init__(self, runs: MemoryTrainingRunRepository | None = None) -> None:
        self.models, self.ontologies = MemoryModelRepository(), MemoryOntologyRepository()
        self.runs, self.configs = runs or MemoryTrainingRunRepository(), MemoryStorageConfigRepository()
        self.clock, self.ids, self.notifier = SteppingClock(), CountingIds(), RecordingNotifier()
        self.launcher, self.documents, self.issuer = FakeLauncher(), MemoryDocuments(), FakeCredentialIssuer()
        scope = DataScope(data_buckets=("data",), grants={}, artifact_bucket="artifacts")
        self.starts = MemoryTrainingStarts(self.models, self.runs)
        self.settlement = RunSettlement(self.models, self.runs, self.notifier, clock=self.clock)
        self.service = TrainingService(
            self.models, self.ontologies, self.runs,
            storage_configs=StorageConfigService(self.configs, self.ontologies, FakeS3(), scope, clock=self.clock,
                                                 ids=self.ids),
            launcher=self.launcher, documents=self.documents, settlement=self.settlement, scope=scope,
            starts=self.starts,
            callback_base_url="https://api.example/v1", artifact_bucket="artifacts", artifact_prefix="models",
            region="eu-west-1", credentials=self.issuer, notifier=self.notifier, deadline_seconds=DEADLINE,
            clock=self.clock, ids=self.ids)
        now = self.clock()
        self.ontologies.add(an_ontology("onto-1", PROJECT))
        self.configs.add(StorageConfig(id="storage-1", project_id=PROJECT, name="readings", format="csv",
                                       uri=f"s3://data/{PROJECT}/readings/", created_at=now, updated_at=now))
        self.models.add(MlModel(id=MODEL, project_id=PROJECT, ontology_id="onto-1", name="m", type="random_forest",
                                status="draft", created_at=now, updated_at=now))

    def start(self, storage_ids=("storage-1",)) -> dict:
        return self.service.start({"model_id": MODEL, "storage_ids": list(storage_ids)})

    def auth(self, job=None) -> str:
        return f"Bearer {(job or self.launcher.jobs[-1]).callback_token}"

    def artifact(self, version: int = 1) -> str:
        return f"s3://artifacts/models/{MODEL}/v{version}/"

    def write_manifest(self, run_id: str, version: int = 1, model_id: str = MODEL) -> None:
        self.documents.put_json("artifacts", f"models/{MODEL}/v{version}/manifest.json",
                                {"run_id": run_id, "model_id": model_id, "version": version})

    def complete(self, run_id: str = "run-1", path: str | None = None, job=None) -> dict:
        return self.service.complete(MODEL, self.auth(job), run_id, {
            "model_artifact_path": path or self.artifact(), "performance_metrics": {"accuracy": 0.9}})


@pytest.fixture
def world() -> World:
    return World()


def test_start_moves_the_model_into_training_and_submits_the_run(world):
    started = world.start()
    assert (started["status"], started["training_task_id"]) == ("training", "run-1")
    run = world.runs.get("run-1")
    assert run.status == "submitted" and [h["status"] for h in run.status_history] == ["queued", "submitted"]
    assert (run.version, run.storage_uris, run.job_name) == (1, [f"s3://data/{PROJECT}/readings/"], "train-run-1")
    assert run.deadline_at == "2026-01-01T01:00:00.000000Z"
    [job] = world.launcher.jobs
    spec_uri = f"s3://artifacts/runs/{MODEL}/run-1/spec.json"
    assert job.environment == {
        "TRAINER_MODEL_ID": MODEL, "TRAINER_RUN_ID": "run-1", "TRAINER_CALLBACK_URL": "https://api.example/v1",
        "TRAINER_SPEC_URI": spec_uri, "TRAINER_ARTIFACT_BUCKET": "artifacts", "TRAINER_ARTIFACT_PREFIX": "models",
        "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert dict(job.secrets) == world.issuer.issued[0].environment() == {
        "AWS_ACCESS_KEY_ID": "ASIA0001", "AWS_SECRET_ACCESS_KEY": "secret-1", "AWS_SESSION_TOKEN": "session-1",
        "TRAINER_CREDENTIALS_EXPIRATION": "2026-01-01T01:00:00Z"}
    assert job.callback_token and job.callback_token not in str(world.runs.get("run-1").values())
    spec = world.documents.get_json("artifacts", f"runs/{MODEL}/run-1/spec.json", max_bytes=10**6)
    assert spec["storage"] == [{"id": "storage-1", "uri": f"s3://data/{PROJECT}/readings/", "format": "csv"}]
    assert ("status", MODEL, "draft", "training", "run-1") in world.notifier.events


def test_a_tuned_run_is_bounded_by_its_budget_plus_the_margin(world):
    """training_config.tuning.budget_seconds bounds the Job (plus the fixed margin, never past the stage's
    deadline) and the run's deadline follows it; an untuned run keeps the stage's deadline."""
    world.service.tuning_margin_seconds, world.service.grace_seconds = 900, 600
    world.service.start({"model_id": MODEL, "storage_ids": ["storage-1"],
                         "training_config": {"tuning": {"budget_seconds": 60}}})
    [job] = world.launcher.jobs
    assert job.deadline_seconds == 960
    assert world.runs.get("run-1").deadline_at == "2026-01-01T00:26:00.000000Z"  # 960 s + 600 s of grace
    assert world.service.job_deadline_seconds({}) is None
    assert world.service.job_deadline_seconds({"tuning": {"budget_seconds": 86_400}}) == DEADLINE - 600


def resources(policy: dict) -> set[str]:
    found = set()
    for statement in policy["Statement"]:
        found |= {statement["Resource"]} if isinstance(statement["Resource"], str) else set(statement["Resource"])
    return found


def test_the_run_credentials_reach_only_the_projects_data_and_this_runs_artifact(world):
    world.start()
    [(session_name, policy)] = world.issuer.requests
    assert session_name == "run-1"
    objects = {r for r in resources(policy) if "/" in r.split(":::")[1]}
    assert objects == {f"arn:aws:s3:::data/{PROJECT}/*", f"arn:aws:s3:::artifacts/runs/{MODEL}/run-1/*",
                       f"arn:aws:s3:::artifacts/models/{MODEL}/v1/*"}
    writes = [s for s in policy["Statement"] if "s3:PutObject" in s["Action"]]
    assert [s["Resource"] for s in writes] == [f"arn:aws:s3:::artifacts/models/{MODEL}/v1/*"]


def test_a_second_start_while_training_is_refused(world):
    world.start()
    with pytest.raises(Conflict) as caught:
        world.start()
    assert caught.value.status == 409 and caught.value.details["current_status"] == "training"
    assert len(world.launcher.jobs) == 1 and list(world.runs.rows) == ["run-1"]


def test_of_two_racing_starts_exactly_one_wins(world):
    def first_request_wins(record):
        world.models.before_replace = None
        world.start()  # lands between the second request's read and its write

    world.models.before_replace = first_request_wins
    with pytest.raises(Conflict):
        world.start()
    [job] = world.launcher.jobs
    assert world.models.get(MODEL).training_task_id == job.run_id
    assert list(world.runs.rows) == [job.run_id]


def test_a_refused_submission_puts_the_model_back_as_it_was(world):
    world.models.replace(world.models.get(MODEL).but(status="trained", version=3,
                                                     model_artifact_path=world.artifact(3)))
    world.launcher.refuse_with = UpstreamFailed("x")
    with pytest.raises(UpstreamFailed):
        world.start()
    model = world.models.get(MODEL)
    assert (model.status, model.version, model.model_artifact_path, model.training_task_id) == (
        "trained", 3, world.artifact(3), "")
    assert world.runs.get("run-1").status == "failed"
    assert world.start()["status"] == "training"  # and training can start again


def test_a_start_that_cannot_be_written_leaves_model_and_runs_as_they_were(world):
    """The model's entry into training and its run record are one transaction: refused, neither is written."""
    before = world.models.get(MODEL)
    world.starts.fail_with = UpstreamUnavailable("the database is temporarily unavailable; retry shortly")
    with pytest.raises(UpstreamUnavailable):
        world.start()
    assert world.models.get(MODEL) == before and world.runs.rows == {}
    assert world.launcher.jobs == []


def test_complete_for_another_path_is_refused_and_changes_nothing(world):
    world.start()
    before = world.models.get(MODEL)
    for path in (world.artifact(2), "s3://artifacts/models/other/v1/", "s3://data/proj-1/readings/"):
        world.write_manifest("run-1")
        with pytest.raises(InvalidInput) as caught:
            world.complete(path=path)
        assert caught.value.field == "model_artifact_path"
    assert world.models.get(MODEL) == before


def test_complete_without_the_manifest_is_a_conflict(world):
    world.start()
    with pytest.raises(Conflict) as caught:
        world.complete()
    assert caught.value.field == "model_artifact_path"
    assert world.models.get(MODEL).status == "training"


@pytest.mark.parametrize("manifest", [{"run_id": "run-9"}, {"model_id": "model-b"}, {"version": 2}])
def test_a_manifest_naming_another_run_is_a_conflict(world, manifest):
    world.start()
    world.documents.put_json("artifacts", f"models/{MODEL}/v1/manifest.json",
                             {"run_id": "run-1", "model_id": MODEL, "version": 1, **manifest})
    with pytest.raises(Conflict):
        world.complete()
    assert world.models.get(MODEL).status == "training"


def test_complete_with_the_runs_manifest_trains_the_model_once(world):
    world.start()
    world.write_manifest("run-1")
    world.clock.advance(60)
    assert world.complete(path=world.artifact().rstrip("/")) == COMPLETED
    model = world.models.get(MODEL)
    assert (model.status, model.version, model.model_artifact_path) == ("trained", 1, world.artifact())
    assert (model.performance_metrics, model.trained_at) == ({"accuracy": 0.9}, world.clock.now)
    assert world.runs.get("run-1").status == "succeeded"
    world.clock.advance(60)
    assert world.complete() == COMPLETED  # a repeated callback is a no-op
    assert world.models.get(MODEL) == model


def test_fail_ends_the_run_and_the_model_keeps_the_reason(world):
    world.start()
    assert world.service.fail(MODEL, world.auth(), "run-1", {"reason": "out of memory"})["status"]
    model = world.models.get(MODEL)
    assert (model.status, model.metadata["failure_reason"]) == ("failed", "out of memory")
    assert (world.runs.get("run-1").status, world.runs.get("run-1").failure_reason) == ("failed", "out of memory")
    world.service.fail(MODEL, world.auth(), "run-1", {"reason": "again"})  # repeated: no-op
    assert world.models.get(MODEL) == model


def test_a_stale_runs_complete_is_a_conflict(world):
    world.start()
    first_job = world.launcher.jobs[0]
    world.service.fail(MODEL, world.auth(), "run-1", {"reason": "crashed"})
    world.start()
    second = world.models.get(MODEL)
    world.write_manifest("run-1")
    with pytest.raises(Conflict):
        world.complete(run_id="run-1", job=first_job)
    assert world.models.get(MODEL) == second and second.training_task_id == "run-2"


def test_a_run_past_its_deadline_is_failed_when_the_model_is_read(world):
    world.start()
    world.clock.advance(DEADLINE)
    assert world.settlement.expire_if_overdue(world.models.get(MODEL)).status == "training"  # not yet past
    world.clock.advance(1)
    model = world.settlement.expire_if_overdue(world.models.get(MODEL))
    assert model.status == "failed" and "deadline" in model.metadata["failure_reason"]
    assert world.models.get(MODEL) == model and world.runs.get("run-1").status == "failed"


def test_credentials_are_refreshed_only_while_the_run_lasts(world):
    world.start()
    fresh = world.service.refresh_credentials(MODEL, world.auth(), "run-1", None)
    assert fresh["access_key_id"] == "ASIA0002" and fresh["session_token"] == "session-2"
    assert world.issuer.requests[1] == world.issuer.requests[0]  # the same run, the same policy
    world.service.fail(MODEL, world.auth(), "run-1", {"reason": "crashed"})
    with pytest.raises(Conflict) as caught:
        world.service.refresh_credentials(MODEL, world.auth(), "run-1", None)
    assert caught.value.field == "run_id"
    assert len(world.issuer.requests) == 2


# ---- cancel ------------------------------------------------------------------------------


def test_cancel_puts_the_model_back_and_stops_the_job_after_it_left_the_run(world):
    world.start()
    world.notifier.events.clear()
    cancelled = world.service.cancel(MODEL, None)
    assert (cancelled["status"], cancelled["training_task_id"], cancelled["version"]) == ("draft", "", 0)
    assert world.launcher.cancels == [("train-run-1", 30)]
    run = world.runs.get("run-1")
    assert [h["status"] for h in run.status_history] == ["queued", "submitted", "cancelling", "cancelled"]
    assert world.notifier.events == [("status", MODEL, "training", "draft", "run-1"),
                                     ("cancelled", MODEL, "run-1")]
    world.write_manifest("run-1")
    for late in (lambda: world.complete(),
                 lambda: world.service.fail(MODEL, world.auth(), "run-1", {"reason": "cancelled"}),
                 lambda: world.service.progress(MODEL, world.auth(), "run-1", {"epoch": 3}),
                 lambda: world.service.refresh_credentials(MODEL, world.auth(), "run-1", None)):
        with pytest.raises(Conflict):
            late()
    assert world.models.get(MODEL).public() == cancelled and world.runs.get("run-1") == run


def test_a_launcher_that_cannot_cancel_leaves_the_run_cancelling_and_the_model_out_of_training(world):
    world.start()
    world.launcher.cancel_refuse_with = UpstreamFailed("the cluster forbids it")
    assert world.service.cancel(MODEL, {})["status"] == "draft"
    assert world.runs.get("run-1").status == "cancelling"
    with pytest.raises(Conflict):  # the trainer, still running, is refused
        world.service.progress(MODEL, world.auth(), "run-1", {"epoch": 1})
    world.settlement.end_cancel("run-1", "the job is gone")  # what the reconciler does once it is
    assert world.runs.get("run-1").status == "cancelled"
    assert ("cancelled", MODEL, "run-1") in world.notifier.events


def test_a_cancel_while_the_run_is_being_submitted_stops_the_job_it_submitted(world):
    original = world.launcher.submit

    def submit_during_a_cancel(job):
        name = original(job)
        world.service.cancel(MODEL, None)  # arrives before the run is marked submitted
        return name

    world.launcher.submit = submit_during_a_cancel
    world.start()
    assert world.runs.get("run-1").status == "cancelled" and world.models.get(MODEL).status == "draft"
    assert world.launcher.cancels[-1] == ("train-run-1", 30)


def test_cancel_of_a_model_not_training_names_its_status(world):
    with pytest.raises(Conflict) as caught:
        world.service.cancel(MODEL, None)
    assert (caught.value.field, caught.value.details["current_status"]) == ("status", "draft")
    with pytest.raises(InvalidInput):
        world.service.cancel(MODEL, {"force": True})
