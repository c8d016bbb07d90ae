"""WebSocket handlers (API Gateway WebSocket API): connect, message, disconnect.

app.py registers these with @app.on_ws_* (Chalice wraps app-level handlers into
Lambda entry points; blueprint-level WebSocket handlers are not). Locally,
scripts/ws_gateway.py invokes the same entry points with API Gateway-shaped events.
"""
import json
import logging

from chalice import Response

from chalicelib.errors import DomainError
from chalicelib.wiring import services

log = logging.getLogger("ml_models.websocket")


def reply_endpoint(event) -> str:
    """Where to post replies: the stage's configured endpoint, else the one the event came through."""
    return services().settings.websocket_endpoint_url or f"https://{event.domain_name}/{event.stage}"


def connect_token(event) -> str | None:
    """The caller's token: `?token=` (browsers cannot set headers on a WebSocket) or Authorization."""
    raw = event.to_dict()
    token = (raw.get("queryStringParameters") or {}).get("token")
    if token:
        return f"Bearer {token}"
    headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
    return headers.get("authorization")


def on_connect(event):
    """Accept the connection only with a valid token (401 otherwise: API Gateway refuses it)."""
    graph = services()
    try:
        principal = graph.authenticator.authenticate(connect_token(event))
    except DomainError as exc:
        log.info(json.dumps({"event": "ws_connect_refused", "status": exc.status, "reason": exc.message}))
        return Response(body=exc.to_body(), status_code=exc.status, headers={"Content-Type": "application/json"})
    graph.notifier.connect(event.connection_id, principal)
    return None


def on_message(event) -> None:
    services().notifier.handle_message(event.connection_id, event.body, reply_endpoint(event))


def on_disconnect(event) -> None:
    services().notifier.disconnect(event.connection_id)
