"""Online predictions: `POST /api/ml-models/{id}/predict` answers with a version's predictions at once.

The API's Lambda holds no scikit-learn, torch or numpy. It checks the request, resolves the version
(the model's current one unless the request names one) and hands the instances to the predictor: a
separate function that runs the artifact's own loader (`trainer/predictor.py`; in AWS a Lambda from
the trainer image, infra/cloudformation/predictor.yaml; on the local stack the same handler behind a
local Lambda Invoke endpoint, scripts/local_predictor.py). The predictor checks each instance against
the version's input schema (a missing feature or a value of the wrong type is a 400 naming it) and
returns exactly what `trainer.loader` predicts.

Bounded: at most MAX_INSTANCES instances, and the request body's 1 MiB.
"""
from __future__ import annotations

import logging
from typing import Any

from chalicelib.errors import InvalidInput, UpstreamUnavailable
from chalicelib.services import validation as v
from chalicelib.services.model_jobs import version_artifact, version_number
from chalicelib.services.ports import ModelRepository, TrainingRunRepository

log = logging.getLogger("ml_models.predict")

MAX_INSTANCES = 1000


class OnlinePredictionService:
    def __init__(self, models: ModelRepository, runs: TrainingRunRepository, predictor: Any) -> None:
        self.models = models
        self.runs = runs
        # adapters/predictor.py LambdaPredictor: predict(payload) -> result; None if the stage has none.
        self.predictor = predictor

    def predict(self, model_id: str, body: Any) -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, ("instances", "version"))
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise InvalidInput("instances must be a non-empty array of objects (feature name → value)",
                               field="instances")
        if len(instances) > MAX_INSTANCES:
            raise InvalidInput(f"instances holds {len(instances)} instances; at most {MAX_INSTANCES} per request",
                               field="instances", limit=MAX_INSTANCES)
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise InvalidInput(f"instances[{index}] must be an object of feature values",
                                   field=f"instances[{index}]")
        version = version_number(body.get("version"))
        model = self.models.get(model_id)
        artifact, version = version_artifact(self.runs, model, version)
        if self.predictor is None:
            raise UpstreamUnavailable("online predictions are not configured on this stage (PREDICTOR_FUNCTION)",
                                      field="model_id")
        result = self.predictor.predict({"model_id": model.id, "version": version, "artifact_uri": artifact,
                                         "instances": instances})
        answer: dict[str, Any] = {"model_id": model.id, "version": version,
                                  "predictions": result.get("predictions", [])}
        if result.get("classes") is not None:
            answer["probabilities"] = result.get("probabilities")
            answer["classes"] = result.get("classes")
        log.info("predicted", extra={"model_id": model.id, "version": version, "instances": len(instances)})
        return answer
