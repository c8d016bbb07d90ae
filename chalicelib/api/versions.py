"""Version routes: a model's trained versions, and promoting one to current (rollback)."""
from chalice import Blueprint

from chalicelib.api.http import query_params, user_route
from chalicelib.services.access import reads, record_in_path, writes
from chalicelib.wiring import services

bp = Blueprint(__name__)
MODEL = record_in_path("model", "model_id")


@user_route(bp, "/api/ml-models/{model_id}/versions", methods=("GET",), access=reads(MODEL))
def list_versions(model_id):
    params = query_params(bp)
    return services().versions.list(model_id, params.get("limit"), params.get("next_token"))


@user_route(bp, "/api/ml-models/{model_id}/versions/{version}/promote", methods=("POST",), access=writes(MODEL))
def promote_version(model_id, version):
    return services().versions.promote(model_id, version)
