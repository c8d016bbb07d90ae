"""Must-show 4: the infra template's DynamoDB and S3 parts, deployed into moto server's
CloudFormation, serve the API's smoke path (create, get, list): the app is configured from
nothing but the stack's outputs, and its records land in the tables the stack created."""
from __future__ import annotations

import boto3
import pytest
from infra_support import REGION, chalice_test_client

from scripts.local_stack import deploy_data_stores

pytestmark = pytest.mark.integration

STAGE = "infra-smoke"
ONTOLOGY = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/sensors#> .

ex:Reading a owl:Class .
ex:temperature a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
"""


@pytest.fixture
def stack(moto_server):
    """The data stores of stage `infra-smoke` in moto server: {logical id: physical id} and the app's env."""
    env = deploy_data_stores(moto_server, stage=STAGE, bucket=f"ml-models-artifacts-{STAGE}")
    cfn = boto3.client("cloudformation", endpoint_url=moto_server, region_name=REGION)
    resources = cfn.describe_stack_resources(StackName=f"ml-models-data-{STAGE}")["StackResources"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}, env


@pytest.fixture
def api(stack, moto_server, tmp_path, monkeypatch):
    from chalicelib import wiring
    from scripts import local_issuer

    _, env = stack
    # A deployed stage serves nothing without a token issuer: this one is the test's own.
    with local_issuer.serve(0, tmp_path / "issuer") as issuer:
        app_env = {**env, "APP_STAGE": STAGE, "AWS_ENDPOINT_URL": moto_server, "TRAINING_LAUNCHER": "local",
                   "AUTH_ISSUER": issuer.issuer, "AUTH_AUDIENCE": local_issuer.LOCAL_AUDIENCE,
                   "AUTH_JWKS_URL": issuer.jwks_url}
        for key, value in app_env.items():
            monkeypatch.setenv(key, value)
        token = local_issuer.mint("smoke", {"proj-smoke": "editor"}, issuer=issuer.issuer,
                                  audience=local_issuer.LOCAL_AUDIENCE, key_dir=tmp_path / "issuer")
        wiring.reset()
        with chalice_test_client(app_env, tmp_path) as client:
            client.token = token
            yield client
        wiring.reset()


def call(client, method: str, path: str, body: dict | None = None):
    import json

    kwargs = {"headers": {"Content-Type": "application/json", "Authorization": f"Bearer {client.token}"}}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    reply = getattr(client.http, method)(path, **kwargs)
    return reply.status_code, json.loads(reply.body) if reply.body else None


def test_the_stack_outputs_name_every_table_and_the_bucket(stack):
    resources, env = stack
    tables = {k: v for k, v in resources.items() if k.endswith("Table")}
    named = {k: v for k, v in env.items() if k != "DATA_BUCKETS"}  # the local stage may name its own
    assert sorted(named.values()) == sorted([*tables.values(), resources["ArtifactBucket"]])
    assert resources["DataBucket"] == f"ml-models-data-{STAGE}-123456789012"
    assert all(name.endswith(f"-{STAGE}") for name in tables.values())


def test_create_get_and_list_against_the_stack_resources(api, stack, moto_server):
    resources, _ = stack
    project = "proj-smoke"
    status, onto = call(api, "post", "/api/ontologies", {"project_id": project, "name": "Sensors", "content": ONTOLOGY})
    assert status == 201, onto
    status, model = call(api, "post", "/api/ml-models", {"project_id": project, "ontology_id": onto["id"],
                                                        "name": "Temperature", "type": "regression"})
    assert status == 201, model

    status, got = call(api, "get", f"/api/ml-models/{model['id']}")
    assert status == 200 and got == model
    status, listed = call(api, "get", f"/api/ml-models?project_id={project}")
    assert status == 200 and [m["id"] for m in listed["models"]] == [model["id"]]
    status, ontologies = call(api, "get", f"/api/ontologies?project_id={project}")
    assert status == 200 and [o["id"] for o in ontologies["ontologies"]] == [onto["id"]]

    # The records are in the tables CloudFormation created (read back around the app).
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server, region_name=REGION)
    stored = dynamodb.get_item(TableName=resources["ModelsTable"], Key={"id": {"S": model["id"]}}, ConsistentRead=True)
    assert stored["Item"]["name"] == {"S": "Temperature"}
    stored = dynamodb.get_item(TableName=resources["OntologiesTable"], Key={"id": {"S": onto["id"]}})
    assert stored["Item"]["project_id"] == {"S": project}


# ---- the predictor function -------------------------------------------------------------------------

PREDICTOR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-models-trainer:2026.11.28-abc1234"


@pytest.fixture
def predictor_stack(stack, moto_server):
    """predictor.yaml deployed into moto server next to the data stores, as docs/DEPLOY.md deploys it.

    moto creates the function, its role and log group, but keeps only part of an image function's
    configuration (PackageType, ImageConfig and EphemeralStorage are dropped) and cannot invoke it:
    test_infra_predictor.py checks those properties in the template itself."""
    from infra_support import CLOUDFORMATION

    resources, env = stack
    cfn = boto3.client("cloudformation", endpoint_url=moto_server, region_name=REGION)
    name = f"ml-models-predictor-{STAGE}"
    if name not in {s["StackName"] for s in cfn.list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]}:
        cfn.create_stack(StackName=name, TemplateBody=(CLOUDFORMATION / "predictor.yaml").read_text(),
                         Capabilities=["CAPABILITY_NAMED_IAM"], Parameters=[
                             {"ParameterKey": "Stage", "ParameterValue": STAGE},
                             {"ParameterKey": "TrainerImageUri", "ParameterValue": PREDICTOR_IMAGE},
                             {"ParameterKey": "ArtifactBucketName", "ParameterValue": env["ARTIFACT_BUCKET"]},
                             {"ParameterKey": "ReservedConcurrency", "ParameterValue": "5"}])
        cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]}
    return outputs, env


def test_the_predictor_stack_makes_the_function_its_role_and_log_group(predictor_stack, moto_server):
    import ast

    from policy_eval import IamRequest, allowing_statements

    outputs, env = predictor_stack
    name = f"ml-models-predictor-{STAGE}"
    assert outputs == {"PredictorFunctionName": name,
                       "PredictorFunctionArn": f"arn:aws:lambda:{REGION}:123456789012:function:{name}"}
    function = boto3.client("lambda", endpoint_url=moto_server, region_name=REGION).get_function(FunctionName=name)
    config = function["Configuration"]
    assert function["Code"]["ImageUri"] == PREDICTOR_IMAGE
    assert (config["MemorySize"], config["Timeout"]) == (3008, 20)
    assert function["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    assert config["Role"] == f"arn:aws:iam::123456789012:role/{name}"

    logs = boto3.client("logs", endpoint_url=moto_server, region_name=REGION)
    (group,) = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
    assert (group["logGroupName"], group["retentionInDays"]) == (f"/aws/lambda/{name}", 30)

    # The role as deployed: artifact reads in the data stores' bucket, nothing more.
    iam = boto3.client("iam", endpoint_url=moto_server, region_name=REGION)
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    (policy_name,) = iam.list_role_policies(RoleName=name)["PolicyNames"]
    policy = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(policy, str):  # moto keeps a CloudFormation-made inline policy as the text of a Python dict
        policy = ast.literal_eval(policy)
    bucket = f"arn:aws:s3:::{env['ARTIFACT_BUCKET']}"
    assert allowing_statements(policy, IamRequest("s3:GetObject", f"{bucket}/models/m-1/v1/manifest.json"))
    for action, resource in (("s3:GetObject", f"{bucket}/runs/m-1/r-1/spec.json"), ("s3:ListBucket", bucket),
                             ("s3:PutObject", f"{bucket}/models/m-1/v1/manifest.json"),
                             ("s3:GetObject", f"arn:aws:s3:::{env['DATA_BUCKETS']}/proj-smoke/part-0.csv")):
        assert not allowing_statements(policy, IamRequest(action, resource)), (action, resource)
