"""Routes of the ML Models contract (list, create, get, update, delete)."""
from chalice import Blueprint

from chalicelib.api.http import query_params, request_body, user_route
from chalicelib.services.access import project_in_body, project_in_query, reads, record_in_path, writes
from chalicelib.wiring import services

bp = Blueprint(__name__)
MODEL = record_in_path("model", "model_id")


@user_route(bp, "/api/ml-models", methods=("GET",), access=reads(project_in_query()))
def list_models():
    params = query_params(bp)
    return services().models.list(params.get("project_id"), params.get("limit"), params.get("next_token"))


@user_route(bp, "/api/ml-models", methods=("POST",), status=201, access=writes(project_in_body()))
def create_model():
    return services().models.create(request_body(bp))


@user_route(bp, "/api/ml-models/{model_id}", methods=("GET",), access=reads(MODEL))
def get_model(model_id):
    return services().models.get(model_id)


@user_route(bp, "/api/ml-models/{model_id}", methods=("PUT",), access=writes(MODEL))
def update_model(model_id):
    return services().models.update(model_id, request_body(bp))


@user_route(bp, "/api/ml-models/{model_id}", methods=("DELETE",), status=204, access=writes(MODEL))
def delete_model(model_id):
    services().models.delete(model_id)
