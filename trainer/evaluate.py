"""`python -m trainer.evaluate`: a trained model version measured on new data (performance and drift).

settings -> start report -> spec -> model (`trainer.loader`) -> every input object's columns checked ->
per object: a local copy, batches of rows, predictions, bin counts against the manifest's reference and
(for rows with a target value) labels -> `report.json` -> complete report. Memory holds one batch plus,
per labelled row, its true and predicted label (the metrics need all of them), whatever the input's size.

The job reuses the batch prediction job's parts: its settings and input reader, its callback client
(posting under `.../evaluations/{evaluation_id}/`), its model loading and its commit gate. Any failure ends
in one fail report and exit code 1, writing no report; SIGTERM in a fail report and 143; an answer that the
job has ended (409) stops it without writing or reporting anything more. trainer/README.md ("Model
monitoring") describes the contract.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from trainer.batch_predict import CommitGate, JobKind, job_main
from trainer.callback import Reporter
from trainer.errors import TrainingFailed
from trainer.logs import get_logger
from trainer.predict_callback import PredictionCallbackClient, RowProgress
from trainer.predict_spec import PredictionSettings

log = get_logger("evaluate")


@dataclass(frozen=True)
class Outcome:
    report_uri: str
    rows: int
    labelled_rows: int


class EvaluationCallbackClient(PredictionCallbackClient):
    """The prediction job's client (progress `{"rows": n}`, retried final reports), posting under
    `/api/ml-models/{model_id}/evaluations/{evaluation_id}`."""

    def __init__(self, base_url: str, model_id: str, evaluation_id: str, token: str, **kwargs) -> None:
        super().__init__(base_url, model_id, evaluation_id, token, **kwargs)
        self.base = f"{base_url.rstrip('/')}/api/ml-models/{model_id}/evaluations/{evaluation_id}"


class EvaluationReporter(Reporter):
    """At most one final report: complete `{}` (the report is in S3) or fail `{"reason"}`."""

    def complete(self) -> bool:  # type: ignore[override]
        return self._final("complete", {}, "completed")


def main() -> int:
    return job_main(JobKind(
        noun="evaluation", what="the evaluation", scratch_prefix="evaluate-",
        client=EvaluationCallbackClient, reporter=EvaluationReporter, run=run,
        complete=lambda reporter, outcome: reporter.complete(),
        done=lambda outcome: (f"the report {outcome.report_uri} was written",
                              {"report": outcome.report_uri, "rows": outcome.rows,
                               "labelled_rows": outcome.labelled_rows}),
        log=log))


def run(settings: PredictionSettings, progress: RowProgress, gate: CommitGate, scratch: Path) -> Outcome:
    """Everything between the environment and the final report. Every input object's columns are checked
    before any row is read; `report.json` is written last, inside `gate`, only if there is none yet."""
    from trainer.batch_predict import load_version
    from trainer.credentials import aws_session
    from trainer.evaluate_report import Evaluation, report_body, report_document
    from trainer.evaluate_spec import parse_evaluation_spec
    from trainer.predict_input import check_columns, list_inputs, probe
    from trainer.storage import put_file, read_spec, s3_client

    base = settings.base
    progress.check()  # the start report ({"rows": 0}); a job the control plane has ended goes no further
    s3 = s3_client(base.endpoint_url, aws_session(base))
    spec = parse_evaluation_spec(base.spec_json if base.spec_json is not None else read_spec(s3, base.spec_uri),
                                 base)
    earlier = existing_report(s3, spec)
    if earlier is not None:
        return _already_written(spec, earlier)
    model = load_version(s3, spec, base.torch_threads)
    objects = [probe(s3, obj) for obj in list_inputs(s3, spec.inputs)]
    check_columns(objects, model.feature_names, [])
    evaluation = Evaluation(model)
    log.info("inputs checked", extra={"objects": len(objects), "target": model.manifest["target"]["name"],
                                      "batch_rows": settings.batch_rows})
    lineage = []
    for item in objects:
        rows = _evaluate_object(s3, item, evaluation, settings.batch_rows, progress, scratch)
        lineage.append({"uri": item.source.uri, "etag": item.source.etag, "size": item.source.size, "rows": rows})
    document = report_document(spec, evaluation, lineage)
    progress.check()  # a job cancelled meanwhile writes nothing
    body = report_body(document)
    with gate.committing():
        written = put_file(s3, spec.output_bucket, spec.report_key, body, if_absent=True,
                           content_type="application/json")
    if not written:
        raise TrainingFailed(f"{spec.report_uri} already exists (another attempt wrote it meanwhile); not overwritten")
    log.info("report written", extra={"report": spec.report_uri, "rows": evaluation.rows,
                                      "labelled_rows": evaluation.labelled_rows})
    return Outcome(spec.report_uri, evaluation.rows, evaluation.labelled_rows)


def _evaluate_object(s3, item, evaluation, batch_rows: int, progress: RowProgress, scratch: Path) -> int:
    """The rows of one input object, added to `evaluation` batch by batch."""
    from trainer.predict_input import download, read_batches

    if item.source.size == 0:
        return 0
    features = evaluation.model.feature_names
    target = evaluation.target["name"]
    # JSON-lines records may differ in keys: a target absent from the first one may come later.
    labelled = target in (item.columns or ()) or item.source.format == "jsonl"
    wanted = [*features, target] if labelled else features
    path = download(s3, item.source, scratch)
    rows = 0
    try:
        for batch in read_batches(path, item.source, wanted, [], batch_rows):
            evaluation.add(batch.features[features], batch.features[target] if labelled else None)
            rows += len(batch)
            progress.advance(len(batch))
    finally:
        path.unlink(missing_ok=True)
    log.info("input evaluated", extra={"uri": item.source.uri, "rows": rows, "labelled": labelled})
    return rows


def existing_report(s3, spec) -> dict | None:
    """The report an earlier attempt of this job wrote, if any."""
    from trainer.predict_output import ABSENT_CODES
    from trainer.storage import _error_code

    try:
        body = s3.get_object(Bucket=spec.output_bucket, Key=spec.report_key)["Body"].read()
    except Exception as exc:
        if _error_code(exc) in ABSENT_CODES:
            return None
        raise TrainingFailed(f"cannot check {spec.report_uri}: {_error_code(exc) or type(exc).__name__}") from None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise TrainingFailed(f"{spec.report_uri} exists but is not a JSON object; not overwritten")
    return document


def _already_written(spec, document: dict) -> Outcome:
    """An earlier attempt of this job wrote its report: report it rather than redo (or overwrite) it."""
    named = {key: document.get(key) for key in ("evaluation_id", "model_id", "version")}
    if named != {"evaluation_id": spec.evaluation_id, "model_id": spec.model_id, "version": spec.version}:
        raise TrainingFailed(f"{spec.report_uri} already exists and belongs to another job ({named}); not overwritten")
    log.warning("the report was already written by an earlier attempt; reporting it", extra={"report": spec.report_uri})
    return Outcome(spec.report_uri, int(document.get("rows") or 0), int(document.get("labelled_rows") or 0))


if __name__ == "__main__":
    sys.exit(main())
