"""The trainer image as the deployment needs it (read statically: no Docker daemon here).

The launcher's pod runs as TRAINER_UID with a read-only root filesystem; the image must run as
that user, be multi-stage, build CPU torch unless told otherwise, and start `python -m trainer`.
"""
from __future__ import annotations

import json
import re

from infra_support import ROOT

from chalicelib.adapters.eks import TRAINER_UID

DOCKERFILE = ROOT / "trainer" / "Dockerfile"


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
