"""Training routes: start a run, read runs, and the trainer's callbacks (token-authenticated)."""
from chalice import Blueprint

from chalicelib.api.http import callback_route, query_params, request_body, user_route
from chalicelib.services.access import reads, record_in_body, record_in_path, writes
from chalicelib.wiring import services

bp = Blueprint(__name__)
MODEL = record_in_path("model", "model_id")
RUN_HEADER = "x-training-run-id"


def stage_url(context: dict | None) -> str:
    """https://<domain>/<stage> of the API Gateway stage a request came through ('' locally)."""
    context = context or {}
    domain, stage = context.get("domainName"), context.get("stage")
    return f"https://{domain}/{stage}" if domain and stage else ""


@user_route(bp, "/api/ml-models/train", methods=("POST",), status=202,
            access=writes(record_in_body("model", "model_id")))
def train_model():
    return services().training.start(request_body(bp), stage_url(bp.current_request.context))


@user_route(bp, "/api/ml-models/{model_id}/runs", methods=("GET",), access=reads(MODEL))
def list_runs(model_id):
    params = query_params(bp)
    return services().training.list_runs(model_id, params.get("limit"), params.get("next_token"))


@user_route(bp, "/api/ml-models/{model_id}/runs/{run_id}", methods=("GET",), access=reads(MODEL))
def get_run(model_id, run_id):
    return services().training.get_run(model_id, run_id)


@user_route(bp, "/api/ml-models/{model_id}/training/cancel", methods=("POST",), status=202, access=writes(MODEL))
def cancel_training(model_id):
    return services().training.cancel(model_id, request_body(bp))


@callback_route(bp, "/api/ml-models/{model_id}/training/complete")
def training_complete(model_id):
    headers = bp.current_request.headers
    return services().training.complete(model_id, headers.get("authorization"), headers.get(RUN_HEADER),
                                        request_body(bp))


@callback_route(bp, "/api/ml-models/{model_id}/training/fail")
def training_fail(model_id):
    headers = bp.current_request.headers
    return services().training.fail(model_id, headers.get("authorization"), headers.get(RUN_HEADER),
                                    request_body(bp))


@callback_route(bp, "/api/ml-models/{model_id}/training/progress")
def training_progress(model_id):
    headers = bp.current_request.headers
    return services().training.progress(model_id, headers.get("authorization"), headers.get(RUN_HEADER),
                                        request_body(bp))


@callback_route(bp, "/api/ml-models/{model_id}/training/credentials")
def training_credentials(model_id):
    headers = bp.current_request.headers
    return services().training.refresh_credentials(model_id, headers.get("authorization"), headers.get(RUN_HEADER),
                                                   request_body(bp))
