"""Must-show 3: the stage policies allow every AWS call the app makes, and nothing else.

The calls are observed, not listed by hand: the app runs with the environment the packaged
dev template gives its functions, against the stack's tables and bucket in moto server, an EKS
cluster in moto, a fake Kubernetes API server and a fake WebSocket management endpoint. Every
botocore operation is recorded with the function it ran for (APIHandler, WebsocketConnect,
...), turned into the IAM action and resource ARN AWS would authorize, and evaluated against
that function's role policy as the packaged template deploys it (every deployable stage).
The Kubernetes requests of the launcher are checked against the RBAC Role the same way.
"""
from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from infra_support import (
    ACCOUNT_ID,
    KUBERNETES,
    REGION,
    chalice_test_client,
    free_port,
    resolve,
    stack_values,
)
from policy_eval import (
    Account,
    AwsCall,
    AwsCallRecorder,
    IamRequest,
    UnmappedCall,
    allowing_statements,
    grants,
    iam_requests,
    statements,
    wildcard_match,
)

pytestmark = pytest.mark.integration

# The Kubernetes verbs the launcher may hold without using them, and why (launcher-rbac.yaml).
UNUSED_K8S_VERBS = {("secrets", "delete"): "OwnerReferencesPermissionEnforcement: owner refs need delete"}
# Grants no route of the scenario uses yet, and why. Each is checked to be still unused: once the
# scenario exercises it, the test asks for its entry to go.
NOT_YET_USED_GRANTS: dict[tuple[str, str], str] = {}
WEBSOCKET_FUNCTIONS = {"$connect": "WebsocketConnect", "$default": "WebsocketMessage",
                       "$disconnect": "WebsocketDisconnect"}
TTL = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/sensors#> .

ex:Reading a owl:Class .
ex:temperature a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
ex:humidity a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
ex:site a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:string .
"""
CSV = b"temperature,humidity,site\n" + b"".join(f"{20 + i % 7},{40 + i % 11},s{i % 3}\n".encode() for i in range(60))


# ---- fakes the app talks to ---------------------------------------------------------------------


class FakeWebSocketGateway:
    """The API Gateway Management API's POST /<stage>/@connections/<id>: 200, or 410 for `gone` ids."""

    def __init__(self) -> None:
        self.gone: set[str] = set()
        self.posted: list[tuple[str, dict]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                connection_id = self.path.rsplit("/", 1)[-1]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if connection_id in gateway.gone:
                    self.send_response(410)
                    self.send_header("x-amzn-ErrorType", "GoneException")
                    payload = b'{"message": "Gone"}'
                else:
                    gateway.posted.append((connection_id, json.loads(body or b"{}")))
                    self.send_response(200)
                    payload = b"{}"
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _kube_client_for(kube):
    def api_client(access):
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = kube.url  # the cluster DescribeCluster named is in moto; its API is the fake
        configuration.api_key = {"authorization": access.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    return api_client


# ---- the scenario -------------------------------------------------------------------------------


@dataclass
class Observation:
    calls: list[AwsCall]
    kube_requests: list
    account: Account
    posted: list
    # The dev environment the calls were made with (table, bucket and cluster names).
    env: dict[str, str]


class Driver:
    """Drives the app as its Lambda functions would be invoked, recording who made which call."""

    def __init__(self, client, recorder: AwsCallRecorder, token: str) -> None:
        from app import app

        self.client = client
        self.recorder = recorder
        self.token = token  # an admin's, from the test's own issuer
        self.ws_names = {route: config.name for route, config in app.websocket_handlers.items()}

    def http(self, method: str, path: str, body=None, headers=None, expect: int | None = None):
        kwargs = {"headers": {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}",
                              **(headers or {})}}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        with self.recorder.acting_as("APIHandler"):
            reply = getattr(self.client.http, method.lower())(path, **kwargs)
        payload = json.loads(reply.body) if reply.body else None
        if expect is not None:
            assert reply.status_code == expect, (method, path, reply.status_code, payload)
        return payload

    def ws(self, route: str, connection_id: str, body: dict | None = None) -> None:
        event = {"requestContext": {"routeKey": route, "eventType": route.strip("$").upper(),
                                    "connectionId": connection_id, "domainName": "ws.example.com",
                                    "stage": "api", "apiId": "wsapi12345"},
                 "isBase64Encoded": False}
        if body is not None:
            event["body"] = json.dumps(body)
        if route == "$connect":
            event["queryStringParameters"] = {"token": self.token}
        with self.recorder.acting_as(WEBSOCKET_FUNCTIONS[route]):
            response = self.client.lambda_.invoke(self.ws_names[route], event).payload
        assert response.get("statusCode", 200) == 200, (route, response)


def _schedule(self, handler: str, function: str) -> dict:
    """Invoke a scheduled function as EventBridge would."""
    event = self.client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                 resources=["arn:aws:events:us-east-1:123456789012:rule/r"])
    with self.recorder.acting_as(function):
        return self.client.lambda_.invoke(handler, event).payload


Driver.schedule = _schedule


def _callback(api: Driver, kube, model_id: str, run_id: str, kind: str, body: dict, expect: int) -> None:
    from chalicelib.adapters.eks import CALLBACK_TOKEN_KEY, secret_name

    secret = kube.get("secrets", "ml-training", secret_name(run_id))
    token = base64.b64decode(secret["data"][CALLBACK_TOKEN_KEY]).decode()
    api.http("POST", f"/api/ml-models/{model_id}/training/{kind}", body, expect=expect,
             headers={"Authorization": f"Bearer {token}", "X-Training-Run-Id": run_id})


def _set_job_status(kube, run_id: str, status: dict) -> None:
    from chalicelib.adapters.launcher import job_name

    job = kube.get("jobs", "ml-training", job_name(run_id))
    kube.put("jobs", "ml-training", {**job, "status": status})


def _prediction(api: Driver, kube, bucket: str, model_id: str, storage_id: str) -> tuple[str, str]:
    """A batch prediction job, its `_SUCCESS` written as the job does; (its id, its token)."""
    from chalicelib.adapters.eks import CALLBACK_TOKEN_KEY, secret_name

    job = api.http("POST", f"/api/ml-models/{model_id}/predictions", {"storage_ids": [storage_id]}, expect=202)
    secret = kube.get("secrets", "ml-training", secret_name(job["id"], "predict"))
    boto3.client("s3", endpoint_url=api.endpoint, region_name=REGION).put_object(
        Bucket=bucket, Key=f"predictions/{model_id}/{job['id']}/_SUCCESS",
        Body=json.dumps({"prediction_id": job["id"], "model_id": model_id, "version": job["version"],
                         "rows": 2, "error_rows": 0, "parts": []}).encode())
    return job["id"], base64.b64decode(secret["data"][CALLBACK_TOKEN_KEY]).decode()


def run_scenario(api: Driver, kube, gateway: FakeWebSocketGateway, bucket: str, data_bucket: str) -> None:
    """Every route and WebSocket handler, including the error paths that make their own calls."""
    project = "proj-observed"
    api.ws("$connect", "conn-a")
    api.ws("$connect", "conn-b")
    api.ws("$default", "conn-a", {"action": "subscribe", "project_id": project})
    api.ws("$default", "conn-b", {"action": "subscribe", "project_id": project})
    gateway.gone.add("conn-b")  # its client went away without a disconnect

    onto = api.http("POST", "/api/ontologies", {"project_id": project, "name": "Sensors", "content": TTL}, expect=201)
    api.http("GET", f"/api/ontologies/{onto['id']}", expect=200)
    api.http("GET", f"/api/ontologies?project_id={project}", expect=200)
    api.http("PUT", f"/api/ontologies/{onto['id']}", {"description": "sensor readings"}, expect=200)
    storage = api.http("POST", "/api/storage-configs", {
        "project_id": project, "name": "readings", "ontology_id": onto["id"],
        "uri": f"s3://{data_bucket}/{project}/readings/", "format": "csv"}, expect=201)
    api.http("GET", f"/api/storage-configs/{storage['id']}", expect=200)
    api.http("GET", f"/api/storage-configs?project_id={project}", expect=200)
    api.http("PUT", f"/api/storage-configs/{storage['id']}", {"name": "sensor readings"}, expect=200)
    api.http("POST", "/api/ml-models/recommend", {"project_id": project, "ontology_id": onto["id"]}, expect=200)

    model = api.http("POST", "/api/ml-models", {"project_id": project, "ontology_id": onto["id"], "name": "m",
                                                "type": "regression"}, expect=201)
    api.http("GET", f"/api/ml-models/{model['id']}", expect=200)
    api.http("GET", f"/api/ml-models?project_id={project}", expect=200)
    api.http("PUT", f"/api/ml-models/{model['id']}", {"description": "predicts temperature"}, expect=200)
    api.http("DELETE", f"/api/ontologies/{onto['id']}", expect=409)  # a model still uses it

    # Train: the Job and its Secret, then the trainer's progress and completion callbacks.
    run = api.http("POST", "/api/ml-models/train", {"model_id": model["id"], "storage_ids": [storage["id"]]},
                   expect=202)["training_task_id"]
    api.http("GET", f"/api/ml-models/{model['id']}/runs", expect=200)
    api.http("GET", f"/api/ml-models/{model['id']}/runs/{run}", expect=200)
    _callback(api, kube, model["id"], run, "progress", {"epoch": 1, "training_loss": 0.5}, expect=200)
    _callback(api, kube, model["id"], run, "credentials", {}, expect=200)
    # The trainer writes its manifest last; the complete callback is accepted once it names the run.
    boto3.client("s3", endpoint_url=api.endpoint, region_name=REGION).put_object(
        Bucket=bucket, Key=f"models/{model['id']}/v1/manifest.json",
        Body=json.dumps({"run_id": run, "model_id": model["id"], "version": 1}).encode())
    _callback(api, kube, model["id"], run, "complete", {
        "model_artifact_path": f"s3://{bucket}/models/{model['id']}/v1/",
        "performance_metrics": {"r2": 0.9}, "training_metrics": {"epoch": 3}}, expect=200)
    # A second run that fails.
    run = api.http("POST", "/api/ml-models/train", {"model_id": model["id"]}, expect=202)["training_task_id"]
    _callback(api, kube, model["id"], run, "fail", {"reason": "out of memory"}, expect=200)

    # Runs that never report: the scheduled reconcile settles them from the cluster (a failed Job; a
    # Job that completed without its callback, completed from the manifest).
    run = api.http("POST", "/api/ml-models/train", {"model_id": model["id"]}, expect=202)["training_task_id"]
    _set_job_status(kube, run, {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                              "reason": "DeadlineExceeded"}]})
    api.schedule("reconcile_runs", "ReconcileRuns")
    run = api.http("POST", "/api/ml-models/train", {"model_id": model["id"]}, expect=202)["training_task_id"]
    version = api.http("GET", f"/api/ml-models/{model['id']}/runs/{run}", expect=200)["version"]
    boto3.client("s3", endpoint_url=api.endpoint, region_name=REGION).put_object(
        Bucket=bucket, Key=f"models/{model['id']}/v{version}/manifest.json",
        Body=json.dumps({"run_id": run, "model_id": model["id"], "version": version}).encode())
    _set_job_status(kube, run, {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    api.schedule("reconcile_runs", "ReconcileRuns")
    assert api.http("GET", f"/api/ml-models/{model['id']}", expect=200)["status"] == "trained"

    # The launcher's clean-up path: the Secret cannot be made, so the new Job is deleted ...
    kube.fail_next(500, method="POST", resource="secrets")
    api.http("POST", "/api/ml-models/train", {"model_id": model["id"]})
    # ... and its adopt path: the names are taken, so it reads what is there.
    kube.fail_next(409, method="POST", resource="jobs")
    api.http("POST", "/api/ml-models/train", {"model_id": model["id"]})
    kube.fail_next(409, method="POST", resource="secrets")
    api.http("POST", "/api/ml-models/train", {"model_id": model["id"]})

    # Batch predictions: one reports its progress and completion, one is settled by the reconciler from its
    # Job and `_SUCCESS`; then they are listed and read.
    job_id, token = _prediction(api, kube, bucket, model["id"], storage["id"])
    for kind, body in (("progress", {"rows": 1}), ("complete", {"rows": 2})):
        api.http("POST", f"/api/ml-models/{model['id']}/predictions/{job_id}/{kind}", body, expect=200,
                 headers={"Authorization": f"Bearer {token}"})
    job_id, _ = _prediction(api, kube, bucket, model["id"], storage["id"])
    from chalicelib.adapters.launcher import job_name

    job = kube.get("jobs", "ml-training", job_name(job_id, "predict"))
    kube.put("jobs", "ml-training", {**job, "status": {"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True"}]}})
    api.schedule("reconcile_runs", "ReconcileRuns")
    api.http("GET", f"/api/ml-models/{model['id']}/predictions", expect=200)
    # Evaluations: monitoring on the model, the schedule starts one; its report settles it (and the model).
    api.http("PUT", f"/api/ml-models/{model['id']}", {"monitoring": {"storage_ids": [storage["id"]]}}, expect=200)
    api.schedule("start_due_evaluations", "StartDueEvaluations")
    [evaluation] = api.http("GET", f"/api/ml-models/{model['id']}/evaluations", expect=200)["evaluations"]
    from chalicelib.adapters.eks import CALLBACK_TOKEN_KEY, secret_name

    secret = kube.get("secrets", "ml-training", secret_name(evaluation["id"], "evaluate"))
    token = base64.b64decode(secret["data"][CALLBACK_TOKEN_KEY]).decode()
    boto3.client("s3", endpoint_url=api.endpoint, region_name=REGION).put_object(
        Bucket=bucket, Key=f"evaluations/{model['id']}/{evaluation['id']}/report.json",
        Body=json.dumps({"evaluation_id": evaluation["id"], "model_id": model["id"], "version": evaluation["version"],
                         "metrics": {"r2": 0.5}, "baseline_metrics": {"r2": 0.9}, "psi": {}}).encode())
    for kind, body in (("progress", {"rows": 1}), ("credentials", {}), ("complete", {})):
        api.http("POST", f"/api/ml-models/{model['id']}/evaluations/{evaluation['id']}/{kind}", body, expect=200,
                 headers={"Authorization": f"Bearer {token}"})
    assert api.http("GET", f"/api/ml-models/{model['id']}", expect=200)["status"] == "degraded"
    # One the reconciler settles from its Job and report (within bounds: the model trained again), one cancelled.
    evaluation = api.http("POST", f"/api/ml-models/{model['id']}/evaluations", {"storage_ids": [storage["id"]]},
                          expect=202)
    boto3.client("s3", endpoint_url=api.endpoint, region_name=REGION).put_object(
        Bucket=bucket, Key=f"evaluations/{model['id']}/{evaluation['id']}/report.json",
        Body=json.dumps({"evaluation_id": evaluation["id"], "model_id": model["id"], "version": evaluation["version"],
                         "metrics": {"r2": 0.9}, "baseline_metrics": {"r2": 0.9}, "psi": {}}).encode())
    job = kube.get("jobs", "ml-training", job_name(evaluation["id"], "evaluate"))
    kube.put("jobs", "ml-training", {**job, "status": {"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True"}]}})
    api.schedule("reconcile_runs", "ReconcileRuns")
    assert api.http("GET", f"/api/ml-models/{model['id']}", expect=200)["status"] == "trained"
    evaluation = api.http("POST", f"/api/ml-models/{model['id']}/evaluations", {"storage_ids": [storage["id"]]},
                          expect=202)
    api.http("GET", f"/api/ml-models/{model['id']}/evaluations/{evaluation['id']}", expect=200)
    api.http("POST", f"/api/ml-models/{model['id']}/evaluations/{evaluation['id']}/cancel", expect=202)

    # Online: the API invokes the stage's predictor function (not deployed into moto here: a 502).
    api.http("POST", f"/api/ml-models/{model['id']}/predict", {"instances": [{"temperature": 1.0}]})
    assert api.http("GET", f"/api/ml-models/{model['id']}/predictions/{job_id}", expect=200)["status"] == "succeeded"

    api.ws("$default", "conn-b", {"action": "unsubscribe", "project_id": project})  # its reply finds it gone
    api.ws("$default", "conn-a", {"action": "unsubscribe", "project_id": project})
    api.http("DELETE", f"/api/ml-models/{model['id']}", expect=204)
    api.http("DELETE", f"/api/storage-configs/{storage['id']}", expect=204)
    api.http("DELETE", f"/api/ontologies/{onto['id']}", expect=204)
    api.ws("$disconnect", "conn-a")


@pytest.fixture(scope="module")
def own_moto_server():
    """A moto server of this module's own (moto's state is per process: it sees the same data as
    `moto_server`). Its endpoint is new to the app, so the app makes new botocore clients here,
    which the recorder hooks into; clients it keeps from other tests would go unrecorded."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def observed(packages, own_moto_server, tmp_path_factory) -> Observation:
    import botocore.handlers
    from fakes.kube_api import FakeKubeApi

    from chalicelib import wiring
    from chalicelib.adapters.eks import EksJobLauncher, EksLauncherConfig
    from scripts import local_issuer
    from scripts.local_stack import deploy_data_stores

    template = packages["dev"].template
    deployed_env = resolve(template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"],
                           stack_values("dev"))
    stack_env = deploy_data_stores(own_moto_server, stage="dev", bucket=deployed_env["ARTIFACT_BUCKET"])
    assert {k: deployed_env[k] for k in stack_env} == stack_env, "the stage config names other tables or bucket"

    s3 = boto3.client("s3", endpoint_url=own_moto_server, region_name=REGION)
    # The data stores made the stage's data bucket (DATA_BUCKETS names just that one).
    s3.put_object(Bucket=deployed_env["DATA_BUCKETS"], Key="proj-observed/readings/part-0.csv", Body=CSV)
    eks = boto3.client("eks", endpoint_url=own_moto_server, region_name=REGION)
    eks.create_cluster(name=deployed_env["EKS_CLUSTER_NAME"], roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/eks",
                       resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]})

    gateway = FakeWebSocketGateway()
    # Transport only: the app sends AWS requests to moto and WebSocket posts to the fake gateway;
    # everything else is what the dev template deploys.
    # The token issuer is the test's own (in AWS: the Cognito pool the stage names).
    key_dir = tmp_path_factory.mktemp("issuer")
    issuer = local_issuer.serve(0, key_dir)
    app_env = {**deployed_env, "AWS_ENDPOINT_URL": own_moto_server, "WEBSOCKET_ENDPOINT_URL": gateway.url,
               "AUTH_ISSUER": issuer.issuer, "AUTH_AUDIENCE": local_issuer.LOCAL_AUDIENCE,
               "AUTH_JWKS_URL": issuer.jwks_url}
    token = local_issuer.mint("observer", {}, admin=True, issuer=issuer.issuer, audience=local_issuer.LOCAL_AUDIENCE,
                              key_dir=key_dir)
    recorder = AwsCallRecorder()
    with pytest.MonkeyPatch.context() as patch, FakeKubeApi() as kube:
        for key, value in app_env.items():
            patch.setenv(key, value)
        # Every botocore session made from here on calls the recorder before each operation:
        # boto3's default session (dropped, so a new one is made) and PynamoDB's own.
        patch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS,
                                                               ("before-parameter-build", recorder)])
        patch.setattr(boto3, "DEFAULT_SESSION", None)
        wiring.reset()
        try:
            from chalicelib.config import Settings

            settings = Settings.from_environ()
            assert settings.launcher == "eks"
            # The real EKS launcher (DescribeCluster against moto), talking to the fake API server.
            wiring.install(wiring.build_services(settings, launcher=EksJobLauncher(
                EksLauncherConfig.from_settings(settings), api_client_factory=_kube_client_for(kube))))
            with chalice_test_client(app_env, tmp_path_factory.mktemp("observed")) as client:
                driver = Driver(client, recorder, token)
                driver.endpoint = own_moto_server
                run_scenario(driver, kube, gateway, deployed_env["ARTIFACT_BUCKET"], deployed_env["DATA_BUCKETS"])
            kube_requests = list(kube.requests)
        finally:
            wiring.reset()
            gateway.stop()
            issuer.stop()
    account = Account(region=REGION, account_id=ACCOUNT_ID, websocket_endpoint=deployed_env["WEBSOCKET_ENDPOINT_URL"])
    return Observation(recorder.calls, kube_requests, account, gateway.posted, deployed_env)


def role_policies(template: dict, stage: str) -> dict[str, dict]:
    """{function logical id: its role's inline policy document, resolved} of a packaged template."""
    resources = template["Resources"]
    found = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        role = resource["Properties"]["Role"]["Fn::GetAtt"][0]
        (policy,) = resources[role]["Properties"]["Policies"]
        found[name] = resolve(policy["PolicyDocument"], stack_values(stage))
    return found


def runtime_requests(function: str, stage: str) -> list[IamRequest]:
    """What the Lambda runtime does with the function's role: write its logs. CloudFormation names
    the function <stack>-<logical id>-<suffix>; the app stack is ml-models-<stage>."""
    group = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/ml-models-{stage}-{function}-Xy12Ab34Cd56"
    stream = f"{group}:log-stream:2026/11/28/[$LATEST]0123456789abcdef"
    return [IamRequest("logs:CreateLogStream", stream), IamRequest("logs:PutLogEvents", stream)]


NAMED_RESOURCES = ("MODELS_TABLE", "ONTOLOGIES_TABLE", "STORAGE_CONFIGS_TABLE", "TRAINING_RUNS_TABLE",
                   "MODEL_JOBS_TABLE", "RECOMMENDATIONS_TABLE", "WS_CONNECTIONS_TABLE", "ARTIFACT_BUCKET",
                   "DATA_BUCKETS", "EKS_CLUSTER_NAME")


def requests_by_function(observation: Observation, packages, stage: str) -> dict[str, set[IamRequest]]:
    """The observed calls as IAM requests, as they would be made in `stage`: the dev stage's
    table, bucket and cluster names in the ARNs become `stage`'s (from its packaged template)."""
    env = resolve(packages[stage].template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"],
                  stack_values(stage))
    renames = [(observation.env[k], env[k]) for k in NAMED_RESOURCES]
    by_function: dict[str, set[IamRequest]] = {}
    for function in role_policies(packages[stage].template, stage):
        by_function[function] = set(runtime_requests(function, stage))
    for call in observation.calls:
        for request in iam_requests(call, observation.account):
            resource = request.resource
            for old, new in renames:
                resource = re.sub(rf"(?<=[/:]){re.escape(old)}(?=$|/)", new, resource)
            if resource == observation.env["TRAINER_RUN_ROLE_ARN"]:  # the role the API assumes per run
                resource = env["TRAINER_RUN_ROLE_ARN"]
            if resource == observation.env.get("PREDICTOR_FUNCTION"):  # the function the API invokes
                resource = env["PREDICTOR_FUNCTION"]
            by_function.setdefault(call.function, set()).add(IamRequest(request.action, resource, request.context))
    return by_function


# ---- the checks ---------------------------------------------------------------------------------


def test_the_scenario_reached_every_function_and_service(observed):
    seen = {(c.function, c.service) for c in observed.calls}
    assert {("APIHandler", s) for s in ("dynamodb", "s3", "eks", "apigatewaymanagementapi")} <= seen
    assert {(f, "dynamodb") for f in WEBSOCKET_FUNCTIONS.values()} <= seen
    assert ("WebsocketMessage", "apigatewaymanagementapi") in seen
    assert any(conn == "conn-a" for conn, _ in observed.posted), "no notification reached a subscriber"


def test_every_call_the_app_makes_has_a_known_permission(observed):
    unmapped = set()
    for call in observed.calls:
        try:
            iam_requests(call, observed.account)
        except UnmappedCall as exc:
            unmapped.add(str(exc))
    assert not unmapped, f"map these operations to IAM in tests/infra/policy_eval.py, and grant them: {unmapped}"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_stage_policy_allows_every_call_the_app_makes(observed, packages, stage):
    policies = role_policies(packages[stage].template, stage)
    denied = []
    for function, requests in sorted(requests_by_function(observed, packages, stage).items()):
        for request in sorted(requests, key=str):
            if not allowing_statements(policies[function], request):
                denied.append(f"{function}: {request}")
    assert not denied, "the role policy would deny:\n" + "\n".join(denied)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_stage_policy_grants_nothing_the_app_does_not_use(observed, packages, stage):
    policies = role_policies(packages[stage].template, stage)
    used = requests_by_function(observed, packages, stage)
    unused, now_used = [], []
    for function, policy in policies.items():
        for sid, action, resource in grants(policy):
            statement = next(s for s in statements(policy) if s.get("Sid") == sid)
            single = {**statement, "Action": action, "Resource": resource}
            is_used = any(allowing_statements({"Statement": [single]}, r) for r in used.get(function, ()))
            if (function, sid) in NOT_YET_USED_GRANTS:
                if is_used:
                    now_used.append(f"{function}: {sid}")
            elif not is_used:
                unused.append(f"{function}: {sid} {action} on {resource}")
    assert not unused, "granted but never used (remove it, or make the scenario use it):\n" + "\n".join(unused)
    assert not now_used, "the scenario uses these now: drop them from NOT_YET_USED_GRANTS:\n" + "\n".join(now_used)


def _broad(action: str, resource: str, data_buckets: frozenset[str] = frozenset()) -> str | None:
    """Why a granted (action, resource) is broader than one named thing, or None.

    A data bucket may be read whole: it holds nothing but training data, one prefix per project,
    and the API checks the project itself (chalicelib/services/data_scope.py)."""
    service = action.split(":", 1)[0]
    if "*" in action or "?" in action:
        return "wildcard action"
    if resource == "*":
        return "Resource *"
    if service in ("dynamodb", "eks") and "*" in resource:
        return "wildcard table, index or cluster"
    if service == "s3":
        bucket, slash, key = resource.split(":::", 1)[1].partition("/")
        if "*" in bucket:
            return "wildcard bucket"
        if slash and not key.rstrip("*").endswith("/") and not (key == "*" and bucket in data_buckets):
            return "objects outside a fixed prefix"
    if service == "execute-api":
        api_and_path = resource.split(":", 5)[5]
        if not wildcard_match("*/*/POST/@connections/*", api_and_path) or api_and_path.startswith("*"):
            return "another API, or more than posting to its connections"
    return None


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_wildcard_actions_and_no_wildcard_data_resources(packages, stage):
    problems = []
    env = resolve(packages[stage].template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"],
                  stack_values(stage))
    data_buckets = frozenset(env["DATA_BUCKETS"].split(","))
    for function, policy in role_policies(packages[stage].template, stage).items():
        for sid, action, resource in grants(policy):
            reason = _broad(action, resource, data_buckets)
            if reason:
                problems.append(f"{function} {sid}: {action} on {resource}: {reason}")
            if "*" in resource.split(":", 5)[4]:
                problems.append(f"{function} {sid}: {resource}: any account")
    assert not problems, "\n".join(problems)


def test_the_launcher_role_allows_every_kubernetes_request_and_little_more(observed):
    docs = [d for d in load_template_docs(KUBERNETES / "launcher-rbac.yaml") if d["kind"] == "Role"]
    (role,) = docs
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    verbs = {"POST": "create", "GET": "get", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}
    requests = observed.kube_requests
    assert {r.namespace for r in requests} == {role["metadata"]["namespace"]}
    # A GET of a collection (no name: the pods of a Job, by label) is a list.
    needed = {(r.resource, "list" if r.method == "GET" and r.name is None else verbs[r.method]) for r in requests}
    assert needed <= granted, f"the Role lacks {needed - granted}"
    assert granted - needed == set(UNUSED_K8S_VERBS), f"granted, never used: {granted - needed}"


def load_template_docs(path):
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_observed_calls(observed, capsys):
    """Not a check: prints the observed (function, service, operation) list for the record."""
    lines = sorted({f"{c.function:20} {c.service}:{c.operation}" for c in observed.calls})
    with capsys.disabled():
        print("\nAWS calls observed:\n  " + "\n  ".join(lines))
    assert lines

