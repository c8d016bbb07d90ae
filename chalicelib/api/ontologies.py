"""Ontology routes: OWL in Turtle per project."""
from chalice import Blueprint

from chalicelib.api.http import query_params, request_body, user_route
from chalicelib.services.access import project_in_body, project_in_query, reads, record_in_path, writes
from chalicelib.wiring import services

bp = Blueprint(__name__)
ONTOLOGY = record_in_path("ontology", "ontology_id")


@user_route(bp, "/api/ontologies", methods=("GET",), access=reads(project_in_query()))
def list_ontologies():
    params = query_params(bp)
    return services().ontologies.list(params.get("project_id"), params.get("limit"), params.get("next_token"))


@user_route(bp, "/api/ontologies", methods=("POST",), status=201, access=writes(project_in_body()))
def create_ontology():
    return services().ontologies.create(request_body(bp))


@user_route(bp, "/api/ontologies/{ontology_id}", methods=("GET",), access=reads(ONTOLOGY))
def get_ontology(ontology_id):
    return services().ontologies.get(ontology_id)


@user_route(bp, "/api/ontologies/{ontology_id}", methods=("PUT",), access=writes(ONTOLOGY))
def update_ontology(ontology_id):
    return services().ontologies.update(ontology_id, request_body(bp))


@user_route(bp, "/api/ontologies/{ontology_id}", methods=("DELETE",), status=204, access=writes(ONTOLOGY))
def delete_ontology(ontology_id):
    services().ontologies.delete(ontology_id)
