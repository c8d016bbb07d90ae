"""Fixtures of the infra tier.

`packages` runs scripts/package.py's `build()` once per session for every deployable stage, so
the tests look at exactly what `make package` produces (the first run on a machine makes the
packaging venv and downloads the Lambda's wheels; later runs reuse both).
"""
from __future__ import annotations

import pytest
from infra_support import deployable_stages


@pytest.fixture(scope="session")
def packages(tmp_path_factory) -> dict:
    """{stage: scripts.package.Package} for every deployable stage, built as `make package` builds."""
    from scripts.package import build

    return {stage: build(stage, tmp_path_factory.mktemp(f"package-{stage}")) for stage in deployable_stages()}
