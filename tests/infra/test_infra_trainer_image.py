"""The trainer image as the deployment needs it (read statically: no Docker daemon here).

The launcher's pod runs as TRAINER_UID with a read-only root filesystem; the image must run as
that user, be multi-stage, build CPU torch unless told otherwise, and start `python -m trainer`.
The same image is the predictor Lambda's (infra/cloudformation/predictor.yaml): it carries a pinned
Lambda runtime interface client, which that function's ImageConfig runs instead.
"""
from __future__ import annotations

import json
import re

from infra_support import ROOT

from chalicelib.adapters.eks import TRAINER_UID

DOCKERFILE = ROOT / "trainer" / "Dockerfile"
REQUIREMENTS = ROOT / "trainer" / "requirements.txt"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_image_is_multi_stage_and_runs_python_m_trainer_as_the_pods_user():
    steps = instructions()
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(stages) >= 2
    final = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"):]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] == str(TRAINER_UID)
    (entrypoint,) = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m", "trainer"]


def test_cpu_torch_by_default_and_cuda_by_a_build_argument():
    args = dict(rest.partition("=")[::2] for keyword, rest in instructions() if keyword == "ARG")
    assert args.get("TORCH_VARIANT") == "cpu"
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in DOCKERFILE.read_text()


def test_the_build_context_leaves_caches_out():
    ignored = (ROOT / "trainer" / ".dockerignore").read_text().split()
    assert "__pycache__" in ignored or "**/__pycache__" in ignored


def test_the_lambda_runtime_interface_client_is_installed_and_pinned():
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.split(r"[<>=!~\[ ]", name, maxsplit=1)[0].lower()] = version
    assert re.fullmatch(r"\d+\.\d+\.\d+", pins.get("awslambdaric", "")), pins.get("awslambdaric")
    # The build stage installs every requirement but torch from requirements.txt, so the pin is what ships.
    build = " ".join(rest for keyword, rest in instructions() if keyword in ("COPY", "RUN"))
    assert "requirements.txt /tmp/requirements.txt" in build
    assert "grep -vE '^torch==' /tmp/requirements.txt > /tmp/requirements-rest.txt" in build
    assert "pip install -r /tmp/requirements-rest.txt" in build


def test_the_predictor_overrides_the_jobs_entrypoint_with_the_runtime_interface_client():
    """The image's ENTRYPOINT stays the Job's (test above); the Lambda runs awslambdaric with the handler."""
    from infra_support import CLOUDFORMATION, load_template

    image_config = load_template(CLOUDFORMATION / "predictor.yaml")["Resources"]["PredictorFunction"][
        "Properties"]["ImageConfig"]
    assert image_config["EntryPoint"] == ["python", "-m", "awslambdaric"]
    (handler,) = image_config["Command"]
    module, _, function = handler.rpartition(".")
    assert module.split(".")[0] == "trainer" and function
