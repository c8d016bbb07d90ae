"""The ML Models control plane: a Chalice app. It wires blueprints; the logic lives in chalicelib."""
from chalice import Chalice, Rate

from chalicelib.api import (
    evaluations,
    ml_models,
    ontologies,
    predictions,
    recommend,
    reconcile,
    storage_configs,
    training,
    versions,
    websocket,
)
from chalicelib.api.http import guard_request
from chalicelib.config import MAX_BODY_BYTES, check_lambda_environment
from chalicelib.observability import configure_logging

check_lambda_environment()  # a deployed stage without a token issuer fails its cold start, loudly
configure_logging()  # before Chalice(): its own logger then writes the same JSON lines

app = Chalice(app_name="ml-models")
app.debug = False  # error bodies never carry tracebacks; they are logged instead
app.experimental_feature_flags.update(["WEBSOCKETS"])

app.register_blueprint(ml_models.bp)
app.register_blueprint(recommend.bp)
app.register_blueprint(ontologies.bp)
app.register_blueprint(storage_configs.bp)
app.register_blueprint(training.bp)
app.register_blueprint(versions.bp)
app.register_blueprint(predictions.bp)
app.register_blueprint(evaluations.bp)


@app.middleware("http")
def json_errors_and_limits(event, get_response):
    return guard_request(event, get_response, MAX_BODY_BYTES)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def reconcile_runs(event):
    return reconcile.on_schedule(event.context)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def start_due_evaluations(event):
    return evaluations.on_schedule(event.context)


@app.on_ws_connect()
def ws_connect(event):
    return websocket.on_connect(event)


@app.on_ws_message()
def ws_message(event):
    websocket.on_message(event)


@app.on_ws_disconnect()
def ws_disconnect(event):
    websocket.on_disconnect(event)
