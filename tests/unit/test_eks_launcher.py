"""EksJobLauncher: the real `kubernetes` client against a fake API server, the manifests
against the Kubernetes JSON schemas (strict), and the EKS token / DescribeCluster parts
against botocore and moto."""
from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import kubernetes_validate
import pytest
from botocore.config import Config
from fakes.kube_api import FakeKubeApi

from chalicelib.adapters.eks import (
    ClusterAccess,
    EksClusterAccess,
    EksJobLauncher,
    EksLauncherConfig,
    EksTokenGenerator,
    build_job_manifest,
    build_secret_manifest,
    label_value,
    secret_name,
)
from chalicelib.adapters.launcher import TrainingJob, job_name
from chalicelib.errors import UpstreamFailed, UpstreamUnavailable

NS = "ml-training"
API_TOKEN = "k8s-aws-v1.c3RhdGljLXRlc3QtdG9rZW4"
CALLBACK_TOKEN = "cb-token-5f0c1e"
MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
# EKS versions in standard support when this was written, and the newest schemas shipped.
K8S_VERSIONS = ("1.30", "1.33", kubernetes_validate.latest_version())
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def make_config(**overrides) -> EksLauncherConfig:
    values = {"cluster_name": "ml-cluster", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1.0"}
    values.update(overrides)
    return EksLauncherConfig(**values)


def make_job(run_id: str = "01HZXRUN0001", model_type: str = "random_forest", **overrides) -> TrainingJob:
    values = {
        "run_id": run_id,
        "model_id": "mdl-42",
        "project_id": "proj-7",
        "model_type": model_type,
        "callback_token": CALLBACK_TOKEN,
        "environment": {
            "TRAINER_MODEL_ID": "mdl-42",
            "TRAINER_RUN_ID": run_id,
            "TRAINER_CALLBACK_URL": "https://api.example.com/v1/training-runs/callback",
            "TRAINER_SPEC_URI": "s3://bucket/specs/run.json",
        },
    }
    values.update(overrides)
    return TrainingJob(**values)


def closed_port_url(scheme: str = "http") -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


def decode_token(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    payload = token.removeprefix("k8s-aws-v1.")
    assert "=" not in payload
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


@pytest.fixture
def kube():
    with FakeKubeApi() as server:
        yield server


@pytest.fixture
def launcher(kube):
    return EksJobLauncher(make_config(), cluster_access=lambda: ClusterAccess(host=kube.url, token=API_TOKEN))


def only(objects: dict) -> dict:
    assert len(objects) == 1, sorted(objects)
    return next(iter(objects.values()))


# ---- submit against the fake API server ---------------------------------------------


def test_submit_creates_one_job_and_its_token_secret(kube, launcher):
    job = make_job()

    name = launcher.submit(job)

    assert name == job_name(job.run_id)
    created_job = only(kube.objects("jobs", NS))
    secret = only(kube.objects("secrets", NS))
    assert created_job["metadata"]["name"] == name
    labels = {"app.kubernetes.io/name": "ml-trainer", "ml-models/model-id": "mdl-42", "ml-models/run-id": job.run_id}
    assert created_job["metadata"]["labels"] == labels
    assert created_job["spec"]["template"]["metadata"]["labels"] == labels
    assert secret["metadata"]["labels"] == labels
    assert secret["metadata"]["name"] == secret_name(job.run_id)
    assert base64.b64decode(secret["data"]["callback-token"]).decode() == CALLBACK_TOKEN
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": created_job["metadata"]["uid"],
        }
    ]
    assert all(auth == f"Bearer {API_TOKEN}" for auth in kube.authorizations)


def test_the_job_runs_the_configured_trainer_with_env_and_the_token_from_the_secret(kube, launcher):
    job = make_job()

    launcher.submit(job)

    spec = only(kube.objects("jobs", NS))["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == make_config().image
    assert pod["serviceAccountName"] == "ml-trainer"
    assert pod["restartPolicy"] == "Never"
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (0, 21600, 86400)
    env = {e["name"]: e for e in container["env"]}
    for key, value in job.environment.items():
        assert env[key] == {"name": key, "value": value}
    assert env["TRAINER_CALLBACK_TOKEN"] == {
        "name": "TRAINER_CALLBACK_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": secret_name(job.run_id), "key": "callback-token"}},
    }
    assert CALLBACK_TOKEN not in json.dumps(only(kube.objects("jobs", NS)))


def test_a_job_with_its_own_deadline_gets_it_as_active_deadline_seconds(kube, launcher):
    """A tuned run's budget plus margin bounds its Job; a job's deadline never lengthens the stage's."""
    launcher.submit(make_job(deadline_seconds=960))
    launcher.submit(make_job(run_id="01HZXRUN0002", deadline_seconds=10**6))
    deadlines = sorted(j["spec"]["activeDeadlineSeconds"] for j in kube.objects("jobs", NS).values())
    assert deadlines == [960, 21600]


def test_the_pod_runs_non_root_with_a_read_only_root_and_a_writable_tmp(kube, launcher):
    launcher.submit(make_job())

    pod = only(kube.objects("jobs", NS))["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert [v["name"] for v in pod["volumes"] if "emptyDir" in v] == ["tmp"]


def test_a_plain_token_in_the_environment_never_reaches_the_job(kube, launcher):
    job = make_job(environment={"TRAINER_RUN_ID": "r", "TRAINER_CALLBACK_TOKEN": CALLBACK_TOKEN})

    launcher.submit(job)

    env = only(kube.objects("jobs", NS))["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] == "TRAINER_CALLBACK_TOKEN"][0].get("value") is None
    assert CALLBACK_TOKEN not in json.dumps(env)


RUN_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ASIARUNKEY0001", "AWS_SECRET_ACCESS_KEY": "run-secret-key-9f3a",
                   "AWS_SESSION_TOKEN": "run-session-token-77c1"}


def test_the_runs_aws_credentials_live_in_its_secret_and_never_in_the_job(kube, launcher):
    job = make_job(secrets=RUN_CREDENTIALS,
                   environment={**make_job().environment, "TRAINER_CREDENTIALS_EXPIRATION": "2030-01-01T00:00:00Z"})

    launcher.submit(job)

    manifest = only(kube.objects("jobs", NS))
    env = {e["name"]: e for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    for value in (*RUN_CREDENTIALS.values(), CALLBACK_TOKEN):
        assert value not in json.dumps(manifest)
    secret = only(kube.objects("secrets", NS))
    stored = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    for name, value in {**RUN_CREDENTIALS, "TRAINER_CALLBACK_TOKEN": CALLBACK_TOKEN}.items():
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[name] and ref["name"] == secret["metadata"]["name"]
        assert stored[ref["key"]] == value
    assert len(stored) == 4
    # Not a secret: the trainer needs it in plain sight to know when to refresh.
    assert env["TRAINER_CREDENTIALS_EXPIRATION"] == {"name": "TRAINER_CREDENTIALS_EXPIRATION",
                                                     "value": "2030-01-01T00:00:00Z"}


def test_an_expiry_handed_over_with_the_credentials_reaches_the_trainer_once(kube, launcher):
    job = make_job(secrets={**RUN_CREDENTIALS, "TRAINER_CREDENTIALS_EXPIRATION": "2030-01-01T00:00:00Z"})

    launcher.submit(job)

    env = only(kube.objects("jobs", NS))["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env].count("TRAINER_CREDENTIALS_EXPIRATION") == 1
    stored = only(kube.objects("secrets", NS))["data"]
    assert base64.b64decode(stored["trainer-credentials-expiration"]).decode() == "2030-01-01T00:00:00Z"


def test_secret_values_put_in_the_plain_environment_still_go_to_the_secret(kube, launcher):
    job = make_job(environment={**make_job().environment, **RUN_CREDENTIALS})

    launcher.submit(job)

    manifest = only(kube.objects("jobs", NS))
    assert not any(value in json.dumps(manifest) for value in RUN_CREDENTIALS.values())
    stored = only(kube.objects("secrets", NS))["data"]
    assert base64.b64decode(stored["aws-secret-access-key"]).decode() == RUN_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]


def test_an_api_error_message_never_echoes_a_run_credential(kube, launcher):
    kube.fail_next(422, message=f"invalid: {RUN_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}")

    with pytest.raises(UpstreamFailed) as raised:
        launcher.submit(make_job(secrets=RUN_CREDENTIALS))

    assert RUN_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in raised.value.message


@pytest.mark.parametrize(
    ("model_type", "cpu", "memory"),
    [("decision_tree", "1", "2Gi"), ("regression", "1", "2Gi"), ("random_forest", "2", "4Gi"),
     ("neural_network", "4", "8Gi")],
)
def test_resources_follow_the_model_type(kube, launcher, model_type, cpu, memory):
    launcher.submit(make_job(model_type=model_type))

    pod = only(kube.objects("jobs", NS))["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": cpu, "memory": memory}
    assert "nvidia.com/gpu" not in resources["limits"]
    assert "tolerations" not in pod


def test_configured_resources_override_the_defaults_per_type():
    config = make_config(resources={"regression": {"requests": {"cpu": "250m", "memory": "512Mi"}}})

    regression = build_job_manifest(make_job(model_type="regression"), config)
    forest = build_job_manifest(make_job(model_type="random_forest"), config)

    assert regression["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"}
    }
    assert forest["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "2"


def test_gpu_toggle_adds_a_gpu_and_toleration_to_neural_networks_only(kube):
    launcher = EksJobLauncher(
        make_config(gpu_for_neural_network=True),
        cluster_access=lambda: ClusterAccess(host=kube.url, token=API_TOKEN),
    )

    launcher.submit(make_job(run_id="nn-run", model_type="neural_network"))
    launcher.submit(make_job(run_id="tree-run", model_type="decision_tree"))

    jobs = kube.objects("jobs", NS)
    nn = jobs[job_name("nn-run")]["spec"]["template"]["spec"]
    tree = jobs[job_name("tree-run")]["spec"]["template"]["spec"]
    assert nn["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert nn["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nvidia.com/gpu" not in tree["containers"][0]["resources"]["limits"]
    assert "tolerations" not in tree


def test_submitting_the_same_run_twice_creates_nothing_twice(kube, launcher):
    job = make_job()

    first = launcher.submit(job)
    job_before = only(kube.objects("jobs", NS))
    second = launcher.submit(job)

    assert first == second
    assert only(kube.objects("jobs", NS)) == job_before
    secret = only(kube.objects("secrets", NS))
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job_before["metadata"]["uid"]


def test_a_job_of_another_run_with_the_same_name_is_refused_and_left_alone(kube, launcher):
    job = make_job()
    kube.put("jobs", NS, {"kind": "Job", "metadata": {"name": job_name(job.run_id),
                                                      "labels": {"ml-models/run-id": "someone-else"}}})

    with pytest.raises(UpstreamFailed) as raised:
        launcher.submit(job)

    assert "already exists for another run" in raised.value.message
    assert only(kube.objects("jobs", NS))["metadata"]["labels"] == {"ml-models/run-id": "someone-else"}
    assert kube.objects("secrets", NS) == {}


def test_a_job_still_being_deleted_is_not_adopted(kube, launcher):
    job = make_job()
    kube.put("jobs", NS, build_job_manifest(job, make_config()))
    stored = kube.get("jobs", NS, job_name(job.run_id))
    stored["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    kube.put("jobs", NS, stored)

    with pytest.raises(UpstreamUnavailable, match="still being deleted"):
        launcher.submit(job)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_an_upstream_failure_that_says_so(kube, launcher, status):
    kube.fail_next(status)

    with pytest.raises(UpstreamFailed) as raised:
        launcher.submit(make_job())

    assert raised.value.status == 502
    assert f"({status})" in raised.value.message
    assert "create Job ml-training/" in raised.value.message
    assert API_TOKEN not in raised.value.message and CALLBACK_TOKEN not in raised.value.message
    assert kube.objects("jobs", NS) == {} and kube.objects("secrets", NS) == {}


def test_a_rejected_spec_is_an_upstream_failure_with_the_api_explanation(kube, launcher):
    kube.fail_next(422, message='Job.batch "x" is invalid: spec.template.spec.containers[0].image: Required value')

    with pytest.raises(UpstreamFailed) as raised:
        launcher.submit(make_job())

    assert "rejected the spec" in raised.value.message
    assert "containers[0].image: Required value" in raised.value.message


def test_a_server_error_is_an_upstream_failure(kube, launcher):
    kube.fail_next(500)

    with pytest.raises(UpstreamFailed) as raised:
        launcher.submit(make_job())

    assert "(500)" in raised.value.message
    assert kube.objects("jobs", NS) == {}


def test_a_throttled_or_unavailable_api_is_unavailable(kube, launcher):
    kube.fail_next(503)

    with pytest.raises(UpstreamUnavailable):
        launcher.submit(make_job())


def test_a_slow_api_times_out_quickly_as_unavailable_and_the_retry_adopts_the_job(kube):
    config = make_config(read_timeout_seconds=0.2)
    launcher = EksJobLauncher(config, cluster_access=lambda: ClusterAccess(host=kube.url, token=API_TOKEN))
    kube.stall_next(1.0, method="POST", resource="jobs")

    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="create Job"):
        launcher.submit(make_job())
    assert time.monotonic() - started < 0.9

    deadline = time.monotonic() + 5
    while not kube.objects("jobs", NS) and time.monotonic() < deadline:  # the server finishes the slow create
        time.sleep(0.05)
    launcher.submit(make_job())
    assert len(kube.objects("jobs", NS)) == 1 and len(kube.objects("secrets", NS)) == 1


def test_an_api_server_that_is_not_listening_is_unavailable():
    launcher = EksJobLauncher(make_config(), cluster_access=lambda: ClusterAccess(closed_port_url(), API_TOKEN))

    with pytest.raises(UpstreamUnavailable) as raised:
        launcher.submit(make_job())

    assert raised.value.status == 503
    assert "could not reach the Kubernetes API of cluster 'ml-cluster'" in raised.value.message


def test_an_https_endpoint_with_the_cluster_ca_that_is_not_listening_is_unavailable():
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    access = ClusterAccess(closed_port_url("https"), API_TOKEN, ca_cert_data=ca)
    launcher = EksJobLauncher(make_config(), cluster_access=lambda: access)

    with pytest.raises(UpstreamUnavailable):
        launcher.submit(make_job())


def test_an_unreadable_cluster_ca_is_an_upstream_failure():
    access = ClusterAccess("https://127.0.0.1:1", API_TOKEN, ca_cert_data="not base64!")
    launcher = EksJobLauncher(make_config(), cluster_access=lambda: access)

    with pytest.raises(UpstreamFailed, match="certificate authority"):
        launcher.submit(make_job())


@pytest.mark.parametrize("status", [500, 403, 422])
def test_when_the_secret_cannot_be_created_the_job_is_deleted_too(kube, launcher, status):
    kube.fail_next(status, method="POST", resource="secrets")

    with pytest.raises(UpstreamFailed) as raised:
        launcher.submit(make_job())

    assert "create Secret" in raised.value.message
    assert kube.objects("jobs", NS) == {}
    assert kube.objects("secrets", NS) == {}
    deletes = [r for r in kube.requests if r.method == "DELETE"]
    assert [r.resource for r in deletes] == ["jobs"] and "propagationPolicy=Background" in deletes[0].path


def test_after_a_rolled_back_submission_a_retry_creates_both(kube, launcher):
    kube.fail_next(500, method="POST", resource="secrets")
    with pytest.raises(UpstreamFailed):
        launcher.submit(make_job())

    launcher.submit(make_job())

    job = only(kube.objects("jobs", NS))
    assert only(kube.objects("secrets", NS))["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]


def test_a_job_from_an_earlier_submission_is_kept_when_its_secret_fails(kube, launcher):
    job = make_job()
    launcher.submit(job)
    kube.put("secrets", NS, {"kind": "Secret", "metadata": {"name": secret_name(job.run_id),
                                                            "labels": {"ml-models/run-id": "someone-else"}}})

    with pytest.raises(UpstreamFailed, match="another run"):
        launcher.submit(job)

    assert list(kube.objects("jobs", NS)) == [job_name(job.run_id)]


def test_a_job_left_behind_when_cleanup_fails_does_not_hide_the_first_error(kube, launcher):
    kube.fail_next(500, method="POST", resource="secrets")
    kube.fail_next(503, method="DELETE", resource="jobs")

    with pytest.raises(UpstreamFailed, match="create Secret"):
        launcher.submit(make_job())


# ---- cancel ------------------------------------------------------------------------------


def test_cancel_deletes_the_job_in_the_foreground_with_a_grace_period(kube, launcher):
    job = make_job()
    name = launcher.submit(job)

    launcher.cancel(name, 25)

    assert kube.objects("jobs", NS) == {}
    [delete] = [r for r in kube.requests if r.method == "DELETE"]
    assert (delete.resource, delete.name) == ("jobs", name)
    assert "propagationPolicy=Foreground" in delete.path and "gracePeriodSeconds=25" in delete.path
    assert delete.authorization == f"Bearer {API_TOKEN}"


def test_the_pod_gets_the_configured_grace_between_sigterm_and_sigkill(kube):
    launcher = EksJobLauncher(make_config(termination_grace_seconds=45),
                              cluster_access=lambda: ClusterAccess(host=kube.url, token=API_TOKEN))
    launcher.submit(make_job())
    assert only(kube.objects("jobs", NS))["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 45


def test_cancel_of_a_job_already_gone_is_not_an_error(kube, launcher):
    launcher.cancel(job_name("01HZXRUN0009"), 30)
    assert [r.method for r in kube.requests] == ["DELETE"]


@pytest.mark.parametrize(("status", "error"), [(503, UpstreamUnavailable), (403, UpstreamFailed)])
def test_a_cancel_the_api_refuses_says_so(kube, launcher, status, error):
    name = launcher.submit(make_job())
    kube.fail_next(status, method="DELETE", resource="jobs")
    with pytest.raises(error, match="delete Job"):
        launcher.cancel(name, 30)
    assert list(kube.objects("jobs", NS)) == [name]


# ---- the manifests against the Kubernetes schemas ------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_manifests_pass_strict_schema_validation(model_type, gpu, version):
    config = make_config(gpu_for_neural_network=gpu)
    job = make_job(model_type=model_type, secrets=RUN_CREDENTIALS)

    kubernetes_validate.validate(build_job_manifest(job, config), version, strict=True)
    kubernetes_validate.validate(build_secret_manifest(job, config, "6f1c2d3e-0000-4000-8000-000000000001"),
                                 version, strict=True)


def test_strict_validation_does_catch_a_bad_manifest():
    manifest = build_job_manifest(make_job(), make_config())
    manifest["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = "yes"

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, K8S_VERSIONS[0], strict=True)


def test_awkward_ids_still_make_valid_names_and_labels():
    job = make_job(run_id="Run/" + "x" * 80 + "_.", model_id="--Model: ünïcode / 42--")

    manifest = build_job_manifest(job, make_config())

    for value in manifest["metadata"]["labels"].values():
        assert len(value) <= 63 and LABEL_VALUE.match(value), value
    assert manifest["metadata"]["annotations"]["ml-models/run-id"] == job.run_id
    kubernetes_validate.validate(manifest, K8S_VERSIONS[0], strict=True)
    assert label_value("_" * 5) == ""


# ---- the EKS token and DescribeCluster -------------------------------------------------


def sts_client(region: str = "eu-west-1"):
    return boto3.client("sts", region_name=region)


def test_the_token_is_a_presigned_get_caller_identity_url_bound_to_the_cluster():
    token = EksTokenGenerator(lambda: sts_client("eu-west-1"))("ml-cluster")

    url = urlsplit(decode_token(token))
    query = parse_qs(url.query)
    assert (url.scheme, url.netloc, url.path) == ("https", "sts.eu-west-1.amazonaws.com", "/")
    assert url.query.startswith("Action=GetCallerIdentity&Version=2011-06-15&X-Amz-")
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert query["X-Amz-Expires"] == ["60"]
    assert "/eu-west-1/sts/aws4_request" in query["X-Amz-Credential"][0]
    assert "ml-cluster" not in url.query  # the cluster name travels as a signed header, not a parameter


def test_a_token_generator_on_a_shared_sts_client_registers_its_handlers_once():
    shared = sts_client()
    first = EksTokenGenerator(lambda: shared)
    second = EksTokenGenerator(lambda: shared)

    first("a")
    token = second("b")

    assert "x-k8s-aws-id" in parse_qs(urlsplit(decode_token(token)).query)["X-Amz-SignedHeaders"][0]


class CountingTokens:
    """Counts the tokens made; hands out the real generator's tokens."""

    def __init__(self, inner):
        self.inner = inner
        self.issued: list[str] = []

    def __call__(self, cluster_name: str) -> str:
        token = self.inner(cluster_name)
        self.issued.append(token)
        return token


class FakeEks:
    """Just DescribeCluster, answering with the fake API server's address."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def describe_cluster(self, name: str) -> dict:
        ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
        return {"cluster": {"name": name, "status": "ACTIVE", "endpoint": self.endpoint,
                            "certificateAuthority": {"data": ca}}}


def test_every_submission_gets_a_freshly_made_token(kube):
    tokens = CountingTokens(EksTokenGenerator(sts_client))
    access = EksClusterAccess("ml-cluster", lambda: FakeEks(kube.url), tokens)
    launcher = EksJobLauncher(make_config(), cluster_access=access)

    launcher.submit(make_job(run_id="run-a"))
    requests_of_first = len(kube.requests)
    launcher.submit(make_job(run_id="run-b"))

    assert len(tokens.issued) == 2
    assert set(kube.authorizations[:requests_of_first]) == {f"Bearer {tokens.issued[0]}"}
    assert set(kube.authorizations[requests_of_first:]) == {f"Bearer {tokens.issued[1]}"}
    assert "x-k8s-aws-id" in decode_token(tokens.issued[1])


def test_the_launcher_defaults_build_the_access_from_describe_cluster_and_sts(kube):
    launcher = EksJobLauncher(
        make_config(), eks_client_factory=lambda: FakeEks(kube.url + "/"), sts_client_factory=sts_client
    )

    launcher.submit(make_job())

    (authorization,) = set(kube.authorizations)
    assert authorization.startswith("Bearer k8s-aws-v1.")
    assert "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id" in decode_token(authorization.removeprefix("Bearer "))


@pytest.fixture
def moto_eks(moto_server):
    # The shared moto server, not `mock_aws`: leaving `mock_aws` resets the in-process
    # backends that server uses too, which emptied the buckets of later trainer tests.
    client = boto3.client("eks", region_name="us-east-1", endpoint_url=moto_server)
    try:
        client.create_cluster(
            name="ml-cluster", roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={}
        )
    except client.exceptions.ResourceInUseException:
        pass  # made by an earlier test of this session
    return client


def test_cluster_access_reads_endpoint_and_ca_from_describe_cluster(moto_eks):
    described = moto_eks.describe_cluster(name="ml-cluster")["cluster"]
    tokens = CountingTokens(EksTokenGenerator(sts_client))

    access = EksClusterAccess("ml-cluster", lambda: moto_eks, tokens)()

    assert access.host == described["endpoint"].rstrip("/")
    assert access.ca_cert_data == described["certificateAuthority"]["data"]
    assert access.token == tokens.issued[0]
    assert access.token not in repr(access)


def test_a_missing_cluster_is_an_upstream_failure_naming_it(moto_eks):
    access = EksClusterAccess("no-such-cluster", lambda: moto_eks, EksTokenGenerator(sts_client))

    with pytest.raises(UpstreamFailed, match="EKS cluster 'no-such-cluster' does not exist"):
        access()


def test_an_unreachable_eks_endpoint_is_unavailable():
    def eks_client():
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1)
        return boto3.client("eks", region_name="us-east-1", endpoint_url=closed_port_url(), config=config)

    access = EksClusterAccess("ml-cluster", eks_client, EksTokenGenerator(sts_client))

    with pytest.raises(UpstreamUnavailable, match="could not reach EKS"):
        access()


def test_importing_the_adapter_does_not_import_kubernetes_or_boto3():
    code = (
        "import sys, chalicelib.adapters.eks; "
        "heavy = [m for m in ('kubernetes', 'boto3', 'botocore', 'urllib3') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
