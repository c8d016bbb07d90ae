"""Evaluation routes: evaluate a version on fresh data (and the job's callbacks); the monitoring schedule."""
from chalice import Blueprint

from chalicelib.api.http import callback_route, query_params, request_body, user_route
from chalicelib.api.training import stage_url
from chalicelib.services.access import reads, record_in_path, writes
from chalicelib.wiring import services

bp = Blueprint(__name__)
MODEL = record_in_path("model", "model_id")
JOB = "/api/ml-models/{model_id}/evaluations/{evaluation_id}"


@user_route(bp, "/api/ml-models/{model_id}/evaluations", methods=("POST",), status=202, access=writes(MODEL))
def create_evaluation(model_id):
    return services().evaluations.create(model_id, request_body(bp), stage_url(bp.current_request.context))


@user_route(bp, "/api/ml-models/{model_id}/evaluations", methods=("GET",), access=reads(MODEL))
def list_evaluations(model_id):
    params = query_params(bp)
    return services().evaluations.list(model_id, params.get("limit"), params.get("next_token"))


@user_route(bp, JOB, methods=("GET",), access=reads(MODEL))
def get_evaluation(model_id, evaluation_id):
    return services().evaluations.get(model_id, evaluation_id)


@user_route(bp, JOB + "/cancel", methods=("POST",), status=202, access=writes(MODEL))
def cancel_evaluation(model_id, evaluation_id):
    return services().evaluations.cancel(model_id, evaluation_id, request_body(bp))


@callback_route(bp, JOB + "/progress")
def evaluation_progress(model_id, evaluation_id):
    return services().evaluations.progress(model_id, evaluation_id,
                                           bp.current_request.headers.get("authorization"), request_body(bp))


@callback_route(bp, JOB + "/complete")
def evaluation_complete(model_id, evaluation_id):
    return services().evaluations.complete(model_id, evaluation_id,
                                           bp.current_request.headers.get("authorization"), request_body(bp))


@callback_route(bp, JOB + "/credentials")
def evaluation_credentials(model_id, evaluation_id):
    return services().evaluations.refresh_credentials(model_id, evaluation_id,
                                                bp.current_request.headers.get("authorization"), request_body(bp))


@callback_route(bp, JOB + "/fail")
def evaluation_fail(model_id, evaluation_id):
    return services().evaluations.fail(model_id, evaluation_id,
                                       bp.current_request.headers.get("authorization"), request_body(bp))


def on_schedule(context) -> dict:
    """The monitoring schedule (every minute): start the evaluations that are due."""
    return services().monitoring.start_due()
