"""Prediction routes: batch prediction jobs (and their callbacks), and online predictions."""
from chalice import Blueprint

from chalicelib.api.http import request_body, user_route
from chalicelib.api.jobs import MODEL, job_routes
from chalicelib.services.access import reads
from chalicelib.wiring import services

bp = Blueprint(__name__)
job_routes(bp, "predictions", "prediction", lambda: services().predictions)


@user_route(bp, "/api/ml-models/{model_id}/predict", methods=("POST",), access=reads(MODEL))
def predict(model_id):
    return services().online_predictions.predict(model_id, request_body(bp))
