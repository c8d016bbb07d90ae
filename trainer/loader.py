"""Load a trained model from its artifact URI: S3 -> sha256-verified files -> model.

    from trainer.loader import load_model
    model = load_model("s3://bucket/models/model-123/v3/")
    model.predict([{"age": 41, "plan": "pro"}])

No pickle is ever trusted: scikit-learn objects load through skops with the trusted
type list in `trainer.fitted`, network weights through `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from trainer.errors import ArtifactError
from trainer.fitted import SklearnModel, TorchModel, as_frame, decode

SUPPORTED_FORMAT_VERSIONS = (1,)


class LoadedModel:
    def __init__(self, model: SklearnModel | TorchModel, manifest: dict) -> None:
        self.model = model
        self.manifest = manifest

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def classes(self) -> list | None:
        return self.manifest["target"].get("classes")

    @property
    def feature_names(self) -> list[str]:
        return [entry["name"] for entry in self.manifest["input_schema"]]

    def predict(self, rows) -> list:
        """Predicted class labels or values for a list of dicts or a DataFrame (extra keys ignored, missing imputed)."""
        return self.model.predict(as_frame(rows))

    def predict_proba(self, rows) -> list[list[float]]:
        """Per-row class probabilities, in the order of `classes`."""
        if self.task != "classification":
            raise TypeError("predict_proba is only available for classification models")
        return np.asarray(self.model.predict_proba(as_frame(rows)), dtype="float64").tolist()

    def predict_with_proba(self, rows) -> tuple[list, np.ndarray]:
        """(`predict`, `predict_proba` as float64 rows) of the same rows from one prediction."""
        if self.task != "classification":
            raise TypeError("predict_proba is only available for classification models")
        codes, proba = self.model.predict_encoded_and_proba(as_frame(rows))
        return decode(codes, self.model.task, self.model.classes), np.asarray(proba, dtype="float64")


def load_model(uri: str, s3_client=None) -> LoadedModel:
    """Fetch manifest.json and every file it lists under the version URI, verify sha256s, and load."""
    if not uri.startswith("s3://"):
        raise ArtifactError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    if s3_client is None:
        from trainer.storage import s3_client as make_client

        s3_client = make_client()  # boto3 reads AWS_ENDPOINT_URL itself
    manifest = json.loads(_get(s3_client, bucket, prefix + "manifest.json"))
    if manifest.get("format_version") not in SUPPORTED_FORMAT_VERSIONS:
        raise ArtifactError(f"unsupported manifest format_version {manifest.get('format_version')!r}")
    files = {}
    for name, info in manifest["files"].items():
        data = _get(s3_client, bucket, prefix + name)
        digest = hashlib.sha256(data).hexdigest()
        if digest != info["sha256"]:
            raise ArtifactError(
                f"sha256 mismatch for s3://{bucket}/{prefix}{name}: manifest says {info['sha256']}, file is {digest}"
            )
        files[name] = data
    classes = manifest["target"].get("classes")
    if manifest["model_type"] == "neural_network":
        model = TorchModel.from_files(files, classes)
    else:
        model = SklearnModel.from_files(files, manifest["task"], classes)
    return LoadedModel(model, manifest)


def _get(client, bucket: str, key: str) -> bytes:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise ArtifactError(f"cannot read s3://{bucket}/{key}: {type(exc).__name__}: {exc}") from exc
