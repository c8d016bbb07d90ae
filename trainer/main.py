"""`python -m trainer`: a thin main() around the pure steps.

settings -> spec -> data (S3 parts streamed, or synthetic) -> train_streamed / train_and_evaluate -> files + manifest
-> upload -> complete callback. Any failure, and SIGTERM, ends in exactly one fail
report and a non-zero exit code. A run the control plane has ended (cancelled, superseded)
publishes nothing: the trainer asks right before it writes (`PublishGate`).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from trainer.callback import CallbackClient, Interval, ProgressThrottle, PublishGate, Reporter
from trainer.config import Settings, partial_identity
from trainer.errors import RunEnded, TrainingFailed
from trainer.logs import configure, get_logger

EXIT_FAILED = 1
EXIT_BAD_ENVIRONMENT = 2
EXIT_SIGTERM = 143
SIGTERM_REPORT_ATTEMPTS = 3
CANCELLED_REASON = "cancelled: terminated by SIGTERM"

log = get_logger("main")


def main() -> int:
    from trainer.memory import return_large_buffers

    return_large_buffers()
    configure(partial_identity())
    try:
        settings = Settings.from_env()
    except TrainingFailed as exc:
        log.error("cannot start", extra={"reason": exc.reason})
        return EXIT_BAD_ENVIRONMENT
    client = CallbackClient(
        settings.callback_url,
        settings.model_id,
        settings.run_id,
        settings.callback_token,
        attempts=settings.callback_retries,
        backoff=settings.callback_backoff,
        timeout=settings.callback_timeout,
    )
    reporter = Reporter(client)
    progress = ProgressThrottle(client, settings.progress_interval)
    gate = PublishGate(client, progress)
    _report_fail_on_sigterm(reporter, gate)
    try:
        artifact_uri, result = run(settings, progress, gate, TrialProgress(client, settings.progress_interval))
    except RunEnded as exc:  # cancelled or superseded: the API ended the run and refuses any report
        log.warning("run ended by the control plane; stopping without publishing", extra={"reason": exc.reason})
        return EXIT_FAILED
    except TrainingFailed as exc:
        reason = exc.reason
        log.error("training failed", extra={"reason": reason})
    except Exception as exc:  # a bug or an unexpected environment: still report it
        # The message may name files and internals: the traceback goes to the trainer's log only.
        reason = f"internal error in the trainer ({type(exc).__name__}); its log has the details"
        log.exception("training crashed")
    else:
        if reporter.complete(artifact_uri, *callback_metrics(result, artifact_uri)):
            log.info("training completed", extra={"artifact": artifact_uri})
            return 0
        reason = f"artifact {artifact_uri} was written but the complete callback was not accepted"
    reporter.fail(reason)
    return EXIT_FAILED


def run(settings: Settings, on_epoch, gate: PublishGate, on_trial=None) -> tuple[str, object]:
    """Everything between the environment and the final report; returns (artifact URI, TrainingResult).
    `on_epoch` hears of the final fit's epochs, `on_trial` of a tuned run's search trials.

    Before writing anything, and again right before the manifest, `gate` asks the control plane whether the
    run is still current (a cancelled or failed run publishes nothing: RunEnded)."""
    from trainer.artifacts import ArtifactLocation, build_manifest, ensure_version_is_free, upload
    from trainer.credentials import aws_session
    from trainer.ontology import choose_target, parse_columns
    from trainer.spec import parse_spec
    from trainer.storage import list_storage_objects, read_spec, s3_client

    s3 = s3_client(settings.endpoint_url, aws_session(settings))
    spec = parse_spec(settings.spec_json if settings.spec_json is not None else read_spec(s3, settings.spec_uri))
    for field, expected in (("model_id", settings.model_id), ("run_id", settings.run_id)):
        if getattr(spec, field) and getattr(spec, field) != expected:
            raise TrainingFailed(
                f"spec {field} {getattr(spec, field)!r} does not match TRAINER_{field.upper()} {expected!r}"
            )
    spec = _with_identity(spec, settings)
    location = ArtifactLocation.for_version(
        settings.artifact_bucket, settings.artifact_prefix, spec.model_id, spec.version
    )
    ensure_version_is_free(s3, location)
    columns = parse_columns(spec.ontology_ttl)
    target = choose_target(columns, spec.config.target_column)
    if spec.storage:
        objects = list_storage_objects(s3, spec.storage)  # no data fails here, before the imports below
        from trainer.pipeline import train_streamed as train  # pandas and scikit-learn load once there is data
        from trainer.stream import PartStream, s3_fetch

        source = PartStream(objects, wanted=[c.name for c in columns], target=target.name, fetch=s3_fetch(s3),
                            cache_bytes=settings.cache_bytes)
        log.info("data listed", extra={"objects": len(source.objects), "model_type": spec.model_type})
    else:
        from trainer.pipeline import train_and_evaluate as train
        from trainer.synthetic import synthetic_frame

        source = synthetic_frame(columns, target, spec.config.synthetic_rows, spec.config.random_seed)
        log.info("data ready", extra={"rows": len(source), "synthetic": True, "model_type": spec.model_type})
    seed_global_generators(spec.model_type, settings.torch_threads, spec.config.random_seed)
    result = train(source, spec.ontology_ttl, spec.model_type, spec.config, on_epoch=on_epoch, on_trial=on_trial,
                   fit_sample_rows=settings.fit_sample_rows or None)
    if spec.storage:  # the parts' row counts are known once the stream has been read
        data = {"synthetic": False, "objects": source.lineage(), "rows": source.total_rows}
    else:
        data = {"synthetic": True, "objects": [], "rows": len(source), "generator": "trainer.synthetic.synthetic_frame"}
    data["ontology_id"] = spec.ontology_id
    files = result.model.files()
    manifest = build_manifest(spec, result, files, location, data)
    gate.check()
    upload(s3, location, files, manifest, guard=gate.publishing)
    log.info("artifact written", extra={"artifact": location.uri, "files": sorted(files)})
    return location.uri, result


def callback_metrics(result, artifact_uri: str) -> tuple[dict, dict]:
    """(performance_metrics, training_metrics) for the API record, small enough for it (a thinned learning
    curve, at most RECORD_CLASSES classes of the confusion matrix); the manifest keeps them whole."""
    from trainer.artifacts import MANIFEST
    from trainer.metrics import record_metrics

    training = result.training_metrics
    if isinstance(training.get("tuning"), dict):  # a long search: its trials thinned for the record
        from trainer.tuning import record_tuning

        training = {**training, "tuning": record_tuning(training["tuning"])}
    return record_metrics(result.performance_metrics, training, artifact_uri + MANIFEST)


class TrialProgress:
    """An on_trial hook (`trainer.tuning.TrialHook`): a search trial as a progress report `{"tuning": {...}}`
    (trial, trials_done, max_trials, budget_seconds, state, score, best_score, metric, elapsed_seconds), at
    most one per `interval` seconds; best effort, like the epochs'."""

    def __init__(self, client: CallbackClient, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.interval = client, Interval(interval, clock)

    def __call__(self, trial: dict) -> None:
        if self.interval.due():
            self.client.post_progress({"tuning": trial})


def _with_identity(spec, settings: Settings):
    from dataclasses import replace

    return replace(spec, model_id=settings.model_id, run_id=settings.run_id)


def seed_global_generators(model_type: str, threads: int, seed: int) -> None:
    """numpy's global generator for every type; torch (a ~2 s import) is imported and set up only for the
    network, the one type that uses it (`configure_torch`)."""
    import numpy as np

    np.random.seed(seed)  # for any library that still draws from the global generator
    if model_type == "neural_network":
        configure_torch(threads, seed)


def configure_torch(threads: int, seed: int) -> None:
    """Deterministic kernels, a bounded thread pool (more threads than cores only thrash) and torch's seed."""
    import torch

    from trainer.models import default_jobs

    # Deterministic cuBLAS needs a fixed workspace; it must be set before CUDA initialises.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads or default_jobs())
    torch.manual_seed(seed)


def _raise_terminated(signum, frame) -> None:
    raise TrainingFailed("terminated by SIGTERM before training finished")


def _report_fail_on_sigterm(reporter: Reporter, gate: PublishGate) -> None:
    """Block SIGTERM in every thread and wait for it in one: works even while the main thread is in C code.

    SIGTERM is how a run is cancelled (its Job deleted, or the local process terminated): from then on
    nothing is published (`gate.shut()`; a manifest already being written is finished first)."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: the handler runs between bytecodes of the main thread
        signal.signal(signal.SIGTERM, _raise_terminated)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        signal.sigwait({signal.SIGTERM})
        log.error("SIGTERM received; publishing nothing, reporting failure")
        gate.shut()
        reporter.fail(f"{CANCELLED_REASON} (the run was cancelled, or its pod deleted, evicted or timed out) "
                      "before training finished", attempts=SIGTERM_REPORT_ATTEMPTS)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0 if reporter.outcome == "completed" else EXIT_SIGTERM)

    threading.Thread(target=wait, name="sigterm", daemon=True).start()
