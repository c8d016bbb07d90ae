"""Prediction routes: batch prediction jobs (and their callbacks), and online predictions."""
from chalice import Blueprint

from chalicelib.api.http import callback_route, query_params, request_body, user_route
from chalicelib.api.training import stage_url
from chalicelib.services.access import reads, record_in_path, writes
from chalicelib.wiring import services

bp = Blueprint(__name__)
MODEL = record_in_path("model", "model_id")
JOB = "/api/ml-models/{model_id}/predictions/{prediction_id}"


@user_route(bp, "/api/ml-models/{model_id}/predictions", methods=("POST",), status=202, access=writes(MODEL))
def create_prediction(model_id):
    return services().predictions.create(model_id, request_body(bp), stage_url(bp.current_request.context))


@user_route(bp, "/api/ml-models/{model_id}/predictions", methods=("GET",), access=reads(MODEL))
def list_predictions(model_id):
    params = query_params(bp)
    return services().predictions.list(model_id, params.get("limit"), params.get("next_token"))


@user_route(bp, JOB, methods=("GET",), access=reads(MODEL))
def get_prediction(model_id, prediction_id):
    return services().predictions.get(model_id, prediction_id)


@user_route(bp, JOB + "/cancel", methods=("POST",), status=202, access=writes(MODEL))
def cancel_prediction(model_id, prediction_id):
    return services().predictions.cancel(model_id, prediction_id, request_body(bp))


@user_route(bp, "/api/ml-models/{model_id}/predict", methods=("POST",), access=reads(MODEL))
def predict(model_id):
    return services().online_predictions.predict(model_id, request_body(bp))


@callback_route(bp, JOB + "/progress")
def prediction_progress(model_id, prediction_id):
    return services().predictions.progress(model_id, prediction_id,
                                           bp.current_request.headers.get("authorization"), request_body(bp))


@callback_route(bp, JOB + "/complete")
def prediction_complete(model_id, prediction_id):
    return services().predictions.complete(model_id, prediction_id,
                                           bp.current_request.headers.get("authorization"), request_body(bp))


@callback_route(bp, JOB + "/credentials")
def prediction_credentials(model_id, prediction_id):
    return services().predictions.refresh_credentials(model_id, prediction_id,
                                                bp.current_request.headers.get("authorization"), request_body(bp))


@callback_route(bp, JOB + "/fail")
def prediction_fail(model_id, prediction_id):
    return services().predictions.fail(model_id, prediction_id,
                                       bp.current_request.headers.get("authorization"), request_body(bp))
