"""Evaluations: a trained version scored on fresh data, and the model's status set by what it measured.

`POST /api/ml-models/{id}/evaluations` (or the monitoring schedule, services/monitoring.py) submits a Job
of the trainer image that runs `python -m trainer.evaluate` (services/model_jobs.py has the machinery).
It scores the data with the training test set's metrics when the data is labelled, and compares each
feature's distribution with the reference the training run kept (population stability index), then
writes `report.json` under `s3://<artifact bucket>/evaluations/<model_id>/<job_id>/`.

The verdict is the server's, from that report and the model's `monitoring` thresholds (defaults
otherwise): the primary metric (`monitoring.metric`, else accuracy for classification, r2 for
regression) dropped by more than `max_drop` from the version's test score → degraded; without labels,
a feature among the most important (MAX_TOP_FEATURES) drifting above `max_psi` → degraded. For the
model's current version, degraded moves a `trained` model to `degraded` (the evidence in
`metadata.degraded_reason`), and a verdict within bounds moves a `degraded` model back to `trained`,
whoever set it (a user's own PUT to `degraded` stays until then).
"""
from __future__ import annotations

import logging
import math
from typing import Any

from chalicelib.records import MlModel, ModelJob
from chalicelib.services import validation as v
from chalicelib.services.ml_models import current_version
from chalicelib.services.model_jobs import ModelJobService
from chalicelib.services.versions import EVALUATIONS_PREFIX

log = logging.getLogger("ml_models.evaluations")

MAX_TOP_FEATURES = 5
MAX_REPORTED_FEATURES = 200
MAX_METRICS = 50
# Metrics where lower is better: their drop is the rise.
LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "log_loss", "mean_absolute_error", "mean_squared_error",
                             "root_mean_squared_error"})
VERDICTS = ("within_bounds", "degraded")


def _numbers(value: Any, limit: int) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    found = {k: float(x) for k, x in value.items() if isinstance(k, str) and isinstance(x, (int, float))
             and not isinstance(x, bool) and math.isfinite(x)}
    return dict(list(found.items())[:limit])


def _importance(value: Any) -> list[str]:
    """Feature names, most important first, from a report's feature_importance (a mapping or a list)."""
    if isinstance(value, dict):
        pairs = [(k, x) for k, x in value.items() if isinstance(x, (int, float)) and not isinstance(x, bool)]
    elif isinstance(value, list):
        pairs = []
        for entry in value:
            if isinstance(entry, dict):
                name = entry.get("feature") or entry.get("name")
                score = entry.get("importance", entry.get("mean", entry.get("value")))
                if isinstance(name, str) and isinstance(score, (int, float)) and not isinstance(score, bool):
                    pairs.append((name, score))
    else:
        pairs = []
    return [name for name, _ in sorted(pairs, key=lambda p: -abs(p[1]))]


def primary_metric(settings: dict[str, Any], baseline: dict[str, float]) -> str | None:
    chosen = settings.get("metric")
    if chosen:
        return chosen
    for name in ("accuracy", "r2"):
        if name in baseline:
            return name
    return next(iter(baseline), None)


def verdict(report: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """What an evaluation's report says against the thresholds: the job's result (records.ModelJob.result)."""
    settings = {**v.MONITORING_DEFAULTS, **settings}
    metrics = _numbers(report.get("metrics"), MAX_METRICS)
    baseline = _numbers(report.get("baseline_metrics"), MAX_METRICS)
    psi = {k: round(x, 6) for k, x in _numbers(report.get("psi"), MAX_REPORTED_FEATURES).items()}
    metric = primary_metric(settings, baseline)
    drop = None
    if metric and metric in metrics and metric in baseline:
        drop = metrics[metric] - baseline[metric] if metric in LOWER_IS_BETTER else baseline[metric] - metrics[metric]
        drop = round(drop, 6)
    ranked = _importance(report.get("feature_importance"))
    top = ranked[:MAX_TOP_FEATURES] if ranked else list(psi)
    drifted = sorted((k for k, x in psi.items() if x > settings["max_psi"]), key=lambda k: -psi[k])
    reasons = []
    if drop is not None and drop > settings["max_drop"]:
        reasons.append(f"{metric} dropped by {drop:.4g} (from {baseline[metric]:.4g} to {metrics[metric]:.4g}; "
                       f"max_drop {settings['max_drop']:g})")
    drifted_top = [k for k in drifted if k in top]
    if drop is None and drifted_top:
        reasons.append(f"features among the most important drifted: {', '.join(drifted_top)} (PSI "
                       f"{', '.join(f'{psi[k]:.3g}' for k in drifted_top)}; max_psi {settings['max_psi']:g})")
    if reasons and drifted:  # the evidence names the drifting features too
        reasons.append(f"drifted features: {', '.join(f'{k} (PSI {psi[k]:.3g})' for k in drifted[:10])}")
    prediction_psi = report.get("prediction_psi")
    return {
        "rows": report.get("rows") if isinstance(report.get("rows"), int) else None,
        "labelled_rows": report.get("labelled_rows") if isinstance(report.get("labelled_rows"), int) else None,
        "metrics": metrics, "baseline_metrics": baseline, "primary_metric": metric, "drop": drop, "psi": psi,
        "prediction_psi": round(prediction_psi, 6) if isinstance(prediction_psi, (int, float))
        and not isinstance(prediction_psi, bool) and math.isfinite(prediction_psi) else None,
        "drifted_features": drifted, "verdict": "degraded" if reasons else "within_bounds",
        "reason": "; ".join(reasons), "thresholds": {k: settings[k] for k in ("max_drop", "max_psi")},
    }


class EvaluationService(ModelJobService):
    KIND = "evaluation"
    LAUNCH_KIND = "evaluate"
    ID_PREFIX = "eval"
    OUTPUT_PREFIX = EVALUATIONS_PREFIX
    DONE = "report.json"
    LIST_KEY = "evaluations"

    def result_of(self, job: ModelJob, done: dict[str, Any]) -> dict[str, Any]:
        return verdict(done, self.models.get(job.model_id).monitoring)

    def after_success(self, job: ModelJob) -> None:
        """The verdict on the model, if the job evaluated its current version."""
        result = job.result
        previous: dict[str, str] = {}

        def judge(model: MlModel) -> MlModel:
            previous["status"] = model.status
            if current_version(model) != job.version:
                return model
            metadata = dict(model.metadata)
            if result.get("verdict") == "degraded" and model.status == "trained":
                metadata["degraded_reason"] = {"evaluation_id": job.id, "reason": result.get("reason"),
                                               "primary_metric": result.get("primary_metric"),
                                               "drop": result.get("drop"),
                                               "drifted_features": result.get("drifted_features", [])[:10]}
                return model.but(status="degraded", metadata=metadata, updated_at=self.clock())
            if result.get("verdict") == "within_bounds" and model.status == "degraded":
                metadata.pop("degraded_reason", None)
                return model.but(status="trained", metadata=metadata, updated_at=self.clock())
            return model

        saved = self.models.modify(job.model_id, judge)
        if saved.status != previous.get("status"):
            log.info("evaluation_verdict", extra={"model_id": job.model_id, "evaluation_id": job.id,
                                                  "status": saved.status, "reason": result.get("reason")})
            self.notifier.model_status_changed(saved, previous_status=previous.get("status"))

    def view_fields(self, job: ModelJob) -> dict[str, Any]:
        keys = ("rows", "labelled_rows", "metrics", "baseline_metrics", "primary_metric", "drop", "psi",
                "prediction_psi", "drifted_features", "verdict", "reason", "thresholds")
        return {k: job.result.get(k) for k in keys}
