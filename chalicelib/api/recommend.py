"""Route of the recommender: which model type to train for a project's ontology and data."""
from chalice import Blueprint

from chalicelib.api.http import request_body, user_route
from chalicelib.wiring import services

bp = Blueprint(__name__)


@user_route(bp, "/api/ml-models/recommend", methods=("POST",))
def recommend_model_type():
    return services().recommend.recommend(request_body(bp))
