"""Integration tier: the real local stack as processes on free ports.

moto server (concurrent connections, serial dispatch: scripts/local_stack.embedded_aws) in this process,
`chalice local` as a subprocess, and trainers started by the local launcher.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from scripts import local_stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Http:
    """A tiny JSON-over-HTTP client (what curl does in the README), sending `token` if it has one."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def as_caller(self, token: str | None) -> Http:
        return Http(self.base, token)

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        return status, (json.loads(payload) if payload else None)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def wait_for_status(self, model_id: str, statuses: tuple[str, ...], timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, model = self.get(f"/api/ml-models/{model_id}")
            assert status == 200, model
            if model["status"] in statuses:
                return model
            time.sleep(0.5)
        raise AssertionError(f"model {model_id} still {model['status']} after {timeout}s")


@pytest.fixture(scope="session")
def embedded_aws():
    """moto server with the data stores deployed from the CloudFormation template."""
    port = _free_port()
    moto = local_stack.embedded_aws(port)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        yield endpoint, local_stack.deploy_data_stores(endpoint)
    finally:
        moto.stop()


@pytest.fixture(scope="session")
def stack(embedded_aws, tmp_path_factory):
    """The local stack as `make run` starts it: token issuer, WebSocket gateway, predictor, chalice local."""
    from scripts import local_issuer

    endpoint, data_env = embedded_aws
    api_port, ws_port, ws_management_port, predictor_port = _free_port(), _free_port(), _free_port(), _free_port()
    key_dir = tmp_path_factory.mktemp("issuer")
    issuer = local_issuer.serve(0, key_dir)
    log = tempfile.NamedTemporaryFile(prefix="chalice-local-", suffix=".log", delete=False)
    try:
        auth_env = local_stack.auth_environment("on", issuer)
        env = local_stack.app_environment(endpoint, api_port, data_env, ws_management_port, auth_env,
                                          predictor_port=predictor_port)
        env["LOCAL_MAX_CONCURRENT_JOBS"] = "2"
        env["TRAINER_PROGRESS_INTERVAL"] = "0"
        env["TMPDIR"] = tempfile.mkdtemp(prefix="ml-models-runs-")
        env["LOCAL_RUN_LOG_DIR"] = env["TMPDIR"]  # not the repo's .local/runs/<port>/
        gateway = local_stack.start_ws_gateway(ws_port, ws_management_port, env, log_file=log)
        predictor = local_stack.start_predictor(predictor_port, env, log_file=log)
        api = local_stack.start_api(api_port, env, log_file=log)
        tokens = Tokens(issuer, key_dir)
        try:
            yield Stack(Http(f"http://127.0.0.1:{api_port}", tokens.admin()), endpoint, data_env, log.name,
                        f"ws://127.0.0.1:{ws_port}", tokens)
        finally:
            local_stack.stop(api)
            local_stack.stop(gateway)
            local_stack.stop(predictor)
    finally:
        issuer.stop()
        log.close()
        os.unlink(log.name)


@pytest.fixture(scope="session")
def open_stack(embedded_aws):
    """The API as `AUTH=off make run` serves it (no token needed), over the same embedded AWS."""
    endpoint, data_env = embedded_aws
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="chalice-local-open-", suffix=".log", delete=False)
    env = local_stack.app_environment(endpoint, port, data_env, None, local_stack.auth_environment("off"))
    # One reconciler per set of tables: this API shares the main stack's, and its local launcher does
    # not know the main stack's trainer processes (it would find them missing).
    env["LOCAL_RECONCILE_SECONDS"] = "0"
    api = local_stack.start_api(port, env, log_file=log)
    try:
        yield Http(f"http://127.0.0.1:{port}"), log.name
    finally:
        local_stack.stop(api)
        log.close()
        os.unlink(log.name)


class Tokens:
    """Tokens from the stack's own issuer, as `make token` mints them."""

    def __init__(self, issuer, key_dir) -> None:
        self.issuer, self.key_dir = issuer, key_dir

    def mint(self, projects: dict[str, str], admin: bool = False, **kw) -> str:
        from scripts.local_issuer import LOCAL_AUDIENCE, mint

        return mint("integration", projects, admin, issuer=self.issuer.url, audience=LOCAL_AUDIENCE,
                    key_dir=self.key_dir, **kw)

    def admin(self) -> str:
        return self.mint({}, admin=True)


class Stack:
    def __init__(self, http: Http, endpoint: str, env: dict[str, str], log_path: str, ws_url: str,
                 tokens: Tokens) -> None:
        self.http = http
        self.ws_url = ws_url
        self.endpoint = endpoint
        self.env = env
        self.log_path = log_path
        self.tokens = tokens

    def as_caller(self, projects: dict[str, str]) -> Http:
        return self.http.as_caller(self.tokens.mint(projects))

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")


# connect 1 s, read 1 s, 2 attempts: a faulted call gives up in about 2 x (1 + 1) + 1 s.
FAULT_BUDGET = {"AWS_CONNECT_TIMEOUT_SECONDS": "1", "AWS_READ_TIMEOUT_SECONDS": "1", "AWS_CALL_MAX_ATTEMPTS": "2"}


@pytest.fixture(scope="module")
def faulty(embedded_aws, tmp_path_factory):
    """The API (with auth) whose AWS endpoint is a fault proxy in front of the embedded moto server,
    with a short AWS time budget (tests/integration/test_faults.py)."""
    from fakes.fault_proxy import FaultProxy

    from scripts import local_issuer

    endpoint, data_env = embedded_aws
    moto = urllib.parse.urlparse(endpoint)
    proxy = FaultProxy((moto.hostname, moto.port)).start()
    key_dir = tmp_path_factory.mktemp("fault-issuer")
    issuer = local_issuer.serve(0, key_dir)
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="chalice-local-faults-", suffix=".log", delete=False)
    env = local_stack.app_environment(proxy.url, port, data_env, None, local_stack.auth_environment("on", issuer))
    env["LOCAL_RECONCILE_SECONDS"] = "0"  # one reconciler per set of tables (see open_stack)
    env.update(FAULT_BUDGET)
    env["TMPDIR"] = tempfile.mkdtemp(prefix="ml-models-fault-runs-")
    api = local_stack.start_api(port, env, log_file=log)
    try:
        yield Faulty(Http(f"http://127.0.0.1:{port}", Tokens(issuer, key_dir).admin()), proxy, endpoint, data_env)
    finally:
        local_stack.stop(api)
        proxy.stop()
        issuer.stop()
        log.close()
        os.unlink(log.name)


class Faulty:
    """The API behind a fault proxy (`proxy`: tests/fakes/fault_proxy.FaultProxy), and moto itself."""

    def __init__(self, http: Http, proxy, endpoint: str, env: dict[str, str]) -> None:
        self.http, self.proxy, self.endpoint, self.env = http, proxy, endpoint, env

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")  # straight to moto
