"""`make package`: a stage's deployable template and Lambda zip, built and checked.

    python -m scripts.package --stage dev      # -> build/package-dev/{sam.yaml, deployment.zip}

1. `chalice package --stage <stage> --merge-template infra/chalice/app-extras.yaml`, run by a
   Python of the Lambda runtime (`LAMBDA_RUNTIME`): Chalice names the runtime after the
   interpreter that packages and downloads wheels for it. When this venv's Python is another
   version, a packaging venv with the same chalice version is made once in build/.
2. Strings with `${...}` in the stage's environment variables and IAM policy become `Fn::Sub`,
   so .chalice/config.json and .chalice/policy-<stage>.json can name the account, region,
   stack and stack parameters (see docs/DEPLOY.md). Chalice itself would copy them verbatim.
3. The zip is rewritten without what the function never loads (`drop_reason`): botocore's models
   of the ~400 AWS services the app does not call (it keeps `AWS_SERVICES`), Powertools features it
   does not use, optional C speed-ups, test suites, stubs and install manifests. The rewrite is
   deterministic (sorted entries, fixed timestamps and modes), and the result must fit
   `TARGET_ZIPPED_BYTES` (10 MiB zipped).
4. The zip must hold none of the trainer's libraries (torch, scikit-learn, pandas, pyarrow, numpy).
5. cfn-lint checks the template; the sizes, before and after step 3, are printed and written to
   docs/BENCHMARKS.md.

Tests import `build()` (tests/infra); it does steps 1-4 and returns what it built.
tests/infra/test_infra_package_zip.py runs the app from nothing but the built zip.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
MERGE_TEMPLATE = ROOT / "infra" / "chalice" / "app-extras.yaml"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"

# The Lambda runtime. python3.11 can no longer be created (deprecated 2026-06-30, creation
# blocked 2026-07-31); cfn-lint's E2533 says so for any runtime past its date.
LAMBDA_RUNTIME = "python3.13"
# Top-level packages that belong to the trainer image, never to the Lambda.
FORBIDDEN_PACKAGES = ("torch", "sklearn", "scikit_learn", "pandas", "pyarrow", "numpy")
# Lambda's limits for a zip deployment package.
ZIPPED_LIMIT_BYTES = 50 * 1024 * 1024
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
LINT_REGIONS = ("us-east-1", "eu-west-1")
# What `make package` must stay under, zipped: a quarter of Lambda's limit, and a cold start that
# downloads and unpacks 10 MiB rather than 28.
TARGET_ZIPPED_BYTES = 10 * 1024 * 1024

# The AWS services the function makes clients for; botocore's models of every other service are
# dropped (15 of the 28 MB zipped). Found in the code, as tests/unit/test_package_services.py does:
#   dynamodb                 PynamoDB (chalicelib/adapters/tables.py, dynamo.py)
#   s3                       wiring.aws_client(settings, "s3"): artifacts and project data
#   sts                      wiring.aws_client(settings, "sts"): per-run credentials; eks._aws_client: EKS tokens
#   eks                      eks._aws_client("eks"): DescribeCluster for the endpoint and CA
#   lambda                   wiring.predictor_client: the online predictor function
#   apigatewaymanagementapi  wiring.management_client: WebSocket pushes
# A client for a service not listed here fails at run time with UnknownServiceError, and that test
# fails first.
AWS_SERVICES = ("apigatewaymanagementapi", "dynamodb", "eks", "lambda", "s3", "sts")
# Powertools' utilities that its Logger and metrics (all the app uses, chalicelib/observability.py)
# import; its other utilities and its event handler (a web framework: the app's is Chalice) are dropped.
POWERTOOLS_UTILITIES = ("jmespath_utils", "typing")
# The app's own code is never trimmed.
APP_CODE = ("app.py", "chalicelib/")
# Every entry of the rewritten zip gets this timestamp (zip's epoch), so the same inputs give the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# Chalice writes YAML when the merge template is YAML (intrinsics in their long form).
TEMPLATE_NAME = "sam.yaml"
SUB_MARK = re.compile(r"\$\{[^}!][^}]*\}")


class PackageError(Exception):
    """The package could not be built, or it is not fit to deploy."""


@dataclass(frozen=True)
class ZipReport:
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    # Top-level entries (package, module or dist-info) by unzipped size, largest first.
    largest: list[tuple[str, int]]
    forbidden: list[str]


@dataclass(frozen=True)
class Dropped:
    """What one `drop_reason` took out of chalice's zip."""

    reason: str
    files: int
    unzipped_bytes: int
    zipped_bytes: int  # as chalice had compressed them


@dataclass(frozen=True)
class Trim:
    """Chalice's zip before the rewrite, and what the rewrite dropped."""

    chalice_zipped_bytes: int
    chalice_unzipped_bytes: int
    dropped: list[Dropped]
    services: list[str]  # the AWS services whose botocore models the zip keeps

    @property
    def dropped_unzipped_bytes(self) -> int:
        return sum(d.unzipped_bytes for d in self.dropped)


@dataclass
class Package:
    stage: str
    out_dir: Path
    runtime: str
    seconds: float
    zip: ZipReport
    trim: Trim
    reused_dependencies: bool
    template: dict[str, Any] = field(repr=False)

    @property
    def template_path(self) -> Path:
        return self.out_dir / TEMPLATE_NAME

    @property
    def zip_path(self) -> Path:
        return self.out_dir / "deployment.zip"


# ---- the interpreter that packages ----------------------------------------------------


def runtime_version(runtime: str = LAMBDA_RUNTIME) -> tuple[int, int]:
    major, minor = runtime.removeprefix("python").split(".")
    return int(major), int(minor)


def _python_version(candidate: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    major, _, minor = out.partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def find_interpreter(version: tuple[int, int], explicit: str | None = None) -> str:
    """A Python `version` interpreter: --python, $LAMBDA_PYTHON, pythonX.Y on PATH, or pyenv's."""
    name = f"python{version[0]}.{version[1]}"
    candidates = [c for c in (explicit, os.environ.get("LAMBDA_PYTHON")) if c]
    candidates += [p for p in (shutil.which(name),) if p]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version[0]}.{version[1]}*/bin/{name}"),
                                          reverse=True)]
    for candidate in candidates:
        if _python_version(candidate) == version:
            return candidate
    raise PackageError(
        f"packaging for the {LAMBDA_RUNTIME} Lambda runtime needs a {name} interpreter; none found "
        f"(tried {', '.join(candidates) or name + ' on PATH'}). Install one, or point LAMBDA_PYTHON at it."
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time (parallel test runs share build/)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def chalice_executable(runtime: str = LAMBDA_RUNTIME, python: str | None = None) -> Path:
    """The `chalice` to package with: this venv's when its Python is the runtime's, else a
    packaging venv in build/ with the same chalice version and the app's requirements (Chalice
    imports app.py to find its routes)."""
    version = runtime_version(runtime)
    if sys.version_info[:2] == version and python is None:
        return Path(sys.executable).parent / "chalice"
    chalice_version = metadata.version("chalice")
    requirements = (ROOT / "requirements.txt").read_bytes()
    stamp_value = f"chalice=={chalice_version}\n{hashlib.sha256(requirements).hexdigest()}\n"
    venv = BUILD / f"chalice-{runtime}"
    stamp = venv / ".installed"
    with _locked(BUILD / f".chalice-{runtime}.lock"):
        if not (stamp.exists() and stamp.read_text() == stamp_value):
            shutil.rmtree(venv, ignore_errors=True)
            interpreter = find_interpreter(version, python)
            _run([interpreter, "-m", "venv", str(venv)], "create the packaging venv")
            _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  f"chalice=={chalice_version}", "-r", str(ROOT / "requirements.txt")],
                 "install chalice into the packaging venv")
            stamp.write_text(stamp_value)
    return venv / "bin" / "chalice"


def _run(command: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise PackageError(f"could not {what} ({' '.join(command)}):\n{result.stdout}{result.stderr}")
    return result


# ---- the template -----------------------------------------------------------------------


def deployable_stages() -> list[str]:
    stages = json.loads(CHALICE_CONFIG.read_text())["stages"]
    return [name for name in stages if name != "local"]


def _as_sub(value: Any) -> Any:
    """`value` with every string that names `${...}` wrapped in Fn::Sub (recursively)."""
    if isinstance(value, str):
        return {"Fn::Sub": value} if SUB_MARK.search(value) else value
    if isinstance(value, list):
        return [_as_sub(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return value  # already an intrinsic function
        return {k: _as_sub(v) for k, v in value.items()}
    return value


def substitute(template: dict[str, Any]) -> dict[str, Any]:
    """Fn::Sub for `${...}` in functions' environment variables and roles' inline policies."""
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            variables = props.get("Environment", {}).get("Variables")
            if variables:
                props["Environment"]["Variables"] = _as_sub(variables)
        elif resource.get("Type") == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                policy["PolicyDocument"] = _as_sub(policy["PolicyDocument"])
    return template


def lint(template_path: Path) -> list[str]:
    """cfn-lint's findings for the template (errors and warnings), one line each."""
    from cfnlint.api import lint_file
    from cfnlint.config import ManualArgs

    matches = lint_file(template_path, config=ManualArgs(regions=list(LINT_REGIONS)))
    return [f"{m.rule.id} {m.message} ({m.filename}:{m.linenumber})" for m in matches]


# ---- the zip -------------------------------------------------------------------------------


def _top_level(name: str) -> str:
    top = name.split("/", 1)[0]
    return top.removesuffix(".py")


def _distribution(top: str) -> str:
    """`numpy-2.1.0.dist-info` -> `numpy`; `sklearn` -> `sklearn`."""
    if top.endswith((".dist-info", ".data", ".libs")):
        top = re.split(r"-\d", top, maxsplit=1)[0].removesuffix(".libs")
    return top.lower().replace("-", "_")


def inspect_zip(path: Path) -> ZipReport:
    sizes: Counter[str] = Counter()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        for info in infos:
            sizes[_top_level(info.filename)] += info.file_size
    forbidden = sorted({top for top in sizes if _distribution(top) in FORBIDDEN_PACKAGES})
    return ZipReport(
        zipped_bytes=path.stat().st_size,
        unzipped_bytes=sum(sizes.values()),
        files=len(infos),
        largest=sizes.most_common(6),
        forbidden=forbidden,
    )


# ---- trimming the zip ---------------------------------------------------------------------------

_SERVICE_MODEL = re.compile(r"botocore/data/([^/]+)/")
_POWERTOOLS_UTILITY = re.compile(r"aws_lambda_powertools/utilities/([^/]+)/")
BOTOCORE_CA_BUNDLE = "botocore/cacert.pem"


def _matching(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda name: compiled.search(name) is not None


def _unused_service_model(name: str) -> bool:
    service = _SERVICE_MODEL.match(name)
    return bool(service) and service.group(1) not in AWS_SERVICES


def _unused_powertools(name: str) -> bool:
    utility = _POWERTOOLS_UTILITY.match(name)
    return name.startswith("aws_lambda_powertools/event_handler/") or (
        bool(utility) and utility.group(1) not in POWERTOOLS_UTILITIES)


# rdflib modules a Turtle parse into a memory graph loads (`import rdflib` loads the berkeleydb store's
# module, which needs the berkeleydb package only when such a store is opened).
_RDFLIB_PLUGINS_KEPT = frozenset({"__init__", "parsers", "parsers/notation3", "stores", "stores/memory",
                                  "stores/berkeleydb"})


def _unused_rdflib(name: str) -> bool:
    if name.startswith("pyparsing/") or name.startswith(("rdflib/extras/", "rdflib/tools/", "rdflib/contrib/")):
        return True
    plugin = name.removeprefix("rdflib/plugins/")
    module = plugin.removesuffix("/__init__.py").removesuffix(".py")
    # ("parsers/notation3/BadSyntax": a name inside a kept module, as `from ... import` names it)
    return plugin != name and not any(module == k or module.startswith(k + "/") and k.count("/")
                                      for k in _RDFLIB_PLUGINS_KEPT)


# (why the function never loads them, which zip entries); the first that matches names the reason.
# Bytecode (__pycache__) is kept: /var/task is read-only, so a .pyc shipped in the zip is the only
# one a cold start can use.
DROPS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("botocore models of services the app never calls", _unused_service_model),
    ("boto3's resource models (the app makes clients, never boto3.resource)",
     lambda name: name.startswith("boto3/data/")),
    ("PyYAML's C extension (no code asks for its C loaders; yaml falls back to Python)",
     _matching(r"^(yaml/_yaml\.[^/]*\.so$|_yaml/)")),
    ("charset_normalizer's compiled md/cd (the .py modules they shadow are kept)",
     _matching(r"^charset_normalizer/[^/]+\.so$")),
    ("botocore's CA bundle (botocore verifies with certifi's, which is kept)",
     lambda name: name == BOTOCORE_CA_BUNDLE),
    ("Powertools' event handler and utilities (the app uses only Logger and metrics)", _unused_powertools),
    ("botocore's request examples and superseded API versions (documentation; clients load the newest)",
     _matching(r"^botocore/data/[^/]+/[^/]+/examples-1\.json$|^botocore/data/(lambda/2014-11-11|dynamodb/2011-12-05)/")),
    ("cffi's and pycparser's Python packages (they build C bindings; cryptography's compiled ones load "
     "_cffi_backend alone)", _matching(r"^(cffi|pycparser)/")),
    ("rdflib's SPARQL, serializers, stores and parsers other than Turtle and memory, its extras and tools, "
     "and pyparsing (only SPARQL uses it): the app parses Turtle into a memory graph", _unused_rdflib),
    ("dateutil's bundled time-zone database (read only when a zone is named and the system has none; "
     "no code here names one)", lambda name: name == "dateutil/zoneinfo/dateutil-zoneinfo.tar.gz"),
    ("test suites inside packages", _matching(r"/tests?/")),
    ("type stubs (.pyi)", lambda name: name.endswith(".pyi")),
    ("pip's install manifests (RECORD: it would list the dropped files)",
     lambda name: name.endswith(".dist-info/RECORD")),
)


def drop_reason(name: str, certifi: bool = True) -> str | None:
    """Why the function never loads zip entry `name`, or None to keep it.

    `certifi`: whether the zip holds certifi's CA bundle; botocore verifies with it when it is
    importable (botocore.httpsession.get_cert_path), and with its own bundle only when it is not.
    """
    if name == APP_CODE[0] or name.startswith(APP_CODE[1:]):
        return None
    if name == BOTOCORE_CA_BUNDLE and not certifi:
        return None
    return next((reason for reason, matches in DROPS if matches(name)), None)


def _mode(info: zipfile.ZipInfo) -> int:
    """A regular file's mode bits for the zip: executable or not, nothing else from the build machine."""
    executable = (info.external_attr >> 16) & 0o111
    return (0o100755 if executable else 0o100644) << 16


def trim_zip(path: Path) -> Trim:
    """Rewrite the zip at `path` without what `drop_reason` names, deterministically."""
    before = path.stat().st_size
    with zipfile.ZipFile(path) as source:
        infos = sorted((i for i in source.infolist() if not i.is_dir()), key=lambda i: i.filename)
        certifi = any(i.filename == "certifi/cacert.pem" for i in infos)
        dropped: dict[str, list[zipfile.ZipInfo]] = {}
        kept: list[zipfile.ZipInfo] = []
        for info in infos:
            reason = drop_reason(info.filename, certifi=certifi)
            (dropped.setdefault(reason, []) if reason else kept).append(info)
        services = sorted({m.group(1) for i in kept if (m := _SERVICE_MODEL.match(i.filename))})
        missing = sorted(set(AWS_SERVICES) - set(services))
        if missing:
            raise PackageError(f"botocore {_botocore_version(source)} in the zip has no model for "
                               f"{', '.join(missing)} (AWS_SERVICES in scripts/package.py)")
        rewritten = path.with_name(path.name + ".trimmed")
        with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
            for info in kept:
                entry = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
                entry.create_system = 3  # unix: the mode bits below are what Lambda's unzip applies
                entry.external_attr = _mode(info)
                entry.compress_type = zipfile.ZIP_DEFLATED
                target.writestr(entry, source.read(info), compresslevel=9)
    os.replace(rewritten, path)
    return Trim(
        chalice_zipped_bytes=before,
        chalice_unzipped_bytes=sum(i.file_size for i in infos),
        dropped=[Dropped(reason, len(group), sum(i.file_size for i in group), sum(i.compress_size for i in group))
                 for reason, group in sorted(dropped.items(), key=lambda kv: -sum(i.compress_size for i in kv[1]))],
        services=services,
    )


def _botocore_version(archive: zipfile.ZipFile) -> str:
    found = [m.group(1) for n in archive.namelist() if (m := re.fullmatch(r"botocore-([^/]+)\.dist-info/METADATA", n))]
    return found[0] if found else "(version unknown)"


# ---- build --------------------------------------------------------------------------------


def build(stage: str, out_dir: Path | None = None, python: str | None = None,
          runtime: str = LAMBDA_RUNTIME) -> Package:
    """Package `stage` into `out_dir` (default build/package-<stage>); raise PackageError if unfit."""
    if stage not in deployable_stages():
        raise PackageError(f"stage {stage!r} is not deployable; choose one of {', '.join(deployable_stages())} "
                           "(the local stage runs on moto: make run)")
    out_dir = Path(out_dir or BUILD / f"package-{stage}")
    started = time.monotonic()
    chalice = chalice_executable(runtime, python)
    for name in ("sam.json", TEMPLATE_NAME, "deployment.zip"):
        (out_dir / name).unlink(missing_ok=True)
    env = dict(os.environ)
    # Chalice wants a region; the template itself is region-agnostic (${AWS::Region}).
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    result = _run([str(chalice), "--project-dir", str(ROOT), "package", "--stage", stage,
                   "--merge-template", str(MERGE_TEMPLATE), str(out_dir)],
                  f"package stage {stage}", cwd=ROOT, env=env)
    template_path = out_dir / TEMPLATE_NAME
    template = substitute(yaml.safe_load(template_path.read_text()))
    template_path.write_text(yaml.safe_dump(template, sort_keys=False, width=120))
    _check_runtime(template, runtime)
    trim = trim_zip(out_dir / "deployment.zip")
    report = inspect_zip(out_dir / "deployment.zip")
    check_zip(report, out_dir / "deployment.zip")
    return Package(stage=stage, out_dir=out_dir, runtime=runtime, seconds=time.monotonic() - started, zip=report,
                   trim=trim,
                   reused_dependencies="Reusing existing deployment package" in result.stdout + result.stderr,
                   template=template)


def check_zip(report: ZipReport, path: Path) -> None:
    """Raise PackageError if the zip holds a training library, or is over Lambda's limits or our target."""
    if report.forbidden:
        raise PackageError(
            f"the Lambda package {path} holds {', '.join(report.forbidden)}: "
            "training libraries belong to trainer/requirements.txt, not requirements.txt"
        )
    if report.zipped_bytes > ZIPPED_LIMIT_BYTES or report.unzipped_bytes > UNZIPPED_LIMIT_BYTES:
        raise PackageError(f"the Lambda package is over Lambda's limits: {_mb(report.zipped_bytes)} zipped, "
                           f"{_mb(report.unzipped_bytes)} unzipped (50 MB / 250 MB)")
    if report.zipped_bytes > TARGET_ZIPPED_BYTES:
        largest = ", ".join(f"{name} {_mb(size)}" for name, size in report.largest)
        raise PackageError(f"the Lambda package is {report.zipped_bytes:,} bytes zipped, over the "
                           f"{TARGET_ZIPPED_BYTES:,} of TARGET_ZIPPED_BYTES (largest unzipped: {largest}); "
                           "a dependency belongs in requirements.txt only if the function imports it, and "
                           "what it ships but never loads can go in DROPS")


def _check_runtime(template: dict[str, Any], runtime: str) -> None:
    for name, resource in template["Resources"].items():
        found = resource.get("Properties", {}).get("Runtime")
        if found is not None and found != runtime:
            raise PackageError(f"{name} has runtime {found}, expected {runtime}")


# ---- report ---------------------------------------------------------------------------------


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def benchmark_body(package: Package) -> str:
    from bench.report import markdown_table

    z, trim = package.zip, package.trim
    rows = [[package.stage, package.runtime, f"{_mb(z.zipped_bytes)} ({z.zipped_bytes:,} bytes)",
             _mb(z.unzipped_bytes), f"{z.files:,}",
             f"{_mb(trim.chalice_zipped_bytes)} zipped, {_mb(trim.chalice_unzipped_bytes)} unzipped"]]
    dropped = [[d.reason, f"{d.files:,}", _mb(d.unzipped_bytes), _mb(d.zipped_bytes)] for d in trim.dropped]
    dropped.append(["**all**", f"{sum(d.files for d in trim.dropped):,}", _mb(trim.dropped_unzipped_bytes),
                    _mb(sum(d.zipped_bytes for d in trim.dropped))])
    largest = ", ".join(f"{name} {_mb(size)}" for name, size in z.largest)
    return (
        markdown_table(["Stage", "Runtime", "Zipped (deployment.zip)", "Unzipped", "Files",
                        "chalice package's zip, before trimming"], rows)
        + f"\n\nThe target is {_mb(TARGET_ZIPPED_BYTES)} zipped (`TARGET_ZIPPED_BYTES`; the build fails above it). "
        + f"botocore models kept, of the services the app calls (`AWS_SERVICES`): {', '.join(trim.services)}. "
        + "Dropped from chalice's zip (zipped as chalice compressed them; the rewrite recompresses at level 9):\n\n"
        + markdown_table(["Dropped", "Files", "Unzipped", "Zipped"], dropped)
        + f"\n\nLargest entries, unzipped: {largest}. "
        + "No torch, scikit-learn, pandas, pyarrow or numpy (checked by `scripts/package.py`). "
        + "Lambda's limits for a zip package: 50 MB zipped, 250 MB unzipped. "
        + f"Building it took {package.seconds:.1f} s"
        + (" (dependencies reused from chalice's cache in .chalice/deployments)." if package.reused_dependencies else
           " (a first build: manylinux wheels downloaded for the runtime).")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--out", type=Path, help="output directory (default build/package-<stage>)")
    parser.add_argument("--python", help=f"a {LAMBDA_RUNTIME} interpreter to package with (default: found)")
    parser.add_argument("--no-benchmark", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    try:
        package = build(args.stage, args.out, args.python)
        findings = lint(package.template_path)
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    if findings:
        print(f"package: cfn-lint found problems in {package.template_path}:", file=sys.stderr)
        print("\n".join(f"  {line}" for line in findings), file=sys.stderr)
        return 1
    z = package.zip
    print(f"{package.template_path}: cfn-lint clean")
    print(f"{package.zip_path}: {_mb(z.zipped_bytes)} zipped ({z.zipped_bytes:,} bytes), "
          f"{_mb(z.unzipped_bytes)} unzipped, {z.files:,} files, runtime {package.runtime}, "
          f"built in {package.seconds:.1f} s")
    trim = package.trim
    print(f"  trimmed from chalice's {_mb(trim.chalice_zipped_bytes)} zipped / {_mb(trim.chalice_unzipped_bytes)} "
          f"unzipped; botocore models kept: {', '.join(trim.services)}")
    for d in trim.dropped:
        print(f"  dropped {d.files:,} file{'s' if d.files > 1 else ''}, {_mb(d.unzipped_bytes)} unzipped: {d.reason}")
    if not args.no_benchmark:
        from bench.report import write_section

        write_section(name="scripts/package.py", title="Lambda package size", body=benchmark_body(package), order=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
