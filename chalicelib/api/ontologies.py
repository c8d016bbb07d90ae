"""Ontology routes: OWL in Turtle per project."""
from chalice import Blueprint

from chalicelib.api.http import query_params, request_body, user_route
from chalicelib.wiring import services

bp = Blueprint(__name__)


@user_route(bp, "/api/ontologies", methods=("GET",))
def list_ontologies():
    params = query_params(bp)
    return services().ontologies.list(params.get("project_id"), params.get("limit"), params.get("next_token"))


@user_route(bp, "/api/ontologies", methods=("POST",), status=201)
def create_ontology():
    return services().ontologies.create(request_body(bp))


@user_route(bp, "/api/ontologies/{ontology_id}", methods=("GET",))
def get_ontology(ontology_id):
    return services().ontologies.get(ontology_id)


@user_route(bp, "/api/ontologies/{ontology_id}", methods=("PUT",))
def update_ontology(ontology_id):
    return services().ontologies.update(ontology_id, request_body(bp))


@user_route(bp, "/api/ontologies/{ontology_id}", methods=("DELETE",), status=204)
def delete_ontology(ontology_id):
    services().ontologies.delete(ontology_id)
