"""Storage config routes: where a project's training data lives."""
from chalice import Blueprint

from chalicelib.api.http import query_params, request_body, user_route
from chalicelib.services.access import project_in_body, project_in_query, reads, record_in_path, writes
from chalicelib.wiring import services

bp = Blueprint(__name__)
STORAGE = record_in_path("storage_config", "storage_id")


@user_route(bp, "/api/storage-configs", methods=("GET",), access=reads(project_in_query()))
def list_storage_configs():
    params = query_params(bp)
    return services().storage_configs.list(params.get("project_id"), params.get("limit"), params.get("next_token"))


@user_route(bp, "/api/storage-configs", methods=("POST",), status=201, access=writes(project_in_body()))
def create_storage_config():
    return services().storage_configs.create(request_body(bp))


@user_route(bp, "/api/storage-configs/{storage_id}", methods=("GET",), access=reads(STORAGE))
def get_storage_config(storage_id):
    return services().storage_configs.get(storage_id)


@user_route(bp, "/api/storage-configs/{storage_id}", methods=("PUT",), access=writes(STORAGE))
def update_storage_config(storage_id):
    return services().storage_configs.update(storage_id, request_body(bp))


@user_route(bp, "/api/storage-configs/{storage_id}", methods=("DELETE",), status=204, access=writes(STORAGE))
def delete_storage_config(storage_id):
    services().storage_configs.delete(storage_id)
