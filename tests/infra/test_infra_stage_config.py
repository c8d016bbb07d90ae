"""The stage configuration agrees with the infrastructure it runs on.

.chalice/config.json names tables, bucket, cluster, namespace, service account and image; the
templates in infra/ and the Kubernetes manifests create them. Each name is checked against the
template output or manifest that makes it, for every stage.
"""
from __future__ import annotations

import inspect
import json
import re

import pytest
import yaml
from infra_support import CHALICE_CONFIG, CLOUDFORMATION, KUBERNETES, chalice_stages, load_template, resolve

from chalicelib.config import Settings
from scripts.local_stack import OUTPUT_ENV

STAGES = chalice_stages()
DEPLOYED = [s for s in STAGES if s != "local"]
# What every AWS stage sets: the process (Lambda) supplies only AWS_REGION.
DEPLOYED_ENV = {"APP_STAGE", *OUTPUT_ENV.values(), "ARTIFACT_PREFIX", "TRAINING_LAUNCHER", "CALLBACK_BASE_URL",
                "EKS_CLUSTER_NAME", "TRAINER_NAMESPACE", "TRAINER_IMAGE", "TRAINER_SERVICE_ACCOUNT", "TRAINER_GPU",
                "WEBSOCKET_ENDPOINT_URL", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL", "DATA_BUCKETS",
                "PROJECT_DATA_GRANTS", "TRAINER_RUN_ROLE_ARN"}
# The local stage's process environment (scripts/local_stack.py) supplies these.
LOCAL_FROM_PROCESS = {"AWS_ENDPOINT_URL", "CALLBACK_BASE_URL"}


def stage_env(stage: str) -> dict[str, str]:
    config = json.loads(CHALICE_CONFIG.read_text())
    return {**config.get("environment_variables", {}), **config["stages"][stage]["environment_variables"]}


def template(name: str) -> dict:
    return load_template(CLOUDFORMATION / name)


def parameter_default(template_name: str, parameter: str) -> str:
    return str(template(template_name)["Parameters"][parameter]["Default"])


def manifests() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def test_every_variable_a_stage_sets_is_one_the_app_reads():
    read = set(re.findall(r'env\.get\("([A-Z_]+)"', inspect.getsource(Settings.from_environ)))
    assert {"MODELS_TABLE", "ARTIFACT_BUCKET", "TRAINER_IMAGE"} <= read
    for stage in STAGES:
        assert set(stage_env(stage)) <= read, (stage, set(stage_env(stage)) - read)


@pytest.mark.parametrize("stage", DEPLOYED)
def test_a_deployed_stage_sets_everything_and_runs_jobs_on_eks(stage):
    env = stage_env(stage)
    assert DEPLOYED_ENV <= set(env), DEPLOYED_ENV - set(env)
    assert "AWS_ENDPOINT_URL" not in env and env["APP_STAGE"] == stage and env["TRAINING_LAUNCHER"] == "eks"
    assert STAGES[stage]["autogen_policy"] is False
    assert STAGES[stage]["iam_policy_file"] == f"policy-{stage}.json"


def test_the_local_stage_leaves_endpoint_and_callback_to_the_process():
    env = stage_env("local")
    assert not LOCAL_FROM_PROCESS & set(env)
    assert env["TRAINING_LAUNCHER"] == "local" and env["APP_STAGE"] == "local"


@pytest.mark.parametrize("stage", list(STAGES))
def test_table_and_bucket_names_are_the_data_stores_outputs(stage):
    """data-stores.yaml's outputs, deployed for the stage, are the names the stage config uses."""
    env = stage_env(stage)
    data = template("data-stores.yaml")
    # Deployed stages leave DataBucketName empty (the default name, the account as the config writes
    # it); the local stack names its data bucket (scripts/local_stack.DATA_BUCKET).
    from scripts.local_stack import DATA_BUCKET

    names = {"Stage": stage, "ArtifactBucketName": env["ARTIFACT_BUCKET"], "AWS::AccountId": "${AWS::AccountId}",
             "DataBucketName": DATA_BUCKET}
    named_data_bucket = stage == "local"
    for logical_id, resource in data["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            names[logical_id] = resolve(resource["Properties"]["TableName"], names)
        elif resource["Type"] == "AWS::S3::Bucket":
            name = resource["Properties"]["BucketName"]
            if "Fn::If" in name:
                name = name["Fn::If"][2 if named_data_bucket else 1]
            names[logical_id] = resolve(name, names)
    outputs = {key: resolve(out["Value"], names) for key, out in data["Outputs"].items() if key in OUTPUT_ENV}
    assert set(outputs) == set(OUTPUT_ENV)
    assert {OUTPUT_ENV[key]: value for key, value in outputs.items()} == {v: env[v] for v in OUTPUT_ENV.values()}


@pytest.mark.parametrize("stage", DEPLOYED)
def test_cluster_image_namespace_and_service_account_match_their_infrastructure(stage):
    env = stage_env(stage)
    objects = manifests()
    assert env["EKS_CLUSTER_NAME"] == f"ml-models-{stage}"
    assert re.fullmatch(template("eks-cluster.yaml")["Parameters"]["ClusterName"]["AllowedPattern"],
                        env["EKS_CLUSTER_NAME"])
    repository = parameter_default("release-artifacts.yaml", "TrainerRepositoryName")
    assert env["TRAINER_IMAGE"] == (
        "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/" + repository + ":${TrainerImageTag}")
    namespace, account = env["TRAINER_NAMESPACE"], env["TRAINER_SERVICE_ACCOUNT"]
    assert ("Namespace", namespace) in objects
    assert objects[("ServiceAccount", account)]["metadata"]["namespace"] == namespace
    assert parameter_default("trainer-irsa.yaml", "TrainerNamespace") == namespace
    assert parameter_default("trainer-irsa.yaml", "TrainerServiceAccount") == account
    assert parameter_default("trainer-run-role.yaml", "ArtifactPrefix") == env["ARTIFACT_PREFIX"]
    assert objects[("Role", "ml-models-launcher")]["metadata"]["namespace"] == namespace


def test_the_access_entry_group_is_the_one_the_role_binding_binds():
    binding = manifests()[("RoleBinding", "ml-models-launcher")]
    (subject,) = binding["subjects"]
    assert subject["kind"] == "Group"
    assert subject["name"] == parameter_default("launcher-access.yaml", "KubernetesGroup")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ml-models-launcher"}
    entry = template("launcher-access.yaml")["Resources"]["LauncherAccessEntry"]["Properties"]
    assert entry["KubernetesGroups"] == [{"Ref": "KubernetesGroup"}] and "AccessPolicies" not in entry


@pytest.mark.parametrize("stage", DEPLOYED)
def test_the_api_reads_the_data_bucket_the_data_stores_make(stage):
    env = stage_env(stage)
    data = template("data-stores.yaml")
    name = resolve(data["Resources"]["DataBucket"]["Properties"]["BucketName"]["Fn::If"][1],
                   {"Stage": stage, "AWS::AccountId": "${AWS::AccountId}"})
    assert env["DATA_BUCKETS"] == name
    assert json.loads(env["PROJECT_DATA_GRANTS"]) == {}
    policy = json.loads((CHALICE_CONFIG.parent / f"policy-{stage}.json").read_text())
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    bucket_arn = "arn:${AWS::Partition}:s3:::" + env["DATA_BUCKETS"]
    assert by_sid["ListTrainingData"]["Resource"] == [bucket_arn]
    assert by_sid["ReadTrainingData"]["Resource"] == [f"{bucket_arn}/*"]
    # Never the artifact bucket's data: only runs/ (specs), models/ (manifests), predictions/ and evaluations/
    # (job outputs).
    artifacts = "arn:${AWS::Partition}:s3:::" + env["ARTIFACT_BUCKET"]
    s3_resources = {r for s in policy["Statement"] for r in s["Resource"] if r.startswith(artifacts)}
    assert s3_resources == {f"{artifacts}/runs/*", f"{artifacts}/models/*", f"{artifacts}/predictions/*",
                            f"{artifacts}/evaluations/*", artifacts}
    # The bucket itself only to list its prefixes (deleting a model's artifacts, run specs and job outputs).
    listing = [s for s in policy["Statement"] if artifacts in s["Resource"]]
    assert [(s["Action"], s["Condition"]) for s in listing] == [
        (["s3:ListBucket"], {"StringLike": {"s3:prefix": ["models/*", "runs/*", "predictions/*", "evaluations/*"]}})]


@pytest.mark.parametrize("stage", DEPLOYED)
def test_a_deployed_stage_names_its_issuer_through_stack_parameters(stage):
    env = stage_env(stage)
    assert {k: env[k] for k in ("AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL")} == {
        "AUTH_ISSUER": "${AuthIssuer}", "AUTH_AUDIENCE": "${AuthAudience}", "AUTH_JWKS_URL": "${AuthJwksUrl}"}


def test_the_app_stack_outputs_what_the_later_steps_take(packages):
    for package in packages.values():
        outputs = package.template["Outputs"]
        assert outputs["ApiHandlerRoleArn"]["Value"] == {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}
        assert "EndpointURL" in outputs
        assert set(package.template["Parameters"]) == {"CallbackBaseUrl", "TrainerImageTag", "AuthIssuer",
                                                       "AuthAudience", "AuthJwksUrl", *THROTTLING}


THROTTLING = {"ApiThrottlingRateLimit": 100, "ApiThrottlingBurstLimit": 200, "WebSocketThrottlingRateLimit": 50,
              "WebSocketThrottlingBurstLimit": 100}


def test_both_api_stages_are_throttled_by_parameters_with_defaults(packages):
    """REST: every resource and method of the stage; WebSocket: every route (DefaultRouteSettings)."""
    for stage, package in packages.items():
        template = package.template
        assert {name: template["Parameters"][name]["Default"] for name in THROTTLING} == THROTTLING, stage
        rest = template["Resources"]["RestAPI"]
        assert rest["Type"] == "AWS::Serverless::Api"
        assert rest["Properties"]["MethodSettings"] == [{
            "ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"}}], stage
        websocket = template["Resources"]["WebsocketAPIStage"]
        assert websocket["Type"] == "AWS::ApiGatewayV2::Stage"
        assert websocket["Properties"]["DefaultRouteSettings"] == {
            "ThrottlingRateLimit": {"Ref": "WebSocketThrottlingRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "WebSocketThrottlingBurstLimit"}}, stage
