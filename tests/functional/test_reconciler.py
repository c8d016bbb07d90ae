"""The scheduled reconcile against the fake Kubernetes API, through the real `kubernetes` client.

Each test trains a model with the EKS launcher, puts the Job and its pod into a state (as the Job
controller and kubelet would), invokes the scheduled function from the Chalice test client, and
reads the run and the model back through the API.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import SettableClock, install_graph
from fakes.kube_api import FakeKubeApi
from runs import own_artifact

from chalicelib.adapters.eks import ClusterAccess, EksJobLauncher, EksLauncherConfig
from chalicelib.records import TrainingRun
from chalicelib.services.common import utc_now
from chalicelib.services.run_settlement import shift

NAMESPACE = "ml-training"


@pytest.fixture
def clock():
    return SettableClock()


@pytest.fixture
def kube(api, clock):
    with FakeKubeApi() as fake:
        config = EksLauncherConfig(cluster_name="ml-models-test", image="trainer:test", namespace=NAMESPACE)
        fake.graph = install_graph(clock=clock, launcher=EksJobLauncher(
            config, cluster_access=lambda: ClusterAccess(host=fake.url, token="k8s-aws-v1.test")))
        yield fake


def reconcile(api) -> dict:
    client = api.client
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                            resources=["arn:aws:events:us-east-1:123456789012:rule/reconcile"])
    return client.lambda_.invoke("reconcile_runs", event).payload


def train(api, make_model) -> SimpleNamespace:
    model = make_model(type="random_forest")
    reply = api.post("/api/ml-models/train", {"model_id": model["id"]})
    assert reply.status == 202, reply
    run_id = reply.json["training_task_id"]
    job = api.get(f"/api/ml-models/{model['id']}/runs/{run_id}").json["job_name"]
    return SimpleNamespace(model_id=model["id"], run_id=run_id, job=job)


def state(api, run) -> tuple[dict, dict]:
    model = api.get(f"/api/ml-models/{run.model_id}").json
    return model, api.get(f"/api/ml-models/{run.model_id}/runs/{run.run_id}").json


def set_job_status(kube, name: str, **status) -> None:
    job = kube.get("jobs", NAMESPACE, name)
    job["status"] = status
    kube.put("jobs", NAMESPACE, job)


def condition(kind: str, reason: str, message: str = "", status: str = "True") -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def add_pod(kube, job: str, *, phase: str = "Pending", waiting: dict | None = None, terminated: dict | None = None,
            conditions: list | None = None) -> None:
    container_state = {"waiting": waiting} if waiting else {"terminated": terminated} if terminated else {}
    statuses = [{"name": "trainer", "image": "trainer:test", "imageID": "", "ready": False, "restartCount": 0,
                 "state": container_state}] if container_state else []
    kube.put("pods", NAMESPACE, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{job}-x7k2p", "labels": {"job-name": job}},
        "spec": {"containers": [{"name": "trainer", "image": "trainer:test"}]},
        "status": {"phase": phase, "containerStatuses": statuses, "conditions": conditions or []},
    })


def later(clock, seconds: int) -> None:
    clock.now = shift(utc_now(), seconds)


STUCK = [
    ("ImagePullBackOff", {"waiting": {"reason": "ImagePullBackOff",
                                      "message": 'Back-off pulling image "trainer:test"'}}),
    ("ErrImagePull", {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}),
    ("CreateContainerConfigError", {"waiting": {"reason": "CreateContainerConfigError",
                                                "message": 'secret "train-x-token" not found'}}),
    ("Unschedulable", {"conditions": [condition("PodScheduled", "Unschedulable",
                                                "0/3 nodes are available: 3 Insufficient cpu.", status="False")]}),
]


@pytest.mark.parametrize(("reason", "pod"), STUCK, ids=[s[0] for s in STUCK])
def test_a_pod_that_cannot_start_fails_the_run_after_the_start_deadline(api, kube, clock, make_model, reason, pod):
    run = train(api, make_model)
    add_pod(kube, run.job, **pod)
    message = (pod.get("waiting") or {}).get("message") or pod["conditions"][0]["message"]

    later(clock, 60)  # within the start deadline (600 s): it may still start
    reconcile(api)
    model, record = state(api, run)
    assert model["status"] == "training" and record["status"] == "submitted"

    later(clock, 601)
    summary = reconcile(api)
    assert summary["runs_seen"] >= 1
    model, record = state(api, run)
    assert record["status"] == "failed" and model["status"] == "failed"
    assert reason in record["failure_reason"] and message in record["failure_reason"]
    assert model["metadata"]["failure_reason"] == record["failure_reason"]


@pytest.mark.parametrize(("job_reason", "pod", "expected"), [
    ("DeadlineExceeded", None, "DeadlineExceeded"),
    ("BackoffLimitExceeded", None, "BackoffLimitExceeded"),
    ("BackoffLimitExceeded", {"phase": "Failed", "terminated": {"reason": "OOMKilled", "exitCode": 137}},
     "OOMKilled"),
], ids=["deadline", "backoff", "oom-killed"])
def test_a_failed_job_fails_the_run_with_its_reason(api, kube, make_model, job_reason, pod, expected):
    run = train(api, make_model)
    if pod:
        add_pod(kube, run.job, **pod)
    set_job_status(kube, run.job, failed=1, conditions=[condition("Failed", job_reason, "Job has failed")])
    reconcile(api)
    model, record = state(api, run)
    assert record["status"] == "failed" and model["status"] == "failed"
    assert expected in record["failure_reason"] and expected in model["metadata"]["failure_reason"]


def test_a_job_that_succeeded_without_its_callback_completes_from_its_manifest(api, kube, make_model):
    run = train(api, make_model)
    manifest = {"run_id": run.run_id, "model_id": run.model_id, "version": 1,
                "performance_metrics": {"accuracy": 0.91}, "training_metrics": {"epochs": 3}}
    artifact = own_artifact(api, run, manifest)
    set_job_status(kube, run.job, succeeded=1, conditions=[condition("Complete", "")])
    reconcile(api)
    model, record = state(api, run)
    assert record["status"] == "succeeded" and model["status"] == "trained"
    assert model["model_artifact_path"] == artifact and model["version"] == 1
    assert model["performance_metrics"] == {"accuracy": 0.91} and record["training_metrics"] == {"epochs": 3}


@pytest.mark.parametrize("manifest", [None, {"run_id": "run-someone-else", "model_id": "m", "version": 1}],
                         ids=["no-manifest", "foreign-manifest"])
def test_a_job_that_succeeded_without_a_valid_manifest_fails_the_run(api, kube, make_model, manifest):
    run = train(api, make_model)
    if manifest is not None:
        own_artifact(api, run, manifest)
    set_job_status(kube, run.job, succeeded=1, conditions=[condition("Complete", "")])
    reconcile(api)
    model, record = state(api, run)
    assert record["status"] == "failed" and model["status"] == "failed"
    assert "the trainer exited without reporting" in record["failure_reason"]


def test_a_job_that_no_longer_exists_fails_the_run(api, kube, make_model):
    run = train(api, make_model)
    kube.reset()  # deleted behind our back (kubectl delete, the cluster replaced)
    reconcile(api)
    model, record = state(api, run)
    assert record["status"] == "failed" and model["status"] == "failed"
    assert "the job no longer exists" in record["failure_reason"]


def test_a_run_never_submitted_fails_after_the_submission_grace(api, kube, clock, make_model):
    """A train request that died after writing the run (the Lambda timed out before submitting)."""
    model = make_model()
    graph, now = kube.graph, utc_now()
    run_id = f"run-lost-{model['id']}"
    graph.repos.models.modify(model["id"], lambda m: m.but(status="training", training_task_id=run_id,
                                                           runs_started=1, updated_at=now))
    graph.repos.training_runs.add(TrainingRun(
        run_id=run_id, model_id=model["id"], project_id=model["project_id"], version=1, model_type=model["type"],
        status="queued", callback_token_hash="ab" * 32, created_at=now, updated_at=now,
        previous_model_status="draft", deadline_at=shift(now, 6 * 3600)))
    run = SimpleNamespace(model_id=model["id"], run_id=run_id)

    later(clock, 60)  # the request may still be submitting it
    reconcile(api)
    assert state(api, run)[1]["status"] == "queued"

    later(clock, 301)
    reconcile(api)
    model, record = state(api, run)
    assert record["status"] == "failed" and model["status"] == "failed"
    assert "the job was never submitted" in record["failure_reason"]


def test_a_running_job_is_left_alone(api, kube, clock, make_model):
    run = train(api, make_model)
    add_pod(kube, run.job, phase="Running")
    set_job_status(kube, run.job, active=1)
    later(clock, 3600)
    reconcile(api)
    model, record = state(api, run)
    assert model["status"] == "training" and record["status"] == "submitted"


def test_an_unreachable_cluster_changes_nothing_and_the_next_sweep_retries(api, kube, make_model):
    run = train(api, make_model)
    set_job_status(kube, run.job, failed=1, conditions=[condition("Failed", "DeadlineExceeded")])
    kube.fail_next(503, times=50, method="GET", resource="jobs")
    summary = reconcile(api)
    assert summary.get("error", 0) >= 1
    assert state(api, run)[0]["status"] == "training"
    kube.clear_failures()
    reconcile(api)
    assert state(api, run)[1]["status"] == "failed"
