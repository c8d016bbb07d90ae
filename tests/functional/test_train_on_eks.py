"""The train route with the EKS launcher: the real kubernetes client against a fake API server."""
from __future__ import annotations

import base64
import json

import boto3
import pytest
from conftest import install_graph
from fakes.kube_api import FakeKubeApi

from chalicelib.adapters.eks import ClusterAccess, EksJobLauncher, EksLauncherConfig

NAMESPACE = "ml-training"


@pytest.fixture
def kube(api):
    with FakeKubeApi() as fake:
        config = EksLauncherConfig(cluster_name="ml-models-test", image="trainer:test", namespace=NAMESPACE)
        install_graph(launcher=EksJobLauncher(
            config, cluster_access=lambda: ClusterAccess(host=fake.url, token="k8s-aws-v1.test")))
        yield fake


def test_train_creates_the_job_and_its_token_secret(api, kube, make_model):
    model = make_model(type="random_forest")
    reply = api.post("/api/ml-models/train", {"model_id": model["id"]})
    assert reply.status == 202, reply
    run_id = reply.json["training_task_id"]
    jobs = kube.objects("jobs", NAMESPACE)
    secrets = kube.objects("secrets", NAMESPACE)
    assert len(jobs) == 1 and len(secrets) == 1
    job = next(iter(jobs.values()))
    secret = next(iter(secrets.values()))
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["TRAINER_RUN_ID"]["value"] == run_id and env["TRAINER_MODEL_ID"]["value"] == model["id"]
    assert env["TRAINER_SPEC_URI"]["value"].startswith("s3://")
    assert env["TRAINER_CALLBACK_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    # The run's AWS credentials travel in the Secret too, never as values in the Job.
    values = {name: base64.b64decode(value).decode() for name, value in secret["data"].items()}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        assert values[env[name]["valueFrom"]["secretKeyRef"]["key"]]
    assert not any(v in json.dumps(job) for v in values.values())
    # The token in the Secret is the one the callbacks accept.
    token = values[env["TRAINER_CALLBACK_TOKEN"]["valueFrom"]["secretKeyRef"]["key"]]
    artifact = f"s3://ml-models-artifacts-local/models/{model['id']}/v1/"
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket="ml-models-artifacts-local", Key=f"models/{model['id']}/v1/manifest.json",
        Body=json.dumps({"run_id": run_id, "model_id": model["id"], "version": 1}).encode())
    complete = api.post(f"/api/ml-models/{model['id']}/training/complete", {"model_artifact_path": artifact},
                        headers={"Authorization": f"Bearer {token}", "X-Training-Run-Id": run_id})
    assert complete.status == 200, complete
    run = api.get(f"/api/ml-models/{model['id']}/runs/{run_id}").json
    assert run["job_name"] == job["metadata"]["name"]


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (401, 502), (403, 502)])
def test_a_refused_submission_answers_5xx_and_leaves_the_model_as_it_was(api, kube, make_model, status, expected):
    model = make_model()
    kube.fail_next(status, method="POST", resource="jobs")
    reply = api.post("/api/ml-models/train", {"model_id": model["id"]})
    assert reply.status == expected, reply
    assert reply.json["code"] == "upstream_failed"
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after["status"] == "draft" and "submission failed" in after["metadata"]["failure_reason"]
    assert kube.objects("jobs", NAMESPACE) == {} and kube.objects("secrets", NAMESPACE) == {}


def test_an_unreachable_cluster_answers_503(api, make_model):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = EksLauncherConfig(cluster_name="c", image="trainer:test", namespace=NAMESPACE,
                               connect_timeout_seconds=1.0)
    install_graph(launcher=EksJobLauncher(
        config, cluster_access=lambda: ClusterAccess(host=f"http://127.0.0.1:{port}", token="t")))
    model = make_model()
    reply = api.post("/api/ml-models/train", {"model_id": model["id"]})
    assert reply.status == 503 and reply.json["code"] == "upstream_unavailable"
    assert api.get(f"/api/ml-models/{model['id']}").json["status"] == "draft"
