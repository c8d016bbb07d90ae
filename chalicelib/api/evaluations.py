"""Evaluation routes: evaluate a version on fresh data (and the job's callbacks); the monitoring schedule."""
from chalice import Blueprint

from chalicelib.api.jobs import job_routes
from chalicelib.wiring import services

bp = Blueprint(__name__)
job_routes(bp, "evaluations", "evaluation", lambda: services().evaluations)


def on_schedule(context) -> dict:
    """The monitoring schedule (every minute): start the evaluations that are due."""
    return services().monitoring.start_due()
