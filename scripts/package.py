"""`make package`: a stage's deployable template and Lambda zip, built and checked.

    python -m scripts.package --stage dev      # -> build/package-dev/{sam.yaml, deployment.zip}

1. `chalice package --stage <stage> --merge-template infra/chalice/app-extras.yaml`, run by a
   Python of the Lambda runtime (`LAMBDA_RUNTIME`): Chalice names the runtime after the
   interpreter that packages and downloads wheels for it. When this venv's Python is another
   version, a packaging venv with the same chalice version is made once in build/.
2. Strings with `${...}` in the stage's environment variables and IAM policy become `Fn::Sub`,
   so .chalice/config.json and .chalice/policy-<stage>.json can name the account, region,
   stack and stack parameters (see docs/DEPLOY.md). Chalice itself would copy them verbatim.
3. The zip must hold none of the trainer's libraries (torch, scikit-learn, pandas, pyarrow, numpy).
4. cfn-lint checks the template; the zipped size is printed and written to docs/BENCHMARKS.md.

Tests import `build()` (tests/infra); it does steps 1-3 and returns what it built.
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
from collections.abc import Iterator
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


@dataclass
class Package:
    stage: str
    out_dir: Path
    runtime: str
    seconds: float
    zip: ZipReport
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
    report = inspect_zip(out_dir / "deployment.zip")
    if report.forbidden:
        raise PackageError(
            f"the Lambda package {out_dir / 'deployment.zip'} holds {', '.join(report.forbidden)}: "
            "training libraries belong to trainer/requirements.txt, not requirements.txt"
        )
    if report.zipped_bytes > ZIPPED_LIMIT_BYTES or report.unzipped_bytes > UNZIPPED_LIMIT_BYTES:
        raise PackageError(f"the Lambda package is over Lambda's limits: {_mb(report.zipped_bytes)} zipped, "
                           f"{_mb(report.unzipped_bytes)} unzipped (50 MB / 250 MB)")
    return Package(stage=stage, out_dir=out_dir, runtime=runtime, seconds=time.monotonic() - started, zip=report,
                   reused_dependencies="Reusing existing deployment package" in result.stdout + result.stderr,
                   template=template)


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

    z = package.zip
    rows = [[package.stage, package.runtime, f"{_mb(z.zipped_bytes)} ({z.zipped_bytes:,} bytes)",
             _mb(z.unzipped_bytes), f"{z.files:,}"]]
    largest = ", ".join(f"{name} {_mb(size)}" for name, size in z.largest)
    return (
        markdown_table(["Stage", "Runtime", "Zipped (deployment.zip)", "Unzipped", "Files"], rows)
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
    if not args.no_benchmark:
        from bench.report import write_section

        write_section(name="scripts/package.py", title="Lambda package size", body=benchmark_body(package), order=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
