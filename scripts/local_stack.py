"""The local stack behind `make run`: moto server as the embedded AWS, the data stores
deployed from infra/'s CloudFormation template, and `chalice local` serving the API.

    python -m scripts.local_stack            # API on :8080 (PORT), moto on :5000 (MOTO_PORT)
    python -m scripts.local_stack --endpoint-url http://localhost:4566   # LocalStack instead
    AUTH=off python -m scripts.local_stack   # no authentication (local stage only)

It also runs the local token issuer (scripts/local_issuer.py: a signing key kept in
.local/issuer/, its JWKS on :8083, ISSUER_PORT) that the API verifies tokens against
exactly as it does a Cognito pool in AWS; `make token` mints tokens from it.

Ctrl-C stops everything it started. Tests import `deploy_data_stores` and
`start_api` to run the same stack on free ports.
"""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "cloudformation" / "data-stores.yaml"
STAGE = "local"
BUCKET = "ml-models-artifacts-local"
# Projects' data lives under s3://<DATA_BUCKET>/<project_id>/ (DATA_BUCKETS in .chalice/config.json).
DATA_BUCKET = "ml-models-data-local"
REGION = "us-east-1"

# CloudFormation output → environment variable the app reads (chalicelib/config.py).
OUTPUT_ENV = {
    "ModelsTableName": "MODELS_TABLE",
    "OntologiesTableName": "ONTOLOGIES_TABLE",
    "StorageConfigsTableName": "STORAGE_CONFIGS_TABLE",
    "TrainingRunsTableName": "TRAINING_RUNS_TABLE",
    "ModelJobsTableName": "MODEL_JOBS_TABLE",
    "RecommendationsTableName": "RECOMMENDATIONS_TABLE",
    "WebSocketConnectionsTableName": "WS_CONNECTIONS_TABLE",
    "ArtifactBucketName": "ARTIFACT_BUCKET",
    "DataBucketName": "DATA_BUCKETS",
}

log = logging.getLogger("local_stack")


def embedded_aws(port: int, host: str = "127.0.0.1"):
    """moto server serving concurrent connections, dispatching one request at a time.

    Real DynamoDB applies a conditional write atomically; moto checks and writes in two
    steps, so two request threads inside moto at once could both pass a condition. Only
    the dispatch into moto's backends is serial (`SerialDispatch`): each connection has its
    own thread, so a slow or idle client (a half-sent request, a kept-alive socket) holds
    its own thread, never the lock, and never freezes the stack.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class ConcurrentMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = SerialDispatch(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, threaded=True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=0.05)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per emulated AWS request
    server = ConcurrentMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server


class SerialDispatch:
    """WSGI middleware: one request at a time inside the wrapped app, none of the socket I/O.

    The request body is read from the client before the lock is taken, and the response is
    collected under the lock and written to the client after it is released, so a client
    that sends or reads slowly delays only itself.
    """

    def __init__(self, app) -> None:
        import threading

        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        import io

        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH") or ""
        body = stream.read(int(length)) if length.isdigit() else (stream.read() if environ.get(
            "wsgi.input_terminated") else b"")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        started: list = []

        def capture(status, headers, exc_info=None):
            started[:] = [status, headers, exc_info]
            return lambda data: chunks.append(data)  # the legacy write() callable

        chunks: list[bytes] = []
        with self.lock:
            result = self.app(environ, capture)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        start_response(*started)
        return chunks


def deploy_data_stores(endpoint_url: str | None, stage: str = STAGE, bucket: str = BUCKET,
                       region: str = REGION, data_bucket: str | None = None) -> dict[str, str]:
    """Deploy infra/cloudformation/data-stores.yaml (idempotently); return the app's env vars.

    The local stage's data bucket is DATA_BUCKET; other stages get the template's default name."""
    if data_bucket is None:
        data_bucket = DATA_BUCKET if stage == STAGE else ""
    import boto3

    cfn = boto3.client("cloudformation", endpoint_url=endpoint_url, region_name=region)
    name = f"ml-models-data-{stage}"
    existing = {s["StackName"] for s in cfn.list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]}
    if name not in existing:
        cfn.create_stack(
            StackName=name,
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[
                {"ParameterKey": "Stage", "ParameterValue": stage},
                {"ParameterKey": "ArtifactBucketName", "ParameterValue": bucket},
                {"ParameterKey": "DataBucketName", "ParameterValue": data_bucket},
            ],
        )
        cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    outputs = cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
    return {OUTPUT_ENV[o["OutputKey"]]: o["OutputValue"] for o in outputs if o["OutputKey"] in OUTPUT_ENV}


def auth_environment(auth: str, issuer=None) -> dict[str, str]:
    """The app's identity settings: the local issuer's, or AUTH_MODE=off."""
    if auth == "off":
        return {"AUTH_MODE": "off"}
    from scripts.local_issuer import LOCAL_AUDIENCE

    return {"AUTH_MODE": "jwt", "AUTH_ISSUER": issuer.url, "AUTH_AUDIENCE": LOCAL_AUDIENCE,
            "AUTH_JWKS_URL": f"{issuer.url}/.well-known/jwks.json"}


def start_issuer(port: int):
    """The local token issuer: its JWKS served on `port`, its settings written for `make token`."""
    from scripts import local_issuer

    local_issuer.ensure_key()
    server = local_issuer.serve(port)
    local_issuer.write_state(local_issuer.KEY_DIR, issuer=server.url, audience=local_issuer.LOCAL_AUDIENCE,
                             jwks_url=f"{server.url}/.well-known/jwks.json")
    return server


def run_log_dir(port: int) -> Path:
    """Where a stack serving the API on `port` writes each run's trainer output (train-<run id>.log)."""
    return ROOT / ".local" / "runs" / str(port)


def app_environment(endpoint_url: str | None, port: int, data_env: dict[str, str],
                    ws_management_port: int | None = None, auth_env: dict[str, str] | None = None,
                    predictor_port: int | None = None, websocket_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(data_env)
    env.update(auth_env or {"AUTH_MODE": "off"})
    env.update({
        "APP_STAGE": STAGE,
        "AWS_REGION": env.get("AWS_REGION", REGION),
        "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", REGION),
        "CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
    })
    # Each stack's trainer logs in a folder of its own, named after its API port (LOCAL_RUN_LOG_DIR moves it).
    env.setdefault("LOCAL_RUN_LOG_DIR", str(run_log_dir(port)))
    if ws_management_port:
        env["WEBSOCKET_ENDPOINT_URL"] = f"http://127.0.0.1:{ws_management_port}"
    if websocket_url:  # the web console at /console/ reads it from /console/config.json (scripts/local_console.py)
        env["CONSOLE_WEBSOCKET_URL"] = websocket_url
    if predictor_port:  # online predictions: the predictor function's local twin (scripts/local_predictor.py)
        from scripts.local_predictor import DEFAULT_FUNCTION_NAME

        env["PREDICTOR_FUNCTION"] = DEFAULT_FUNCTION_NAME
        env["PREDICTOR_ENDPOINT_URL"] = f"http://127.0.0.1:{predictor_port}"
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return env


def start_api(port: int, env: dict[str, str], host: str = "127.0.0.1", log_file=None) -> subprocess.Popen:
    """Start `chalice local` for the local stage and wait until it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.chalice_local", "local", "--host", host, "--port", str(port),
         "--stage", STAGE, "--no-autoreload"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT if log_file else None,
        start_new_session=True,
    )
    wait_for_http(f"http://{host}:{port}/api/ml-models?project_id=ping", proc)
    return proc


def start_ws_gateway(port: int, management_port: int, env: dict[str, str], log_file=None) -> subprocess.Popen:
    """Start the local WebSocket gateway (scripts/ws_gateway.py) and wait until it accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.ws_gateway", "--port", str(port), "--management-port", str(management_port)],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT if log_file else None, start_new_session=True,
    )
    wait_for_http(f"http://127.0.0.1:{management_port}/@connections/ping", proc)
    return proc


def start_predictor(port: int, env: dict[str, str], log_file=None) -> subprocess.Popen:
    """Start the predictor function's local twin (scripts/local_predictor.py): the same handler the Lambda
    image runs, behind the Lambda Invoke API, reading artifacts from the stack's S3."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.local_predictor", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT if log_file else None, start_new_session=True,
    )
    wait_for_http(f"http://127.0.0.1:{port}/2015-03-31/functions/ping/invocations", proc)
    return proc


def wait_for_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answered, with an error status: it is up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    parser.add_argument("--ws-port", type=int, default=int(os.environ.get("WS_PORT", 8081)))
    parser.add_argument("--ws-management-port", type=int, default=int(os.environ.get("WS_MANAGEMENT_PORT", 8082)))
    parser.add_argument("--issuer-port", type=int, default=int(os.environ.get("ISSUER_PORT", 8083)))
    parser.add_argument("--predictor-port", type=int, default=int(os.environ.get("PREDICTOR_PORT", 8084)))
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"),
                        help="use this AWS endpoint (e.g. LocalStack) instead of starting moto server")
    parser.add_argument("--auth", choices=("on", "off"), default=os.environ.get("AUTH", "on").lower() or "on",
                        help="off: serve without authentication (AUTH=off make run)")
    args = parser.parse_args(argv)
    # `kill` and Ctrl-C both stop everything this started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    moto = None
    endpoint = args.endpoint_url
    if endpoint is None:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        moto = embedded_aws(args.moto_port)
        endpoint = f"http://127.0.0.1:{args.moto_port}"
        log.info("moto server (embedded AWS) on %s", endpoint)
    data_env = deploy_data_stores(endpoint)
    log.info("data stores ready: %s", ", ".join(f"{k}={v}" for k, v in sorted(data_env.items())))
    issuer = start_issuer(args.issuer_port) if args.auth == "on" else None
    env = app_environment(endpoint, args.port, data_env, args.ws_management_port,
                          auth_environment(args.auth, issuer), predictor_port=args.predictor_port,
                          websocket_url=f"ws://localhost:{args.ws_port}")
    # The printed sign-in link's one-time code: scripts/local_console.py redeems it once for a demo editor's
    # token (with the local issuer only: AUTH=off has no sign-in, and the console ignores it).
    env["CONSOLE_DEMO_CODE"] = demo_code = secrets.token_urlsafe(24)
    gateway = start_ws_gateway(args.ws_port, args.ws_management_port, env)
    predictor = start_predictor(args.predictor_port, env)
    log.info("predictor function (local twin) on http://127.0.0.1:%d", args.predictor_port)
    api = None
    try:
        api = start_api(args.port, env, host="127.0.0.1")
        log.info("API on http://localhost:%d, WebSocket on ws://localhost:%d  (Ctrl-C stops everything)",
                 args.port, args.ws_port)
        log.info("web console on http://localhost:%d/console/ (sign in with a `make token` token)", args.port)
        log.info("trainer logs: %s/train-<run id>.log", env["LOCAL_RUN_LOG_DIR"])
        if issuer is None:
            log.warning("AUTHENTICATION IS OFF (AUTH=off): anyone reaching the API acts as an admin")
        else:
            log.info("tokens: make token PROJECT=proj-123 [ROLE=viewer|editor|admin]  (issuer %s)", issuer.url)
            log.info("sign in as the demo editor of project demo: http://localhost:%d/console/#demo-sign-in=%s "
                     "(works once; the link holds no token)", args.port, demo_code)
        while api.poll() is None and gateway.poll() is None and predictor.poll() is None:
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (api, gateway, predictor):
            if proc is not None:
                stop(proc)
        if issuer is not None:
            from scripts import local_issuer

            local_issuer.clear_state()
            issuer.stop()
        if moto is not None:
            moto.stop()


if __name__ == "__main__":
    sys.exit(main())
