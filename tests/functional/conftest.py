"""Functional tier: the whole Chalice app through its test client, over in-process moto.

Tables and bucket come from infra/cloudformation/data-stores.yaml, deployed into
moto's CloudFormation exactly as the local stack does it.
"""
from __future__ import annotations

import json
import uuid

import pytest
from fakes.launcher import FakeLauncher
from moto import mock_aws
from samples import SENSOR_TTL


@pytest.fixture(scope="session")
def issuer(tmp_path_factory):
    """A real token issuer (scripts/local_issuer.py) on a free loopback port, with its own key."""
    from scripts import local_issuer

    key_dir = tmp_path_factory.mktemp("issuer")
    server = local_issuer.serve(0, key_dir)
    yield Issuer(server, key_dir)
    server.stop()


class Issuer:
    def __init__(self, server, key_dir) -> None:
        from scripts.local_issuer import LOCAL_AUDIENCE

        self.server, self.key_dir, self.audience = server, key_dir, LOCAL_AUDIENCE

    def env(self) -> dict[str, str]:
        return {"AUTH_MODE": "jwt", "AUTH_ISSUER": self.server.issuer, "AUTH_AUDIENCE": self.audience,
                "AUTH_JWKS_URL": self.server.jwks_url}

    def token(self, projects: dict[str, str] | None = None, admin: bool = False, subject: str = "tester",
              **claims) -> str:
        from scripts.local_issuer import mint

        return mint(subject, projects or {}, admin, issuer=claims.pop("iss", self.server.issuer),
                    audience=claims.pop("aud", self.audience), key_dir=self.key_dir, **claims)

    def headers(self, projects: dict[str, str] | None = None, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(projects, admin)}"}


@pytest.fixture(scope="module")
def aws_stack():
    """In-process moto with the stack's tables and bucket, shared by a module's tests
    (each test works in its own project). Yields the app's table/bucket env vars."""
    from scripts.local_stack import deploy_data_stores

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            yield deploy_data_stores(None)


def local_stage_environment() -> dict[str, str]:
    """The local stage's environment from .chalice/config.json (the test client applies it only
    while it serves a request; graphs a test builds itself read it from here)."""
    from pathlib import Path

    config = json.loads((Path(__file__).resolve().parents[2] / ".chalice" / "config.json").read_text())
    return {**config.get("environment_variables", {}), **config["stages"]["local"]["environment_variables"]}


@pytest.fixture
def aws(aws_stack, issuer, monkeypatch):
    for key, value in {**local_stage_environment(), **aws_stack, **issuer.env()}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("APP_STAGE", "test")
    yield aws_stack
    empty_tables()


def empty_tables() -> None:
    """Delete every item a test wrote. The tables outlive the test (deploying them is the slow
    part), but their items must not: moto copies every table on each TransactWriteItems, so a
    module whose tests keep adding items grows quadratically in time and memory."""
    import boto3

    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    for table in dynamodb.tables.all():
        keys = [k["AttributeName"] for k in table.key_schema]
        scan = {"ProjectionExpression": ", ".join(f"#k{i}" for i in range(len(keys))),
                "ExpressionAttributeNames": {f"#k{i}": k for i, k in enumerate(keys)}}
        with table.batch_writer() as batch:
            while True:
                page = table.scan(**scan)
                for item in page["Items"]:
                    batch.delete_item(Key={k: item[k] for k in keys})
                if "LastEvaluatedKey" not in page:
                    break
                scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def api(aws, issuer):
    """A JSON client over the Chalice test client, signed in as an admin unless a test says otherwise
    (tests of who may do what send their own Authorization header: tests/functional/test_access.py)."""
    from chalice.test import Client

    from app import app
    from chalicelib import wiring

    wiring.reset()
    # The test client applies a stage's environment from .chalice/config.json; the
    # local stage names the same tables deploy_data_stores() made.
    with Client(app, stage_name="local") as client:
        yield JsonClient(client, issuer.headers(admin=True))
    wiring.reset()


def install_graph(settings=None, **collaborators):
    """Build the app's graph from the current environment (or `settings`) with some collaborators of
    the test's own (a launcher, a clock, repositories...) and use it for the requests that follow."""
    from chalicelib import wiring
    from chalicelib.config import Settings

    graph = wiring.build_services(settings or Settings.from_environ(), **collaborators)
    wiring.install(graph)
    return graph


class SettableClock:
    """A clock a test can move: the real time until `now` is set."""

    def __init__(self) -> None:
        self.now: str | None = None

    def __call__(self) -> str:
        from chalicelib.services.common import utc_now

        return self.now or utc_now()


class JsonClient:
    def __init__(self, client, default_headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.default_headers = dict(default_headers or {})

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | str | None = None):
        hdrs = {"Content-Type": "application/json", **self.default_headers}
        hdrs.update(headers or {})
        hdrs = {k: v for k, v in hdrs.items() if v is not None}  # None removes a default header
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self.client.http, method.lower())(path, headers=hdrs, body=payload)
        return Reply(response.status_code, response.body)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


class Reply:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.raw = body
        self.json = json.loads(body) if body else None

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.raw[:300]!r}>"


@pytest.fixture
def launcher(api) -> FakeLauncher:
    """Training and prediction jobs go to a launcher that records them instead of starting anything; online
    predictions to a canned predictor."""
    from fakes.collaborators import CannedPredictor

    fake = FakeLauncher()
    install_graph(launcher=fake, predictor=CannedPredictor())
    return fake


@pytest.fixture
def project() -> str:
    return f"proj-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ontology(api, project) -> dict:
    reply = api.post("/api/ontologies", {"project_id": project, "name": "Sensors", "content": SENSOR_TTL})
    assert reply.status == 201, reply
    return reply.json


@pytest.fixture
def make_model(api, project, ontology):
    def make(**overrides) -> dict:
        body = {
            "project_id": project,
            "ontology_id": ontology["id"],
            "name": "Temperature Predictor",
            "description": "Predicts temperature based on sensor data",
            "type": "neural_network",
            "training_config": {"train_test_split": 0.8, "random_seed": 42, "learning_rate": 0.001, "batch_size": 32},
        }
        body.update(overrides)
        reply = api.post("/api/ml-models", body)
        assert reply.status == 201, reply
        return reply.json

    return make
