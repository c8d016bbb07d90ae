"""Route of the recommender: which model type to train for a project's ontology and data."""
from chalice import Blueprint

from chalicelib.api.http import request_body, user_route
from chalicelib.services.access import project_in_body, writes
from chalicelib.wiring import services

bp = Blueprint(__name__)


# Editors only: a recommendation is recorded (model creation reads it for is_recommended).
@user_route(bp, "/api/ml-models/recommend", methods=("POST",), access=writes(project_in_body()))
def recommend_model_type():
    return services().recommend.recommend(request_body(bp))
