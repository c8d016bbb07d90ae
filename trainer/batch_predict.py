"""`python -m trainer.batch_predict`: a trained model version applied to a whole dataset.

settings -> start report -> spec -> model (`trainer.loader`) -> every input object's columns checked
-> per object: a local copy, batches of rows, predictions, rolling part files -> `_SUCCESS` -> complete
report. Memory holds one batch (TRAINER_PREDICT_BATCH_ROWS rows) and its predictions at a time, whatever
the input's size. Any failure ends in one fail report and exit code 1; SIGTERM in a fail report and 143,
and no `_SUCCESS`; an answer that the job has ended (409) stops it without writing or reporting anything
more. trainer/README.md ("Batch predictions") describes the contract.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import partial_identity
from trainer.errors import RunEnded, TrainingFailed
from trainer.logs import configure, get_logger
from trainer.main import CANCELLED_REASON, EXIT_BAD_ENVIRONMENT, EXIT_FAILED, EXIT_SIGTERM, SIGTERM_REPORT_ATTEMPTS
from trainer.predict_callback import PredictionCallbackClient, PredictionReporter, RowProgress
from trainer.predict_spec import PredictionSettings

log = get_logger("predict")


@dataclass(frozen=True)
class Outcome:
    output_uri: str
    rows: int
    error_rows: int


class CommitGate:
    """Held while `_SUCCESS` is written; SIGTERM takes it for good (a commit under way finishes first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        with self._lock:
            yield

    def shut(self) -> None:
        self._lock.acquire()  # never released: the process exits


@dataclass(frozen=True)
class JobKind:
    """What tells one job that uses a trained version from another, for `job_main`."""

    noun: str  # in log lines and reasons: "batch prediction", "evaluation"
    what: str  # in the SIGTERM reason: "the prediction job"
    scratch_prefix: str
    client: type  # its callback client (PredictionCallbackClient or a subclass)
    reporter: type  # its final-report guard (PredictionReporter or a subclass)
    run: Callable[[PredictionSettings, RowProgress, CommitGate, Path], Any]
    complete: Callable[[Any, Any], bool]  # (reporter, outcome): the complete report accepted
    done: Callable[[Any], tuple[str, dict]]  # outcome: (what it committed, for a reason; log fields)
    log: logging.Logger


def job_main(kind: JobKind) -> int:
    """A job's whole life: environment, SIGTERM handling, `kind.run`, then exactly one final report (complete,
    or fail with a reason; a traceback only in the log) and its exit code."""
    configure(partial_identity())
    try:
        settings = PredictionSettings.from_env()
    except TrainingFailed as exc:
        kind.log.error("cannot start", extra={"reason": exc.reason})
        return EXIT_BAD_ENVIRONMENT
    base = settings.base
    client = kind.client(base.callback_url, base.model_id, base.run_id, base.callback_token,
                         attempts=base.callback_retries, backoff=base.callback_backoff,
                         timeout=base.callback_timeout)
    reporter = kind.reporter(client)
    gate = CommitGate()
    scratch = Path(tempfile.mkdtemp(prefix=kind.scratch_prefix))
    _report_fail_on_sigterm(reporter, gate, scratch, what=kind.what)
    try:
        outcome = kind.run(settings, RowProgress(client, base.progress_interval), gate, scratch)
    except RunEnded as exc:  # cancelled or ended by the control plane: it refuses any report
        kind.log.warning(f"{kind.noun} ended by the control plane; stopping without writing or reporting anything",
                         extra={"reason": exc.reason})
        return EXIT_FAILED
    except TrainingFailed as exc:
        reason = exc.reason
        kind.log.error(f"{kind.noun} failed", extra={"reason": reason})
    except Exception as exc:  # a bug or an unexpected environment: still report it, without the traceback
        reason = f"internal error in the {kind.noun} job ({type(exc).__name__}); its log has the details"
        kind.log.exception(f"{kind.noun} crashed")
    else:
        committed, fields = kind.done(outcome)
        if kind.complete(reporter, outcome):
            kind.log.info(f"{kind.noun} completed", extra=fields)
            return 0
        reason = f"{committed} but the complete callback was not accepted"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    reporter.fail(reason)
    return EXIT_FAILED


def main() -> int:
    return job_main(JobKind(
        noun="batch prediction", what="the prediction job", scratch_prefix="batch-predict-",
        client=PredictionCallbackClient, reporter=PredictionReporter, run=run,
        complete=lambda reporter, outcome: reporter.complete(outcome.rows, outcome.error_rows),
        done=lambda outcome: (f"the output {outcome.output_uri} was committed",
                              {"output": outcome.output_uri, "rows": outcome.rows, "error_rows": outcome.error_rows}),
        log=log))


def run(settings: PredictionSettings, progress: RowProgress, gate: CommitGate, scratch: Path) -> Outcome:
    """Everything between the environment and the final report. Nothing is written under the output prefix
    before every input object's columns have been checked; `_SUCCESS` is written last, inside `gate`."""
    from trainer.credentials import aws_session
    from trainer.predict_input import check_columns, list_inputs, probe
    from trainer.predict_output import PartWriter, commit, committed, success_document
    from trainer.predict_rows import output_layout
    from trainer.predict_spec import parse_prediction_spec
    from trainer.storage import read_spec, s3_client

    base = settings.base
    progress.check()  # the start report ({"rows": 0}); a job the control plane has ended goes no further
    s3 = s3_client(base.endpoint_url, aws_session(base))
    spec = parse_prediction_spec(base.spec_json if base.spec_json is not None else read_spec(s3, base.spec_uri), base)
    earlier = committed(s3, spec)
    if earlier is not None:
        return _already_committed(spec, earlier)
    model = load_version(s3, spec, base.torch_threads)
    passthrough = list(spec.passthrough_columns)
    objects = [probe(s3, obj) for obj in list_inputs(s3, spec.inputs)]
    check_columns(objects, model.feature_names, passthrough)
    layout = output_layout(model, passthrough, objects)
    log.info("inputs checked", extra={"objects": len(objects), "columns": layout.columns,
                                      "batch_rows": settings.batch_rows})
    writer = PartWriter(s3, spec, layout.schema, settings.batch_rows, scratch)
    rows = error_rows = 0
    lineage = []
    for item in objects:
        counted, errors = _predict_object(s3, item, model, layout, writer, passthrough, settings.batch_rows,
                                          progress, scratch)
        lineage.append({"uri": item.source.uri, "etag": item.source.etag, "size": item.source.size, "rows": counted})
        rows, error_rows = rows + counted, error_rows + errors
    parts = writer.close()
    progress.check()  # a job cancelled meanwhile commits nothing
    commit(s3, spec, success_document(spec, layout.columns, rows, error_rows, parts, lineage), gate.committing)
    log.info("output committed", extra={"output": spec.output_uri, "parts": len(parts), "rows": rows})
    return Outcome(spec.output_uri, rows, error_rows)


def _predict_object(s3, item, model, layout, writer, passthrough: list[str], batch_rows: int, progress: RowProgress,
                    scratch: Path) -> tuple[int, int]:
    """(rows, rows with unparseable values) of one input object, its output appended to `writer`."""
    from trainer.predict_input import download, read_batches
    from trainer.predict_rows import predict_batch

    if item.source.size == 0:
        return 0, 0
    path = download(s3, item.source, scratch)
    rows = errors = 0
    try:
        for batch in read_batches(path, item.source, model.feature_names, passthrough, batch_rows):
            table, failed = predict_batch(model, batch, layout)
            writer.write(table)
            rows, errors = rows + len(batch), errors + failed
            progress.advance(len(batch))
    finally:
        path.unlink(missing_ok=True)
    log.info("input predicted", extra={"uri": item.source.uri, "rows": rows, "error_rows": errors})
    return rows, errors


def load_version(s3, spec, torch_threads: int):
    """The version's `LoadedModel` (its own loader), refused unless its manifest names the spec's model and version."""
    from trainer.errors import ArtifactError
    from trainer.loader import load_model
    from trainer.storage import _error_code

    try:
        model = load_model(spec.artifact_uri, s3)
    except ArtifactError as exc:
        cause = exc.__cause__
        problem = str(exc)
        if cause is not None and _error_code(cause):  # an S3 error: its code, not botocore's whole message
            problem = problem.split(f": {type(cause).__name__}", 1)[0] + f" ({_error_code(cause)})"
        raise TrainingFailed(f"cannot load model version {spec.artifact_uri}: {problem}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainingFailed(f"cannot load model version {spec.artifact_uri}: its manifest is malformed "
                             f"({type(exc).__name__})") from None
    named = (model.manifest.get("model_id"), model.manifest.get("version"))
    if named != (spec.model_id, spec.version):
        raise TrainingFailed(f"the artifact at {spec.artifact_uri} is version {named[1]!r} of model {named[0]!r}, "
                             f"not version {spec.version} of {spec.model_id!r}")
    if model.manifest.get("model_type") == "neural_network":
        import torch

        from trainer.models import default_jobs

        torch.set_num_threads(torch_threads or default_jobs())
    log.info("model loaded", extra={"artifact": spec.artifact_uri, "model_type": model.manifest.get("model_type"),
                                    "task": model.task})
    return model


def _already_committed(spec, document: dict) -> Outcome:
    """An earlier attempt of this job committed its output: report it rather than redo (or overwrite) it."""
    named = {key: document.get(key) for key in ("prediction_id", "model_id", "version")}
    if named != {"prediction_id": spec.prediction_id, "model_id": spec.model_id, "version": spec.version}:
        raise TrainingFailed(f"{spec.output_uri}_SUCCESS already exists and belongs to another job ({named}); "
                             "not overwritten")
    log.warning("the output was already committed by an earlier attempt; reporting it",
                extra={"output": spec.output_uri})
    return Outcome(spec.output_uri, int(document.get("rows") or 0), int(document.get("error_rows") or 0))


def _report_fail_on_sigterm(reporter: PredictionReporter, gate: CommitGate, scratch: Path,
                            what: str = "the prediction job") -> None:
    """SIGTERM is blocked in every thread and waited for in one (as `trainer.main` does for training): it
    shuts the commit gate, reports the failure and exits 143, even while the main thread is in C code.
    Shared by the jobs that use a trained version (`what` names the job in the reason)."""
    reason = f"{CANCELLED_REASON} ({what} was cancelled, or its pod deleted, evicted or timed out)"
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: the handler runs between bytecodes of the main thread
        def stop(signum, frame):
            raise TrainingFailed(reason)

        signal.signal(signal.SIGTERM, stop)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        signal.sigwait({signal.SIGTERM})
        log.error("SIGTERM received; committing nothing, reporting failure")
        gate.shut()
        reporter.fail(reason, attempts=SIGTERM_REPORT_ATTEMPTS)
        shutil.rmtree(scratch, ignore_errors=True)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0 if reporter.outcome == "completed" else EXIT_SIGTERM)

    threading.Thread(target=wait, name="sigterm", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
