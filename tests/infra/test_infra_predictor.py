"""The online predictor function (infra/cloudformation/predictor.yaml) and the API's way to it.

The function runs the trainer image through the Lambda runtime interface client; its role may
read model artifacts (s3://<artifact bucket>/<artifact prefix>/*) and write its own log group,
nothing else. The API may invoke that one function (InvokePredictor), which the stage names in
PREDICTOR_FUNCTION. Policies are evaluated with policy_eval, as the other IAM tests here do.
"""
from __future__ import annotations

import json
import re

import pytest
from infra_support import ACCOUNT_ID, CHALICE_CONFIG, CLOUDFORMATION, REGION, ROOT, load_template, resolve, stack_values
from policy_eval import Account, AwsCall, IamRequest, allowing_statements, grants, iam_requests, statements

from chalicelib.config import Settings
from scripts.package import lint

PREDICTOR = CLOUDFORMATION / "predictor.yaml"
DEPLOYED = ("dev", "prod")
IMAGE = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/ml-models-trainer:2026.11.28-abc1234"


def stage_env(stage: str) -> dict[str, str]:
    config = json.loads(CHALICE_CONFIG.read_text())
    return {**config.get("environment_variables", {}), **config["stages"][stage]["environment_variables"]}


def template() -> dict:
    return load_template(PREDICTOR)


def predictor_names(stage: str) -> dict[str, str]:
    """The values predictor.yaml's Refs and Subs take when deployed for `stage` as docs/DEPLOY.md says."""
    parameters = template()["Parameters"]
    names = {**stack_values(stage), **{k: str(p["Default"]) for k, p in parameters.items() if "Default" in p},
             "Stage": stage, "TrainerImageUri": IMAGE,
             "ArtifactBucketName": resolve(stage_env(stage)["ARTIFACT_BUCKET"], stack_values(stage))}
    resources = template()["Resources"]
    names["PredictorLogGroup"] = resolve(resources["PredictorLogGroup"]["Properties"]["LogGroupName"], names)
    names["PredictorFunction"] = resolve(resources["PredictorFunction"]["Properties"]["FunctionName"], names)
    return names


def function_arn(name: str, stage: str = "dev") -> str:
    values = stack_values(stage)
    return f"arn:{values['AWS::Partition']}:lambda:{values['AWS::Region']}:{values['AWS::AccountId']}:function:{name}"


def predictor_policy(stage: str = "dev") -> dict:
    role = template()["Resources"]["PredictorRole"]["Properties"]
    (policy,) = role["Policies"]
    return resolve(policy["PolicyDocument"], predictor_names(stage))


def allowed(policy: dict, action: str, resource: str) -> bool:
    return bool(allowing_statements(policy, IamRequest(action, resource)))


# ---- the template -------------------------------------------------------------------------------


def test_the_template_is_cfn_lint_clean():
    assert lint(PREDICTOR) == []


def test_an_image_function_running_the_predictor_handler_through_the_runtime_interface_client():
    function = template()["Resources"]["PredictorFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    props = function["Properties"]
    assert props["PackageType"] == "Image" and "Runtime" not in props and "Handler" not in props
    assert props["Code"] == {"ImageUri": {"Ref": "TrainerImageUri"}}
    assert props["ImageConfig"]["EntryPoint"] == ["python", "-m", "awslambdaric"]
    assert props["ImageConfig"]["Command"] == ["trainer.predictor.handler"]
    assert props["Architectures"] == ["x86_64"]  # the image is built for linux/amd64
    assert props["Role"] == {"Fn::GetAtt": ["PredictorRole", "Arn"]}
    # The handler is imported from the working directory: the image's WORKDIR, where trainer/ is copied.
    dockerfile = (ROOT / "trainer" / "Dockerfile").read_text()
    workdir = re.findall(r"^WORKDIR\s+(\S+)", dockerfile, re.MULTILINE)[-1]
    assert props["ImageConfig"]["WorkingDirectory"] == workdir
    assert re.search(rf"^COPY .* {re.escape(workdir)}/trainer/?$", dockerfile, re.MULTILINE)


def test_memory_timeout_storage_and_concurrency_are_parameters_with_defaults():
    parameters = template()["Parameters"]
    props = template()["Resources"]["PredictorFunction"]["Properties"]
    assert props["MemorySize"] == {"Ref": "MemorySize"} and parameters["MemorySize"]["Default"] == 3008
    assert props["Timeout"] == {"Ref": "Timeout"} and parameters["Timeout"]["Default"] == 20
    assert props["EphemeralStorage"] == {"Size": {"Ref": "EphemeralStorageSize"}}
    assert 512 <= parameters["EphemeralStorageSize"]["Default"] <= 10240
    # -1 leaves the function in the account's unreserved pool; any other value reserves (0: throttled).
    assert props["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert parameters["ReservedConcurrency"]["Default"] == -1
    assert template()["Conditions"]["ReserveConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, -1]}]}


def test_the_image_parameter_takes_the_release_repository_uri_and_a_tag():
    pattern = template()["Parameters"]["TrainerImageUri"]["AllowedPattern"]
    assert re.fullmatch(pattern, IMAGE)
    assert re.fullmatch(pattern, IMAGE.split(":")[0] + "@sha256:" + "a" * 64)
    # The repository is release-artifacts.yaml's (the one TRAINER_IMAGE names).
    repository = load_template(CLOUDFORMATION / "release-artifacts.yaml")["Parameters"]["TrainerRepositoryName"]
    assert f"/{repository['Default']}:" in IMAGE
    for wrong in ("ml-models-trainer:abc", "docker.io/library/python:3.11", IMAGE.split(":")[0]):
        assert not re.fullmatch(pattern, wrong), wrong


def test_its_own_log_group_has_a_retention_and_is_the_functions():
    resources = template()["Resources"]
    group = resources["PredictorLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert template()["Parameters"]["LogRetentionInDays"]["Default"] == 30
    assert resources["PredictorFunction"]["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": "PredictorLogGroup"}}
    names = predictor_names("dev")
    # Lambda's default group name for the function: the one the role may write to.
    assert names["PredictorLogGroup"] == f"/aws/lambda/{names['PredictorFunction']}"


def test_the_outputs_are_the_function_name_and_arn():
    outputs = template()["Outputs"]
    assert outputs["PredictorFunctionName"]["Value"] == {"Ref": "PredictorFunction"}
    assert outputs["PredictorFunctionArn"]["Value"] == {"Fn::GetAtt": ["PredictorFunction", "Arn"]}


# ---- the predictor's role -----------------------------------------------------------------------


def test_only_lambda_assumes_the_role_and_it_has_no_managed_policies():
    role = template()["Resources"]["PredictorRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    assert "ManagedPolicyArns" not in role and "PermissionsBoundary" not in role


def test_the_role_grants_exactly_artifact_reads_and_its_own_log_writes():
    names = predictor_names("dev")
    bucket, prefix, group = names["ArtifactBucketName"], names["ArtifactPrefix"], names["PredictorLogGroup"]
    assert sorted((action, resource) for _, action, resource in grants(predictor_policy())) == sorted([
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}/*"),
        ("logs:CreateLogStream", f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}:log-stream:*"),
        ("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}:log-stream:*"),
    ])
    assert all("Condition" not in s for s in statements(predictor_policy()))


@pytest.mark.parametrize("stage", DEPLOYED)
def test_the_role_reads_a_model_version_and_nothing_else(stage):
    policy = predictor_policy(stage)
    names = predictor_names(stage)
    bucket, prefix = names["ArtifactBucketName"], names["ArtifactPrefix"]
    assert prefix == stage_env(stage)["ARTIFACT_PREFIX"]
    artifacts = f"arn:aws:s3:::{bucket}"
    version = f"{artifacts}/{prefix}/model-1/v3"
    for key in ("manifest.json", "model.skops", "preprocessing/columns.json"):
        assert allowed(policy, "s3:GetObject", f"{version}/{key}"), key

    data_bucket = resolve(stage_env(stage)["DATA_BUCKETS"], stack_values(stage))
    denied = [
        ("s3:PutObject", f"{version}/manifest.json"),
        ("s3:DeleteObject", f"{version}/model.skops"),
        ("s3:GetObjectVersion", f"{version}/model.skops"),
        ("s3:ListBucket", artifacts),  # reads by name only
        ("s3:GetObject", f"arn:aws:s3:::{data_bucket}/proj-1/readings/part-0.csv"),
        ("s3:GetObject", f"{artifacts}/runs/model-1/run-1/spec.json"),
        ("s3:GetObject", f"{artifacts}/predictions/model-1/batch-1/out.csv"),
        ("s3:GetObject", f"{artifacts}/{prefix}-archive/model-1/v3/manifest.json"),  # a prefix's sibling
        ("s3:GetObject", f"{artifacts}/{prefix}"),
        ("s3:GetObject", f"arn:aws:s3:::another-bucket/{prefix}/model-1/v3/manifest.json"),
        ("dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/ml-models-{stage}"),
        ("dynamodb:Query", f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/ml-training-runs-{stage}"),
        ("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT_ID}:role/ml-models-trainer-run-{stage}"),
        ("lambda:InvokeFunction", function_arn(names["PredictorFunction"], stage)),
        ("lambda:InvokeFunction", function_arn(f"ml-models-{stage}-APIHandler-Xy12", stage)),
        ("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("logs:CreateLogGroup", f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/anything"),
        ("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/ml-models-{stage}-APIHandler"
                              ":log-stream:2026/11/28/[$LATEST]0123"),
    ]
    wrongly_allowed = [f"{action} on {resource}" for action, resource in denied if allowed(policy, action, resource)]
    assert not wrongly_allowed, wrongly_allowed

    group = names["PredictorLogGroup"]
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}:log-stream:2026/11/28/[$LATEST]0123456789abcdef"
    assert allowed(policy, "logs:CreateLogStream", stream) and allowed(policy, "logs:PutLogEvents", stream)


def test_the_artifact_bucket_needs_no_kms_permission():
    """SSE-S3: S3 decrypts for any reader allowed s3:GetObject. With SSE-KMS the predictor role (and the
    run role) would need kms:Decrypt on the key: change them together with this."""
    bucket = load_template(CLOUDFORMATION / "data-stores.yaml")["Resources"]["ArtifactBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


# ---- the API's side -----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", DEPLOYED)
def test_the_stage_names_the_predictor_function_in_its_config_and_policy(stage):
    env = stage_env(stage)
    name = predictor_names(stage)["PredictorFunction"]
    expected = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + name
    assert env["PREDICTOR_FUNCTION"] == expected
    assert "PREDICTOR_ENDPOINT_URL" not in env  # a local-stack setting only
    assert Settings.from_environ(env).predictor_function == expected
    policy = json.loads((CHALICE_CONFIG.parent / f"policy-{stage}.json").read_text())
    invoking = [s for s in policy["Statement"] if any(a.startswith("lambda:") for a in s["Action"])]
    assert invoking == [{"Sid": "InvokePredictor", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                         "Resource": [expected]}]


def test_the_local_stage_reads_no_deployed_predictor():
    assert "PREDICTOR_FUNCTION" not in stage_env("local")
    settings = Settings.from_environ({"PREDICTOR_FUNCTION": "ml-models-predictor-local",
                                      "PREDICTOR_ENDPOINT_URL": "http://127.0.0.1:9001"})
    assert (settings.predictor_function, settings.predictor_endpoint_url) == (
        "ml-models-predictor-local", "http://127.0.0.1:9001")
    assert Settings.from_environ({}).predictor_endpoint_url is None


def _packaged_policies(package, stage: str) -> dict[str, dict]:
    """{function logical id: its role's inline policy, resolved} of a packaged app template."""
    resources = package.template["Resources"]
    found = {}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            (policy,) = resources[resource["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]["Policies"]
            found[name] = resolve(policy["PolicyDocument"], stack_values(stage))
    return found


@pytest.mark.parametrize("stage", DEPLOYED)
def test_the_api_may_invoke_its_stages_predictor_and_no_other_function(packages, stage):
    package = packages[stage]
    policies = _packaged_policies(package, stage)
    env = resolve(package.template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"],
                  stack_values(stage))
    predictor = function_arn(predictor_names(stage)["PredictorFunction"], stage)
    assert env["PREDICTOR_FUNCTION"] == predictor
    api = policies.pop("APIHandler")
    assert allowing_statements(api, IamRequest("lambda:InvokeFunction", predictor)) == ["InvokePredictor"]
    other_stage = next(s for s in DEPLOYED if s != stage)
    others = [
        function_arn(predictor_names(other_stage)["PredictorFunction"], stage),
        function_arn("ml-models-predictor", stage),
        function_arn(f"ml-models-{stage}-APIHandler-Xy12Ab34Cd56", stage),
        function_arn(f"ml-models-{stage}-ReconcileRuns-Xy12Ab34Cd56", stage),
        f"{predictor}:1",  # a published version: the API invokes $LATEST, unqualified
        predictor.replace(f":{REGION}:", ":eu-west-1:"),
        predictor.replace(f":{ACCOUNT_ID}:", ":210987654321:"),
    ]
    for arn in others:
        assert not allowing_statements(api, IamRequest("lambda:InvokeFunction", arn)), arn
    # Nothing else of the API's touches Lambda, and the other functions cannot invoke anything.
    assert [(a, r) for _, a, r in grants(api) if a.lower().startswith("lambda:")] == [("lambda:InvokeFunction",
                                                                                      predictor)]
    for function, policy in policies.items():
        assert not [g for g in grants(policy) if g[1].lower().startswith("lambda:")], function


# ---- policy_eval's mapping of Invoke --------------------------------------------------------------


@pytest.mark.parametrize(("params", "resource"), [
    ({"FunctionName": "ml-models-predictor-dev"}, "function:ml-models-predictor-dev"),
    ({"FunctionName": "ml-models-predictor-dev:live"}, "function:ml-models-predictor-dev:live"),
    ({"FunctionName": "ml-models-predictor-dev", "Qualifier": "7"}, "function:ml-models-predictor-dev:7"),
    ({"FunctionName": f"{ACCOUNT_ID}:function:ml-models-predictor-dev"}, "function:ml-models-predictor-dev"),
    ({"FunctionName": function_arn("ml-models-predictor-dev")}, "function:ml-models-predictor-dev"),
    ({"FunctionName": function_arn("ml-models-predictor-dev") + ":$LATEST"},
     "function:ml-models-predictor-dev:$LATEST"),
])
def test_an_invoke_call_is_authorized_as_invoke_function_on_the_function_arn(params, resource):
    call = AwsCall("APIHandler", "lambda", "Invoke", {**params, "InvocationType": "RequestResponse"})
    (request,) = iam_requests(call, Account(region=REGION, account_id=ACCOUNT_ID))
    assert request == IamRequest("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:{resource}")


def test_an_invoke_of_another_accounts_function_names_that_account():
    arn = "arn:aws:lambda:eu-west-1:210987654321:function:elsewhere"
    (request,) = iam_requests(AwsCall("APIHandler", "lambda", "Invoke", {"FunctionName": arn}),
                              Account(region=REGION, account_id=ACCOUNT_ID))
    assert request.resource == arn
