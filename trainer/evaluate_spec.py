"""What one evaluation job is asked to do: its spec, checked before any work.

The environment is the batch prediction job's (`trainer.predict_spec.PredictionSettings`: the training
contract, TRAINER_RUN_ID holding the evaluation id, and TRAINER_PREDICT_BATCH_ROWS rows per batch). The
spec is the JSON at TRAINER_SPEC_URI; every key is checked here and an unknown one is refused. Importing
this module loads nothing heavy (numpy's thread pools must start only after SIGTERM is blocked).
"""
from __future__ import annotations

from dataclasses import dataclass

from trainer.config import Settings
from trainer.predict_spec import InputLocation, _inputs, _output_location, _s3_uri, job_spec

KIND = "evaluation"
REPORT = "report.json"
SPEC_KEYS = frozenset({"kind", "evaluation_id", "model_id", "version", "artifact_uri", "inputs", "output_uri"})


@dataclass(frozen=True)
class EvaluationSpec:
    evaluation_id: str
    model_id: str
    version: int
    artifact_uri: str
    inputs: tuple[InputLocation, ...]
    output_bucket: str
    output_prefix: str  # ends with "/"

    @property
    def output_uri(self) -> str:
        return f"s3://{self.output_bucket}/{self.output_prefix}"

    @property
    def report_key(self) -> str:
        return self.output_prefix + REPORT

    @property
    def report_uri(self) -> str:
        return self.output_uri + REPORT


def parse_evaluation_spec(text: str | bytes, settings: Settings) -> EvaluationSpec:
    """The spec, checked against the job's identity and its artifact bucket (TrainingFailed naming the fault)."""
    raw, version = job_spec(text, settings, KIND, SPEC_KEYS)
    bucket, prefix = _output_location(raw.get("output_uri"), settings.artifact_bucket)
    return EvaluationSpec(
        evaluation_id=raw["evaluation_id"], model_id=raw["model_id"], version=version,
        artifact_uri=_s3_uri(raw.get("artifact_uri"), "artifact_uri"), inputs=_inputs(raw.get("inputs")),
        output_bucket=bucket, output_prefix=prefix,
    )
