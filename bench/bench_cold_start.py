"""The Lambda zip on its own: `import app` and the first requests in a fresh interpreter that sees
nothing but deployment.zip's contents, against a moto server.

    python -m bench.bench_cold_start        # builds the dev package (scripts/package.py) first

The zip is extracted and run by the runtime's Python (python3.13) as `python -I -S -B`: no
site-packages, no PYTHON* variables, no bytecode written (Lambda's /var/task is read-only, so a
cold start compiles every module it imports). The app gets the packaged dev stage's environment,
with its tables and bucket made in moto server (a process of its own) from infra/'s template and
a local token issuer, and is called as Lambda calls it: `app.app(event, context)` with API Gateway
proxy events. This measures the container's first request, which pays for `import app`, the JWKS
fetch, the services graph and botocore's first client, then the next ones.

tests/infra/test_infra_package_zip.py runs the same harness (`zip_stack`, `run_from_zip`) once,
with `checks`, and asserts on what the isolated process saw. The part of this file that runs in
that process (`serve_from_zip`) imports nothing outside the standard library and the zip.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's
PROJECT = "proj-zip"
ONTOLOGY = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/sensors#> .

ex:Reading a owl:Class .
ex:temperature a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
"""
# Values of the app stack's `${...}` names for the bench (the test resolves them with infra_support).
STACK_VALUES = {"AWS::AccountId": ACCOUNT_ID, "AWS::Region": REGION, "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com", "CallbackBaseUrl": "https://api.ml-models.example.com/api",
                "TrainerImageTag": "bench", "WebsocketAPI": "wsapi12345", "AuthIssuer": "", "AuthAudience": "",
                "AuthJwksUrl": ""}


# ---- in the pytest / bench process -----------------------------------------------------------


@dataclass(frozen=True)
class ZipStack:
    """An extracted deployment zip and what its app needs: moto server, tables, token issuer."""

    root: Path  # the zip's contents, as Lambda unpacks them into /var/task
    python: str  # the Lambda runtime's interpreter
    env: dict[str, str]  # the function's environment: the packaged stage's, pointed at moto and the issuer
    token: str  # an editor of PROJECT
    moto_url: str
    work_dir: Path


def deployed_environment(template: Mapping[str, Any], values: Mapping[str, str] = STACK_VALUES) -> dict[str, str]:
    """The API function's environment variables in `template` (scripts/package.py's), `${...}` resolved."""
    variables = template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]

    def resolve(value: Any) -> str:
        text = value["Fn::Sub"] if isinstance(value, dict) else value
        return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: values[m.group(1)], str(text))

    return {name: resolve(value) for name, value in variables.items()}


def lambda_python() -> str:
    """The runtime's interpreter: the zip's compiled extensions are built for it, no other can load them."""
    from scripts.package import LAMBDA_RUNTIME, find_interpreter, runtime_version

    return find_interpreter(runtime_version(LAMBDA_RUNTIME))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server_process(log_path: Path) -> Iterator[str]:
    """moto server in a process of its own (this venv's), on a free loopback port; yields its URL."""
    from scripts.local_stack import stop, wait_for_http

    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/moto-api/", proc)
            yield url
        finally:
            stop(proc)


@contextlib.contextmanager
def zip_stack(zip_path: Path, deployed_env: Mapping[str, str], work_dir: Path) -> Iterator[ZipStack]:
    """Extract `zip_path` and start what its app calls; everything started is stopped on exit."""
    from scripts import local_issuer
    from scripts.local_stack import deploy_data_stores

    root = work_dir / "task"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(root)
    (work_dir / "home").mkdir(exist_ok=True)
    with moto_server_process(work_dir / "moto.log") as moto_url, \
            local_issuer.serve(0, work_dir / "issuer") as issuer:
        stores = deploy_data_stores(moto_url, stage=deployed_env["APP_STAGE"], bucket=deployed_env["ARTIFACT_BUCKET"])
        mismatched = {k: (deployed_env.get(k), v) for k, v in stores.items() if deployed_env.get(k) != v}
        if mismatched:
            raise RuntimeError(f"the packaged stage names other tables or buckets than infra/ makes: {mismatched}")
        function = f"ml-models-{deployed_env['APP_STAGE']}"
        env = {
            **deployed_env,
            "AUTH_ISSUER": issuer.issuer, "AUTH_AUDIENCE": local_issuer.LOCAL_AUDIENCE,
            "AUTH_JWKS_URL": issuer.jwks_url,
            "AWS_ENDPOINT_URL": moto_url,
            # What the Lambda runtime sets (dummy credentials: nothing may reach a real account).
            "AWS_LAMBDA_FUNCTION_NAME": function, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13", "LAMBDA_TASK_ROOT": str(root),
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true",
            # An empty home: no ~/.aws of this machine.
            "HOME": str(work_dir / "home"), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
        }
        token = local_issuer.mint("zip-smoke", {PROJECT: "editor"}, issuer=issuer.issuer,
                                  audience=local_issuer.LOCAL_AUDIENCE, key_dir=work_dir / "issuer")
        yield ZipStack(root=root, python=lambda_python(), env=env, token=token, moto_url=moto_url, work_dir=work_dir)


def run_from_zip(stack: ZipStack, checks: bool = False, timeout: float = 180) -> dict[str, Any]:
    """One fresh `python -I -S -B` process serving from the extracted zip; its report (see `serve_from_zip`)."""
    from scripts.package import AWS_SERVICES

    out = stack.work_dir / "report.json"
    out.unlink(missing_ok=True)
    config = stack.work_dir / "child.json"
    config.write_text(json.dumps({"root": str(stack.root), "token": stack.token, "project": PROJECT,
                                  "ontology": ONTOLOGY, "services": list(AWS_SERVICES), "checks": checks,
                                  "out": str(out)}))
    started = time.perf_counter()
    result = subprocess.run([stack.python, "-I", "-S", "-B", str(Path(__file__).resolve()), "--child", str(config)],
                            env=stack.env, cwd=stack.root, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"the process serving from the zip failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    report = json.loads(out.read_text())
    report["wall_seconds"] = wall
    report["stdout"] = result.stdout
    return report


# ---- in the fresh interpreter: only the standard library and the zip --------------------------------


def _api_event(method: str, resource: str, token: str, path_params: dict[str, str] | None = None,
               query: dict[str, str] | None = None, body: Any = None) -> dict[str, Any]:
    """An API Gateway (REST, proxy) event as Lambda hands it to Chalice."""
    import uuid

    path = resource.format(**(path_params or {}))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json",
               "Host": "restapi123.execute-api.us-east-1.amazonaws.com"}
    return {
        "resource": resource, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query, "multiValueQueryStringParameters": {k: [v] for k, v in query.items()}
        if query else None,
        "pathParameters": path_params, "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "path": f"/api{path}", "stage": "api",
                           "requestId": str(uuid.uuid4()), "apiId": "restapi123", "accountId": ACCOUNT_ID,
                           "identity": {"sourceIp": "127.0.0.1", "userAgent": "bench_cold_start"}},
        "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
    }


class _LambdaContext:
    def __init__(self, function_name: str) -> None:
        import uuid

        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/12/02/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _outside(root: str) -> list[str]:
    """Modules this process loaded from anywhere but the zip and the standard library."""
    import sysconfig

    allowed = (root.rstrip("/") + "/", *{sysconfig.get_paths()[k].rstrip("/") + "/" for k in ("stdlib", "platstdlib")})
    return sorted(name for name, module in list(sys.modules.items())
                  if name not in ("__main__", "__mp_main__")  # this file, run as the script
                  and getattr(module, "__file__", None) and not module.__file__.startswith(allowed))


def _requests(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The smoke path, each call as a Lambda invocation: list (the first DynamoDB call), create, list, get."""
    import app  # already imported: timed by the caller

    token, project = config["token"], config["project"]
    calls: list[dict[str, Any]] = []

    def call(label: str, *args: Any, **kwargs: Any) -> Any:
        event = _api_event(*args, token=token, **kwargs)
        started = time.perf_counter()
        response = app.app(event, _LambdaContext(os.environ["AWS_LAMBDA_FUNCTION_NAME"]))
        seconds = time.perf_counter() - started
        body = json.loads(response["body"]) if response.get("body") else None
        calls.append({"label": label, "status": response["statusCode"], "body": body, "seconds": seconds})
        return body

    query = {"project_id": project}
    call("first request: GET /api/ml-models", "GET", "/api/ml-models", query=query)
    onto = call("POST /api/ontologies", "POST", "/api/ontologies",
                body={"project_id": project, "name": "Sensors", "content": config["ontology"]})
    model = call("POST /api/ml-models", "POST", "/api/ml-models",
                 body={"project_id": project, "ontology_id": (onto or {}).get("id"), "name": "Temperature",
                       "type": "regression"})
    call("GET /api/ml-models", "GET", "/api/ml-models", query=query)
    call("GET /api/ml-models/{model_id}", "GET", "/api/ml-models/{model_id}",
         path_params={"model_id": (model or {}).get("id", "none")})
    return calls


def _checks(config: dict[str, Any]) -> dict[str, Any]:
    """What the smoke path does not reach but a deployed function does, each from the zip alone."""
    import importlib
    import io
    import pkgutil

    import boto3
    import botocore.exceptions
    import botocore.httpsession

    found: dict[str, Any] = {"clients": {}, "import_failures": {}}
    for service in [*config["services"], "ec2"]:  # ec2: a service whose model the zip must not hold
        try:
            boto3.client(service, region_name=REGION)
            found["clients"][service] = "ok"
        except botocore.exceptions.UnknownServiceError:
            found["clients"][service] = "unknown service"
    from chalicelib.adapters.eks import EksTokenGenerator

    found["eks_token_prefix"] = EksTokenGenerator(lambda: boto3.client("sts", region_name=REGION))("ml-models-dev")[:11]
    found["ca_bundle"] = botocore.httpsession.get_cert_path(True)
    import chalicelib

    for module in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # every failure is reported, not only the first
            found["import_failures"][module.name] = f"{type(exc).__name__}: {exc}"
    from chalicelib.observability import EmfRunMetrics

    emitted = io.StringIO()
    with contextlib.redirect_stdout(emitted):
        EmfRunMetrics("dev").run_accepted("model-zip", "run-zip")
    found["metric_lines"] = [json.loads(line) for line in emitted.getvalue().splitlines() if line.startswith("{")]
    from kubernetes import client as kube

    found["kubernetes_api_client"] = type(kube.BatchV1Api(kube.ApiClient(kube.Configuration()))).__name__
    from kubernetes.client.rest import RESTResponse

    class _Answer:  # what urllib3 hands the client: a Job as the API server would send it
        status, reason, headers = 200, "OK", {}
        data = json.dumps({"metadata": {"name": "train-zip", "creationTimestamp": "2026-12-03T10:00:00Z"},
                           "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                                   "reason": "DeadlineExceeded"}]}}).encode()

    job = kube.ApiClient().deserialize(RESTResponse(_Answer()), "V1Job")
    found["kubernetes_job"] = [job.metadata.name, job.metadata.creation_timestamp.isoformat(),
                               job.status.conditions[0].reason]
    from chalicelib.errors import InvalidInput
    from chalicelib.ontology import parse_turtle

    try:  # rdflib's Turtle parser and its syntax errors, which the trimmed rdflib keeps
        parse_turtle("@prefix : <http://example.org/> .\n:a :b :c :d .")
    except InvalidInput as exc:
        found["turtle_error"] = str(exc)
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    for algorithm, key in (("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
                           ("ES256", ec.generate_private_key(ec.SECP256R1()))):
        token = jwt.encode({"sub": "zip"}, key, algorithm=algorithm)
        found.setdefault("jwt_verified", {})[algorithm] = jwt.decode(token, key.public_key(),
                                                                    algorithms=[algorithm])["sub"]
    import charset_normalizer

    found["charset_decoded"] = str(charset_normalizer.from_bytes("température, humidité".encode("cp1252")).best())
    return found


def serve_from_zip(config_path: str) -> int:
    """Run in the fresh interpreter: time `import app` and the smoke path, write the report as JSON."""
    config = json.loads(Path(config_path).read_text())
    sys.path.insert(0, config["root"])
    started = time.perf_counter()
    import app  # noqa: F401 - the import is what is measured

    report: dict[str, Any] = {"import_seconds": time.perf_counter() - started}
    report["requests"] = _requests(config)
    report["python"] = sys.version.split()[0]
    report["executable"] = sys.executable
    report["sys_path"] = sys.path
    if config["checks"]:
        report["checks"] = _checks(config)
    report["outside_zip"] = _outside(config["root"])
    Path(config["out"]).write_text(json.dumps(report))
    return 0


# ---- the benchmark -------------------------------------------------------------------------------


def measure(repeats: int) -> tuple[Any, list[dict[str, Any]]]:
    """The dev package built as `make package` builds it, and `repeats` fresh processes serving from it."""
    import tempfile

    from scripts.package import build

    # Dummy credentials: this process only talks to the moto server it starts.
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION})
    os.environ.pop("AWS_PROFILE", None)
    package = build("dev")
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as tmp, \
            zip_stack(package.zip_path, deployed_environment(package.template), Path(tmp)) as stack:
        return package, [run_from_zip(stack) for _ in range(repeats)]


def benchmark_body(package: Any, runs: list[dict[str, Any]]) -> str:
    from bench.report import markdown_table

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f}"

    def spread(values: list[float]) -> str:
        return f"{min(values) * 1000:.0f}–{max(values) * 1000:.0f}"

    imports = [r["import_seconds"] for r in runs]
    rows = [["`import app`", ms(imports), spread(imports)]]
    for i, call in enumerate(runs[0]["requests"]):
        values = [r["requests"][i]["seconds"] for r in runs]
        rows.append([call["label"], ms(values), spread(values)])
    first = [r["import_seconds"] + r["requests"][0]["seconds"] for r in runs]
    wall = [r["wall_seconds"] for r in runs]
    return (
        f"{len(runs)} fresh `python{'.'.join(runs[0]['python'].split('.')[:2])} -I -S -B` processes (CPython "
        f"{runs[0]['python']}, the Lambda runtime's version), each seeing only the "
        f"extracted dev `deployment.zip` ({package.zip.zipped_bytes / 1024 / 1024:.1f} MB zipped), with the dev "
        "stage's packaged environment, against a moto server on loopback (tables made from infra/'s template) and "
        "a local token issuer. Each request is one `app.app(event, context)` call with an API Gateway proxy event. "
        "The zip ships no bytecode and none can be written (as in Lambda, whose /var/task is read-only), so "
        "every module a step imports is compiled from source in that step. Milliseconds.\n\n"
        + markdown_table(["step", "median ms", "range ms"], rows)
        + f"\n\n**First request in a fresh process** (`import app` + the first request, whose DynamoDB Query is "
        f"the process's first AWS call; it also fetches the issuer's JWKS and builds the services graph): "
        f"median **{ms(first)} ms**. Whole process, interpreter start to exit: median {ms(wall)} ms. "
        "A Lambda cold start adds the download and unpacking of the zip and the runtime's own start."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the fresh interpreter's entry point
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-benchmark", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.child:
        return serve_from_zip(args.child)
    package, runs = measure(args.repeats)
    bad = [(c["label"], c["status"]) for r in runs for c in r["requests"] if c["status"] not in (200, 201)]
    if bad:
        print(f"bench_cold_start: requests failed: {bad}", file=sys.stderr)
        return 1
    body = benchmark_body(package, runs)
    print(body)
    if not args.no_benchmark:
        from bench.report import write_section

        write_section(name="bench/bench_cold_start.py", title="Lambda package: first request in a fresh process",
                      body=body, order=11)
    return 0


if __name__ == "__main__":
    sys.exit(main())
