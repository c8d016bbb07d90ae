"""The versioned artifact: model files plus manifest.json under <prefix>/<model_id>/v<version>/.

A version exists once its manifest exists. The manifest is written last, with a
conditional put, so an earlier version is never overwritten; model files without a
manifest are leftovers of an attempt that never committed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING

from trainer.errors import TrainingFailed
from trainer.spec import TrainingSpec
from trainer.storage import exists, put_file

if TYPE_CHECKING:  # the pipeline pulls in scikit-learn; a run that fails early should not pay for it
    from trainer.pipeline import TrainingResult

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Larger manifests are written without indentation (the API reads at most 8 MiB of one).
READABLE_MANIFEST_BYTES = 1024 * 1024
LIBRARIES = ("scikit-learn", "torch", "numpy", "pandas", "pyarrow", "skops", "rdflib", "boto3")


@dataclass(frozen=True)
class ArtifactLocation:
    bucket: str
    prefix: str  # ends with "/"

    @classmethod
    def for_version(cls, bucket: str, root: str, model_id: str, version: int) -> ArtifactLocation:
        root = root.strip("/")
        return cls(bucket=bucket, prefix=f"{root + '/' if root else ''}{model_id}/v{version}/")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return self.prefix + name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_manifest(
    spec: TrainingSpec,
    result: TrainingResult,
    files: dict[str, bytes],
    location: ArtifactLocation,
    data: dict,
    now: datetime | None = None,
) -> dict:
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_id": spec.model_id,
        "run_id": spec.run_id,
        "version": spec.version,
        "artifact_uri": location.uri,
        "model_type": spec.model_type,
        "task": result.task,
        "input_schema": result.input_schema,
        "excluded_columns": result.excluded_columns,
        "target": result.target,
        "performance_metrics": result.performance_metrics,
        "training_metrics": result.training_metrics,
        "training_config": spec.config.as_dict(),
        "config_usage": result.config_usage,
        "split": result.split,
        "data": data,
        "libraries": library_versions(),
        "files": {name: {"sha256": sha256(body), "size": len(body)} for name, body in sorted(files.items())},
        "warnings": result.warnings,
        "loader": "trainer.loader.load_model",
        "created_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }
    if result.reference is not None:  # what monitoring compares new data with (trainer/drift.py)
        manifest["reference"] = result.reference
    return manifest


def ensure_version_is_free(client, location: ArtifactLocation) -> None:
    if exists(client, location.bucket, location.key(MANIFEST)):
        raise TrainingFailed(f"artifact version {location.uri} already exists; an earlier version is never overwritten")


def upload(client, location: ArtifactLocation, files: dict[str, bytes], manifest: dict,
           guard: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> None:
    """Model files first, then the manifest, which only succeeds if the version is still free.

    The manifest is written inside `guard()` (`callback.PublishGate.publishing`: it refuses, with
    RunEnded, once the run is over or the process is stopping)."""
    for name, body in sorted(files.items()):
        put_file(client, location.bucket, location.key(name), body)
    body = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False).encode()
    if len(body) > READABLE_MANIFEST_BYTES:  # a many-class confusion matrix: one number a line would triple it
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    with guard():
        committed = put_file(
            client, location.bucket, location.key(MANIFEST), body, if_absent=True, content_type="application/json"
        )
    if not committed:
        raise TrainingFailed(f"artifact version {location.uri} was committed by another run meanwhile; not overwritten")
