"""Routes of the ML Models contract (list, create, get, update, delete)."""
from chalice import Blueprint

from chalicelib.api.http import query_params, request_body, user_route
from chalicelib.wiring import services

bp = Blueprint(__name__)


@user_route(bp, "/api/ml-models", methods=("GET",))
def list_models():
    params = query_params(bp)
    return services().models.list(params.get("project_id"), params.get("limit"), params.get("next_token"))


@user_route(bp, "/api/ml-models", methods=("POST",), status=201)
def create_model():
    return services().models.create(request_body(bp))


@user_route(bp, "/api/ml-models/{model_id}", methods=("GET",))
def get_model(model_id):
    return services().models.get(model_id)


@user_route(bp, "/api/ml-models/{model_id}", methods=("PUT",))
def update_model(model_id):
    return services().models.update(model_id, request_body(bp))


@user_route(bp, "/api/ml-models/{model_id}", methods=("DELETE",), status=204)
def delete_model(model_id):
    services().models.delete(model_id)
