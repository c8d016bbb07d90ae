"""Logs and metrics: one JSON log format with the request id on every line, and run counts in CloudWatch.

`configure_logging()` (app.py calls it once, before Chalice builds its own logger) gives the
service's loggers one handler with Powertools for AWS Lambda's JSON formatter: Chalice's own
`ml-models` logger (it reports unhandled exceptions there) and `ml_models`, the parent of every
`logging.getLogger("ml_models.<part>")` in chalicelib. Services keep using the standard library
(`log.info("training_submitted", extra={"model_id": ..., "run_id": ...})`) and never import
Powertools.

`bind_request()` puts the request id (and the model/run ids a request names) on every line logged
while one request is handled. The keys live in a context variable, so the threads of the local
server never mix two requests, and each new request starts from none.

Metrics: services record through a `RunMetrics` (ports-style Protocol); `EmfRunMetrics` writes each
count as a CloudWatch Embedded Metric Format line on stdout (in Lambda, CloudWatch Logs turns it
into a metric; no API call, nothing to flush), `NullRunMetrics` drops them, and tests observe a
recording twin (tests/fakes/metrics.py).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import IO, Any, Protocol

SERVICE = "ml-models"  # the Chalice app name: Chalice's own logger has this name
LOGGER = "ml_models"  # the parent of chalicelib's loggers
NAMESPACE = "MlModels"

# What each way a run ends is counted as (RunSettlement.finish's outcomes).
RUN_OUTCOME_METRICS = {"succeeded": "RunsSucceeded", "failed": "RunsFailed", "cancelled": "RunsCancelled",
                       "not_submitted": "RunsNotSubmitted"}

_logger: Any = None


def configure_logging(stream: IO[str] | None = None) -> Any:
    """The service's JSON logging, set up once (a later call only redirects it to `stream`)."""
    global _logger
    if _logger is None:
        from aws_lambda_powertools.logging import Logger

        # Level: POWERTOOLS_LOG_LEVEL (or LOG_LEVEL), INFO by default; Powertools reads it itself.
        _logger = Logger(service=SERVICE, stream=stream)
        ours = logging.getLogger(LOGGER)
        ours.handlers = [_logger.registered_handler]
        ours.setLevel(_logger.log_level)
        # In Lambda the root logger has the runtime's plain-text handler: a line goes out once, as JSON.
        ours.propagate = False
    elif stream is not None:
        _logger.registered_handler.setStream(stream)
    return _logger


def request_id(request_context: Mapping[str, Any] | None, lambda_context: Any = None) -> str:
    """API Gateway's request id (what it returns as x-amzn-RequestId), else the Lambda invocation's,
    else a fresh one."""
    found = (request_context or {}).get("requestId") or getattr(lambda_context, "aws_request_id", None)
    if found:
        return str(found)
    import uuid  # rarely needed (both ids are there in Lambda and under `chalice local`); ~1.5 ms to import

    return uuid.uuid4().hex


def bind_request(request_context: Mapping[str, Any] | None, lambda_context: Any = None,
                 **ids: str | None) -> str:
    """Start a request's log context: its id, and the model/run ids it names (None: not named).
    Returns the request id."""
    rid = request_id(request_context, lambda_context)
    logger = configure_logging()
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(request_id=rid, **{k: v for k, v in ids.items() if v})
    return rid


def bind(**ids: str) -> None:
    """Add ids learnt while handling a request (a run id once it is allocated) to its log context.
    A no-op until logging is configured (service unit tests), so services never set it up."""
    if _logger is not None:
        _logger.thread_safe_append_keys(**ids)


class RunMetrics(Protocol):
    def run_accepted(self, model_id: str, run_id: str) -> None: ...

    def run_ended(self, outcome: str, model_id: str, run_id: str) -> None: ...

    def callback_rejected(self, action: str, status: int, model_id: str, run_id: str | None) -> None: ...


class NullRunMetrics:
    def run_accepted(self, model_id: str, run_id: str) -> None:
        pass

    def run_ended(self, outcome: str, model_id: str, run_id: str) -> None:
        pass

    def callback_rejected(self, action: str, status: int, model_id: str, run_id: str | None) -> None:
        pass


class EmfRunMetrics:
    """Counts as CloudWatch Embedded Metric Format lines (Powertools' `single_metric`).

    Dimensions stay few (service, stage, and the status of a rejected callback) so the number of
    metric series stays fixed; model and run ids go in as EMF metadata, searchable in Logs Insights
    without becoming dimensions.
    """

    def __init__(self, stage: str, namespace: str = NAMESPACE, service: str = SERVICE) -> None:
        self.namespace = namespace
        self.dimensions = {"service": service, "stage": stage}

    def run_accepted(self, model_id: str, run_id: str) -> None:
        self._count("RunsAccepted", {}, model_id=model_id, run_id=run_id)

    def run_ended(self, outcome: str, model_id: str, run_id: str) -> None:
        self._count(RUN_OUTCOME_METRICS[outcome], {}, model_id=model_id, run_id=run_id)

    def callback_rejected(self, action: str, status: int, model_id: str, run_id: str | None) -> None:
        self._count("CallbackRejections", {"status": str(status)}, action=action, model_id=model_id,
                    run_id=run_id or "")

    def _count(self, name: str, dimensions: dict[str, str], **metadata: str) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        try:
            with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=self.namespace,
                               default_dimensions={**self.dimensions, **dimensions}) as metric:
                for key, value in metadata.items():
                    metric.add_metadata(key=key, value=value)
        except Exception:  # a metric must never fail the request that counts it
            logging.getLogger("ml_models.metrics").exception("metric_not_written", extra={"metric": name})
