"""What scripts/package.py drops from the Lambda zip is what the code never loads: every AWS
service the code makes a client for keeps its botocore model (AWS_SERVICES), nothing the app
imports is dropped, and the rewrite is deterministic. Fast: no build (tests/infra builds and
runs the real zip)."""
from __future__ import annotations

import ast
import random
import re
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from scripts.package import (
    AWS_SERVICES,
    ROOT,
    TARGET_ZIPPED_BYTES,
    PackageError,
    ZipReport,
    check_zip,
    drop_reason,
    trim_zip,
)

APP_SOURCES = sorted([ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")])
CLIENT_METHODS = ("client", "create_client")  # boto3 / boto3.Session, botocore's session


# ---- the scan: which services does the code make clients for? -------------------------------------


def _is_aws_session(node: ast.expr) -> bool:
    """`boto3`, `session`, `self._session`, `boto3.Session(...)`, `botocore.session.get_session()`."""
    if isinstance(node, ast.Call):
        node = node.func
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name == "boto3" or "session" in name.lower()


def _argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[index] if len(call.args) > index else None


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


class ServiceScan:
    """Service names given to AWS client calls, followed through the functions that pass one on.

    `aws_client(settings, service)` calls `boto3.client(service, ...)`: it is a factory, and the
    services are the literals its callers pass. A name the scan cannot follow to a literal is
    `unresolved`, so a new kind of indirection fails the test instead of hiding a service.
    """

    def __init__(self, sources: dict[str, str]) -> None:
        self.trees = {path: ast.parse(text, path) for path, text in sources.items()}
        self.services: set[str] = set()
        self.unresolved: list[str] = []
        self.resources: list[str] = []  # boto3.resource(...) calls: boto3's resource models are dropped
        # {function name: (index, name) of the parameter that carries the service}
        factories: dict[str, tuple[int, str]] = {}
        for path, tree in self.trees.items():
            for func, call in self._calls(tree):
                if isinstance(call.func, ast.Attribute) and _is_aws_session(call.func.value):
                    if call.func.attr in CLIENT_METHODS:
                        self._service(path, func, _argument(call, 0, "service_name"), factories)
                    elif call.func.attr == "resource":
                        self.resources.append(f"{path}:{call.lineno}")
            if any(isinstance(n, ast.ImportFrom | ast.Import) and _imports_pynamodb(n) for n in ast.walk(tree)):
                self.services.add("dynamodb")  # PynamoDB's connection makes a botocore dynamodb client
        self._follow(factories)

    @staticmethod
    def _calls(tree: ast.AST):
        """(enclosing function or None, call) for every call in `tree`."""
        def visit(node: ast.AST, func: ast.FunctionDef | None):
            for child in ast.iter_child_nodes(node):
                inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
                if isinstance(child, ast.Call):
                    yield func, child
                yield from visit(child, inner)
        yield from visit(tree, None)

    def _service(self, path: str, func, arg: ast.expr | None, factories: dict[str, tuple[int, str]]) -> None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            self.services.add(arg.value)
            return
        if isinstance(arg, ast.Name) and func is not None:
            params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
            if arg.id in params:
                index = params.index(arg.id) - (1 if params and params[0] in ("self", "cls") else 0)
                factories[func.name] = (index, arg.id)
                return
        self.unresolved.append(f"{path}:{getattr(arg, 'lineno', '?')}: {ast.unparse(arg) if arg else 'no service'}")

    def _follow(self, factories: dict[str, tuple[int, str]]) -> None:
        done: set[str] = set()
        while set(factories) - done:
            name = sorted(set(factories) - done)[0]
            done.add(name)
            index, keyword = factories[name]
            for path, tree in self.trees.items():
                for func, call in self._calls(tree):
                    if _called_name(call) == name:
                        self._service(path, func, _argument(call, index, keyword), factories)
                for node in ast.walk(tree):  # passed around uncalled (a callback): its services are unknown
                    if isinstance(node, ast.Name) and node.id == name and not self._is_called(tree, node):
                        self.unresolved.append(f"{path}:{node.lineno}: {name} used without a call")

    @staticmethod
    def _is_called(tree: ast.AST, name: ast.Name) -> bool:
        return any(isinstance(n, ast.Call) and n.func is name for n in ast.walk(tree))


def _imports_pynamodb(node: ast.Import | ast.ImportFrom) -> bool:
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
    return any(n == "pynamodb" or n.startswith("pynamodb.") for n in names)


@pytest.fixture(scope="module")
def app_scan() -> ServiceScan:
    return ServiceScan({str(p.relative_to(ROOT)): p.read_text() for p in APP_SOURCES})


def test_every_service_the_code_makes_a_client_for_keeps_its_model(app_scan):
    assert app_scan.unresolved == [], "client calls whose service the scan cannot name; name it with a literal"
    missing = app_scan.services - set(AWS_SERVICES)
    assert not missing, f"add {sorted(missing)} to AWS_SERVICES in scripts/package.py (its model is dropped)"


def test_aws_services_names_only_services_the_code_uses(app_scan):
    # A stale entry only costs bytes, but the list is the record of what the function calls.
    assert set(AWS_SERVICES) == app_scan.services
    assert list(AWS_SERVICES) == sorted(AWS_SERVICES)


def test_the_code_makes_no_boto3_resources(app_scan):
    assert app_scan.resources == [], "boto3.resource needs boto3/data, which scripts/package.py drops"


def test_the_scan_follows_factories_and_refuses_what_it_cannot_name():
    scan = ServiceScan({"planted.py": """
import boto3
from pynamodb.models import Model

def aws_client(settings, service):
    return boto3.client(service, region_name=settings.region)

def eks_client(config, name):
    return aws_client(config, name)

class Adapter:
    def _client(self, service_name):
        return self._session.create_client(service_name)

    def queue(self):
        return self._client("sqs")

s3 = lambda settings: aws_client(settings, "s3")
eks = eks_client(None, "eks")
sts = boto3.Session().client("sts")
dynamic = boto3.client(SERVICE)
callback = aws_client
table = boto3.resource("dynamodb")
"""})
    assert scan.services == {"dynamodb", "eks", "s3", "sqs", "sts"}
    assert [u.split(": ", 1)[1] for u in scan.unresolved] == ["SERVICE", "aws_client used without a call"]
    assert scan.resources == ["planted.py:23"]


def test_the_services_are_in_the_pinned_botocore():
    import botocore.session

    pinned = re.search(r"^boto3==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt pins boto3, so AWS_SERVICES is checked against a known botocore"
    assert pinned.group(1) == metadata.version("boto3"), "this venv's boto3 is not the one the zip gets"
    available = set(botocore.session.get_session().get_available_services())
    assert set(AWS_SERVICES) <= available


# ---- what the app imports is never dropped -----------------------------------------------------------


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # a name may be a submodule
    return found


def test_nothing_the_app_imports_is_dropped():
    imported = set().union(*(_imported_modules(ast.parse(p.read_text())) for p in APP_SOURCES))
    assert "aws_lambda_powertools.logging" in imported  # the scan sees the imports inside functions
    dropped = {}
    for module in sorted(imported):
        path = module.replace(".", "/")
        for candidate in (f"{path}/__init__.py", f"{path}.py"):
            reason = drop_reason(candidate)
            if reason:
                dropped[module] = reason
    assert dropped == {}


@pytest.mark.parametrize("name", [
    "app.py", "chalicelib/adapters/tests/helper.py", "chalicelib/types.pyi",
    "botocore/data/endpoints.json", "botocore/data/partitions.json", "botocore/data/_retry.json",
    "botocore/data/sdk-default-configuration.json", "botocore/data/dynamodb/2012-08-10/service-2.json.gz",
    "botocore/data/sts/2011-06-15/endpoint-rule-set-1.json.gz", "botocore/client.py",
    "boto3/session.py", "certifi/cacert.pem", "yaml/__init__.py", "yaml/cyaml.py",
    "charset_normalizer/md.py", "aws_lambda_powertools/logging/logger.py",
    "aws_lambda_powertools/metrics/provider/cloudwatch_emf/cloudwatch.py",
    "aws_lambda_powertools/utilities/jmespath_utils/__init__.py", "aws_lambda_powertools/utilities/typing/__init__.py",
    "aws_lambda_powertools/utilities/__init__.py", "kubernetes/client/api/batch_v1_api.py",
    "botocore-1.44.8.dist-info/METADATA", "cryptography-50.0.2.dist-info/licenses/LICENSE",
    "rdflib/__init__.py", "rdflib/graph.py", "rdflib/plugins/__init__.py", "rdflib/plugins/parsers/notation3.py",
    "rdflib/plugins/stores/memory.py", "rdflib/plugins/stores/berkeleydb.py", "rdflib/namespace/_SDO.py",
    "_cffi_backend.cpython-313-x86_64-linux-gnu.so", "cryptography/hazmat/bindings/_rust.abi3.so",
    "dateutil/zoneinfo/__init__.py", "dateutil/parser/_parser.py",
    "botocore/data/s3/2006-03-01/service-2.json.gz", "botocore/data/lambda/2015-03-31/service-2.json.gz",
])
def test_what_the_function_loads_is_kept(name):
    assert drop_reason(name) is None


@pytest.mark.parametrize("name", [
    "botocore/data/ec2/2016-11-15/service-2.json.gz", "botocore/data/dynamodbstreams/2012-08-10/service-2.json.gz",
    "boto3/data/dynamodb/2012-08-10/resources-1.json", "yaml/_yaml.cpython-313-x86_64-linux-gnu.so",
    "_yaml/__init__.py", "charset_normalizer/md.cpython-313-x86_64-linux-gnu.so", "botocore/cacert.pem",
    "aws_lambda_powertools/event_handler/api_gateway.py", "aws_lambda_powertools/utilities/parser/__init__.py",
    "websocket/tests/test_websocket.py", "durationpy/__init__.pyi", "botocore-1.44.8.dist-info/RECORD",
    "rdflib/plugins/sparql/parser.py", "rdflib/plugins/serializers/turtle.py", "rdflib/plugins/parsers/ntriples.py",
    "rdflib/plugins/stores/sparqlstore.py", "rdflib/extras/describer.py", "rdflib/tools/rdfpipe.py",
    "pyparsing/core.py", "cffi/api.py", "pycparser/c_parser.py", "dateutil/zoneinfo/dateutil-zoneinfo.tar.gz",
    "botocore/data/s3/2006-03-01/examples-1.json", "botocore/data/lambda/2014-11-11/service-2.json.gz",
])
def test_what_the_function_never_loads_is_dropped(name):
    assert drop_reason(name)


def test_botocore_keeps_its_ca_bundle_without_certifi():
    assert drop_reason("botocore/cacert.pem", certifi=False) is None


# ---- the rewrite ------------------------------------------------------------------------------------

PLANTED = {
    "app.py": b"from chalice import Chalice\n",
    "chalicelib/__init__.py": b"",
    "botocore/__init__.py": b"",
    "botocore/cacert.pem": b"botocore's bundle",
    "certifi/cacert.pem": b"certifi's bundle",
    "botocore/data/endpoints.json": b"{}",
    **{f"botocore/data/{s}/2000-01-01/service-2.json.gz": s.encode() for s in AWS_SERVICES},
    "botocore/data/ec2/2016-11-15/service-2.json.gz": b"x" * 5000,
    "boto3/data/s3/2006-03-01/resources-1.json": b"{}",
    "botocore-1.44.8.dist-info/METADATA": b"Name: botocore\n",
    "botocore-1.44.8.dist-info/RECORD": b"botocore/__init__.py,,\n",
}


def _planted_zip(path: Path, seed: int) -> Path:
    names = list(PLANTED)
    random.Random(seed).shuffle(names)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=(2020 + seed, 1 + seed, 1, 12, seed, 0))
            info.external_attr = (0o100775 if name.endswith(".py") else 0o100600) << 16
            archive.writestr(info, PLANTED[name])
    return path


def test_the_rewrite_drops_what_the_function_never_loads(tmp_path):
    path = _planted_zip(tmp_path / "deployment.zip", seed=1)
    trim = trim_zip(path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert archive.read("certifi/cacert.pem") == b"certifi's bundle"
    assert names == sorted(set(PLANTED) - {"botocore/cacert.pem", "botocore/data/ec2/2016-11-15/service-2.json.gz",
                                           "boto3/data/s3/2006-03-01/resources-1.json",
                                           "botocore-1.44.8.dist-info/RECORD"})
    assert trim.services == sorted(AWS_SERVICES)
    assert sum(d.files for d in trim.dropped) == 4
    assert trim.dropped[0].reason == "botocore models of services the app never calls"  # the largest first
    assert trim.chalice_unzipped_bytes == sum(len(v) for v in PLANTED.values())


def test_the_rewrite_is_deterministic(tmp_path):
    first = _planted_zip(tmp_path / "first.zip", seed=1)
    second = _planted_zip(tmp_path / "second.zip", seed=2)  # other order, timestamps and modes
    assert first.read_bytes() != second.read_bytes()
    trim_zip(first)
    trim_zip(second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in archive.infolist()} == {0o100755, 0o100644}


def test_the_rewrite_refuses_a_botocore_without_a_kept_service(tmp_path):
    path = _planted_zip(tmp_path / "deployment.zip", seed=1)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp_path / "no-eks.zip", "w") as target:
        for info in source.infolist():
            if not info.filename.startswith("botocore/data/eks/"):
                target.writestr(info, source.read(info))
    with pytest.raises(PackageError, match=r"botocore 1\.44\.8 in the zip has no model for eks"):
        trim_zip(tmp_path / "no-eks.zip")


def test_a_zip_over_the_target_fails_the_build(tmp_path):
    fits = ZipReport(zipped_bytes=TARGET_ZIPPED_BYTES, unzipped_bytes=40 * 2**20, files=1, largest=[], forbidden=[])
    check_zip(fits, tmp_path / "deployment.zip")
    over = ZipReport(zipped_bytes=TARGET_ZIPPED_BYTES + 1, unzipped_bytes=40 * 2**20, files=1,
                     largest=[("botocore", 21 * 2**20)], forbidden=[])
    with pytest.raises(PackageError, match=r"10,485,761 bytes zipped, over the 10,485,760 of TARGET_ZIPPED_BYTES"):
        check_zip(over, tmp_path / "deployment.zip")
