"""Must-show 3: a training run's AWS credentials reach its own data and artifacts, nothing else.

A run's credentials are the trainer run role (infra/cloudformation/trainer-run-role.yaml)
narrowed by the session policy `DataScope.session_policy` builds for it: IAM allows a request
only if both allow it. Both are evaluated here with tests/infra/policy_eval.py, against the
requests the trainer makes (GetObject, HeadObject = s3:GetObject, ListObjectsV2 = s3:ListBucket
with s3:prefix, PutObject). The trainer's shared IRSA role must not reach any data by itself.
`RunCredentialIssuer` is run against moto's STS.
"""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from infra_support import CHALICE_CONFIG, CLOUDFORMATION, chalice_stages, free_port, load_template, resolve
from moto import mock_aws
from policy_eval import IamRequest, allowed_by_all, allowing_statements

from chalicelib.adapters.sts import RunCredentialIssuer, RunCredentials, role_session_name
from chalicelib.errors import UpstreamFailed, UpstreamUnavailable
from chalicelib.services.data_scope import MAX_SESSION_POLICY_CHARS, DataScope, policy_json

ACCOUNT = "123456789012"
ARTIFACTS = f"ml-models-artifacts-dev-{ACCOUNT}"
DATA = f"ml-models-data-dev-{ACCOUNT}"
GRANTS = {"proj-1": ["s3://team-bucket/sensors/"]}
API_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ml-models-dev-ApiHandlerRole-1A2B3C4D5E6F"
MODEL, VERSION, RUN = "model-0123456789abcdef0123456789abcdef", 3, "run-fedcba9876543210fedcba9876543210"


def _role_resource(template: str, logical_id: str, params: dict) -> dict:
    resources = load_template(CLOUDFORMATION / template)["Resources"]
    return resolve(resources[logical_id]["Properties"], {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT,
                                                         "AWS::Region": "us-east-1", **params})


def run_role(data_bucket_arns: list[str]) -> dict:
    return _role_resource("trainer-run-role.yaml", "TrainerRunRole", {
        "Stage": "dev", "ApiHandlerRoleArn": API_ROLE, "ArtifactBucketName": ARTIFACTS, "ArtifactPrefix": "models",
        "RunsPrefix": "runs", "DataBucketArns": data_bucket_arns})


@pytest.fixture(scope="module")
def effective() -> list[dict]:
    """[session policy, run role policy] of run RUN of MODEL v3, project proj-1."""
    scope = DataScope.from_config(DATA, json.dumps(GRANTS), ARTIFACTS)
    session = scope.session_policy(project_id="proj-1", model_id=MODEL, version=VERSION, run_id=RUN)
    (role_policy,) = run_role([f"arn:aws:s3:::{DATA}", "arn:aws:s3:::team-bucket"])["Policies"]
    return [session, role_policy["PolicyDocument"]]


def get(bucket: str, key: str) -> IamRequest:
    return IamRequest("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")


def put(bucket: str, key: str) -> IamRequest:
    return IamRequest("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}")


def list_(bucket: str, prefix: str | None) -> IamRequest:
    context = () if prefix is None else (("s3:prefix", prefix),)
    return IamRequest("s3:ListBucket", f"arn:aws:s3:::{bucket}", context)


ALLOWED = [
    get(DATA, "proj-1/readings/part-0.csv"),
    list_(DATA, "proj-1/readings/"),
    list_(DATA, "proj-1/"),
    get("team-bucket", "sensors/2026/a.parquet"),  # the project's grant
    list_("team-bucket", "sensors/2026/"),
    get(ARTIFACTS, f"runs/{MODEL}/{RUN}/spec.json"),  # its own spec
    put(ARTIFACTS, f"models/{MODEL}/v{VERSION}/model.skops"),
    put(ARTIFACTS, f"models/{MODEL}/v{VERSION}/manifest.json"),
    get(ARTIFACTS, f"models/{MODEL}/v{VERSION}/manifest.json"),  # HEAD before writing
    list_(ARTIFACTS, f"models/{MODEL}/v{VERSION}/"),
]
DENIED = {
    "another project's data, same bucket": get(DATA, "other-proj/readings/part-0.csv"),
    "listing another project's data": list_(DATA, "other-proj/"),
    "the proj-1 / proj-12 boundary": get(DATA, "proj-12/readings/part-0.csv"),
    "listing across the boundary": list_(DATA, "proj-12/"),
    "listing the whole data bucket": list_(DATA, None),
    "listing the bucket's top level": list_(DATA, ""),
    "the grant's bucket outside the grant": get("team-bucket", "finance/salaries.csv"),
    "the grant's prefix in the data bucket": list_(DATA, "sensors/"),
    "a bucket the run role does not know": get("some-other-bucket", "proj-1/x.csv"),
    "another model's artifacts": get(ARTIFACTS, "models/model-other/v1/model.skops"),
    "writing another model's artifacts": put(ARTIFACTS, "models/model-other/v1/model.skops"),
    "another version of its own model": put(ARTIFACTS, f"models/{MODEL}/v{VERSION - 1}/model.skops"),
    "a version sharing the digits": put(ARTIFACTS, f"models/{MODEL}/v{VERSION}0/model.skops"),
    "another run's spec": get(ARTIFACTS, f"runs/{MODEL}/run-other/spec.json"),
    "another model's spec": get(ARTIFACTS, f"runs/model-other/{RUN}/spec.json"),
    "writing its spec": put(ARTIFACTS, f"runs/{MODEL}/{RUN}/spec.json"),
    "listing all artifacts": list_(ARTIFACTS, "models/"),
    "listing the runs": list_(ARTIFACTS, "runs/"),
    "writing training data": put(DATA, "proj-1/readings/part-9.csv"),
    "deleting its own artifact": IamRequest("s3:DeleteObject", f"arn:aws:s3:::{ARTIFACTS}/models/{MODEL}/v{VERSION}/x"),
}


@pytest.mark.parametrize("request_", ALLOWED, ids=str)
def test_a_run_may_read_its_data_and_spec_and_write_its_version(effective, request_):
    assert allowed_by_all(effective, request_)


@pytest.mark.parametrize("request_", list(DENIED.values()), ids=list(DENIED))
def test_a_run_may_not_reach_anything_else(effective, request_):
    assert not allowed_by_all(effective, request_)


def test_the_run_role_alone_is_the_outer_bound(effective):
    """What the session policy narrows: the role itself reaches every project (so it must never be
    used without a session policy), but never a bucket it was not given."""
    _, role_policy = effective
    assert allowing_statements(role_policy, get(DATA, "other-proj/readings/part-0.csv"))
    assert not allowing_statements(role_policy, get("some-other-bucket", "x"))
    assert not allowing_statements(role_policy, put(DATA, "proj-1/x"))


def test_the_session_policy_alone_reaches_nothing_the_role_does_not_hold():
    """A grant on a bucket the run role was not given is refused by the role, whatever the session says."""
    scope = DataScope.from_config(DATA, json.dumps({"proj-1": ["s3://forgotten-bucket/x/"]}), ARTIFACTS)
    session = scope.session_policy(project_id="proj-1", model_id=MODEL, version=1, run_id=RUN)
    (role_policy,) = run_role([f"arn:aws:s3:::{DATA}"])["Policies"]
    request = get("forgotten-bucket", "x/a.csv")
    assert allowing_statements(session, request)
    assert not allowed_by_all([session, role_policy["PolicyDocument"]], request)


def test_the_trainer_irsa_role_alone_reads_no_data_and_writes_no_artifact():
    role = load_template(CLOUDFORMATION / "trainer-irsa.yaml")["Resources"]["TrainerRole"]["Properties"]
    assert not role.get("Policies") and not role.get("ManagedPolicyArns") and not role.get("PermissionsBoundary")
    assert role["MaxSessionDuration"] <= 3600


def test_only_the_api_lambda_role_may_assume_the_run_role():
    role = run_role([f"arn:aws:s3:::{DATA}"])
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert statement["Condition"] == {"ArnEquals": {"aws:PrincipalArn": API_ROLE}}
    # Role chaining caps the Lambda's AssumeRole at an hour; the role says the same.
    assert role["MaxSessionDuration"] == 3600


@pytest.mark.parametrize("stage", [s for s in chalice_stages() if s != "local"])
def test_the_api_may_assume_exactly_the_run_role_its_stage_names(stage):
    env = chalice_stages()[stage]["environment_variables"]
    policy = json.loads((CHALICE_CONFIG.parent / f"policy-{stage}.json").read_text())
    assuming = [s for s in policy["Statement"] if any(a.startswith("sts:") for a in s["Action"])]
    assert [(s["Action"], s["Resource"]) for s in assuming] == [(["sts:AssumeRole"], [env["TRAINER_RUN_ROLE_ARN"]])]
    role_name = load_template(CLOUDFORMATION / "trainer-run-role.yaml")["Resources"]["TrainerRunRole"][
        "Properties"]["RoleName"]
    assert env["TRAINER_RUN_ROLE_ARN"] == "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/" + resolve(
        role_name, {"Stage": stage})
    # The stage's data scope loads (its grants fit a session policy), and names the data stores' bucket.
    bucket = env["DATA_BUCKETS"].replace("${AWS::AccountId}", ACCOUNT)
    scope = DataScope.from_config(bucket, env["PROJECT_DATA_GRANTS"], env["ARTIFACT_BUCKET"].replace(
        "${AWS::AccountId}", ACCOUNT))
    assert scope.data_buckets == (f"ml-models-data-{stage}-{ACCOUNT}",)


def test_three_data_buckets_and_five_grants_fit_one_session_policy():
    buckets = ",".join(f"ml-models-data-{name}-{ACCOUNT}" for name in ("dev", "shared", "archive"))
    grants = {"proj-123": [f"s3://team-{name}-bucket-{ACCOUNT}/projects/proj-123/training/" for name in
                           ("sensors", "finance", "ops", "research", "marketing")]}
    scope = DataScope.from_config(buckets, json.dumps(grants), ARTIFACTS)
    policy = scope.session_policy(project_id="proj-123", model_id=MODEL, version=12345, run_id=RUN)
    text = policy_json(policy)
    assert len(text) <= MAX_SESSION_POLICY_CHARS, len(text)
    assert text == json.dumps(policy, separators=(",", ":"))


# ---- RunCredentialIssuer against moto's STS ---------------------------------------------------


ROLE = f"arn:aws:iam::{ACCOUNT}:role/ml-models-trainer-run-dev"
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                  "Resource": "arn:aws:s3:::b/p/*"}]}


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def test_issue_returns_the_runs_credentials(aws):
    issuer = RunCredentialIssuer(lambda: boto3.client("sts", region_name="us-east-1"), ROLE, duration_seconds=43200)
    assert issuer.duration_seconds == 3600  # role chaining
    credentials = issuer.issue(f"run-{RUN}", POLICY)
    assert isinstance(credentials, RunCredentials)
    assert credentials.access_key_id.startswith("ASIA") and credentials.secret_access_key and credentials.session_token
    assert credentials.expiration.endswith("Z") and "T" in credentials.expiration
    env = credentials.environment()
    assert set(env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                        "TRAINER_CREDENTIALS_EXPIRATION"}
    assert env["AWS_SESSION_TOKEN"] == credentials.session_token
    # The credentials work, and are the run role's.
    identity = boto3.client("sts", region_name="us-east-1", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=env["AWS_SESSION_TOKEN"]).get_caller_identity()
    assert ":assumed-role/ml-models-trainer-run-dev/" in identity["Arn"]


def test_the_secret_and_token_never_show(aws):
    credentials = RunCredentialIssuer(lambda: boto3.client("sts", region_name="us-east-1"), ROLE).issue("r", POLICY)
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert credentials.secret_access_key not in text and credentials.session_token not in text
        assert credentials.access_key_id in text


def _stubbed(code: str, status: int) -> RunCredentialIssuer:
    client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_client_error("assume_role", service_error_code=code, http_status_code=status,
                             service_message=f"User: arn:aws:sts::{ACCOUNT}:assumed-role/api/x is not authorized "
                                             f"to perform: sts:AssumeRole on resource: {ROLE}")
    stubber.activate()
    return RunCredentialIssuer(lambda: client, ROLE)


@pytest.mark.parametrize(("code", "status", "error"), [
    ("AccessDenied", 403, UpstreamFailed),
    ("MalformedPolicyDocument", 400, UpstreamFailed),
    ("SomethingNew", 400, UpstreamFailed),
    ("Throttling", 400, UpstreamUnavailable),
])
def test_sts_refusals_become_domain_errors_without_sts_text(code, status, error):
    with pytest.raises(error) as caught:
        _stubbed(code, status).issue("r", POLICY)
    message = caught.value.message
    assert message.startswith("could not obtain credentials for the training run")
    assert "arn:" not in message and ACCOUNT not in message and "not authorized" not in message
    assert caught.value.to_body().keys() == {"code", "message"}


def test_an_unreachable_sts_is_unavailable():
    dead = f"http://127.0.0.1:{free_port()}"

    def factory():
        return boto3.client("sts", region_name="us-east-1", endpoint_url=dead, aws_access_key_id="x",
                            aws_secret_access_key="x",
                            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1))

    with pytest.raises(UpstreamUnavailable) as caught:
        RunCredentialIssuer(factory, ROLE).issue("r", POLICY)
    assert "127.0.0.1" not in caught.value.message


def test_no_client_is_made_until_credentials_are_issued():
    made = []
    RunCredentialIssuer(lambda: made.append(1), ROLE)
    assert made == []
    with pytest.raises(ValueError, match="TRAINER_RUN_ROLE_ARN"):
        RunCredentialIssuer(lambda: None, "")


@pytest.mark.parametrize(("hint", "expected"), [
    ("run-123", "run-123"),
    ("run/with spaces:and*stuff", "run-with-spaces-and-stuff"),
    ("x", "x-"),
    ("r" * 100, "r" * 64),
    ("model@proj=1,2.3+4_5", "model@proj=1,2.3+4_5"),
])
def test_session_names_are_what_sts_accepts(hint, expected):
    assert role_session_name(hint) == expected
