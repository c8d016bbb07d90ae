"""The routes every kind of job that uses a trained version has (services/model_jobs.py): create, list,
read and cancel (user routes), and the job's own progress, complete, fail and credentials callbacks."""
from collections.abc import Callable
from typing import Any

from chalicelib.api.http import callback_route, query_params, request_body, user_route
from chalicelib.api.training import stage_url
from chalicelib.services.access import reads, record_in_path, writes

MODEL = record_in_path("model", "model_id")
CALLBACKS = ("progress", "complete", "fail", "credentials")


def job_routes(bp: Any, collection: str, kind: str, service: Callable[[], Any]) -> None:
    """Register `/api/ml-models/{model_id}/<collection>[/{<kind>_id}[/...]]` on `bp`, served by `service()`."""
    base = f"/api/ml-models/{{model_id}}/{collection}"
    job = f"{base}/{{{kind}_id}}"

    def named(name: str, view: Callable) -> Callable:
        view.__name__ = view.__qualname__ = name  # Chalice names each Lambda handler after its view
        return view

    def create(model_id):
        return service().create(model_id, request_body(bp), stage_url(bp.current_request.context))

    def listing(model_id):
        params = query_params(bp)
        return service().list(model_id, params.get("limit"), params.get("next_token"))

    def read(model_id, **ids):
        return service().get(model_id, ids[f"{kind}_id"])

    def cancel(model_id, **ids):
        return service().cancel(model_id, ids[f"{kind}_id"], request_body(bp))

    user_route(bp, base, methods=("POST",), status=202, access=writes(MODEL))(named(f"create_{kind}", create))
    user_route(bp, base, methods=("GET",), access=reads(MODEL))(named(f"list_{collection}", listing))
    user_route(bp, job, methods=("GET",), access=reads(MODEL))(named(f"get_{kind}", read))
    user_route(bp, job + "/cancel", methods=("POST",), status=202, access=writes(MODEL))(
        named(f"cancel_{kind}", cancel))
    for action in CALLBACKS:
        callback_route(bp, f"{job}/{action}")(named(f"{kind}_{action}", _callback(bp, kind, action, service)))


def _callback(bp: Any, kind: str, action: str, service: Callable[[], Any]) -> Callable:
    method = "refresh_credentials" if action == "credentials" else action

    def view(model_id, **ids):
        return getattr(service(), method)(model_id, ids[f"{kind}_id"], bp.current_request.headers.get("authorization"),
                                          request_body(bp))

    return view
