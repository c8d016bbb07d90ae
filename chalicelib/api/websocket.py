"""WebSocket handlers (API Gateway WebSocket API): connect, message, disconnect.

app.py registers these with @app.on_ws_* (Chalice wraps app-level handlers into
Lambda entry points; blueprint-level WebSocket handlers are not). Locally,
scripts/ws_gateway.py invokes the same entry points with API Gateway-shaped events.
"""
import logging

from chalicelib.api.http import error_response, with_request_id
from chalicelib.errors import DomainError
from chalicelib.observability import bind_request
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


def bind_event(event) -> str:
    """The WebSocket event's request id (and connection) on every line logged while it is handled."""
    return bind_request(event.to_dict().get("requestContext"), getattr(event, "context", None),
                        connection_id=event.connection_id)


def on_connect(event):
    """Accept the connection only with a valid token (401 otherwise: API Gateway refuses it);
    503 with Retry-After when the connection cannot be recorded (DynamoDB unavailable)."""
    rid = bind_event(event)
    graph = services()
    try:
        principal = graph.authenticator.authenticate(connect_token(event))
        graph.notifier.connect(event.connection_id, principal)
    except DomainError as exc:
        log.info("ws_connect_refused", extra={"status": exc.status, "reason": exc.message})
        return with_request_id(error_response(exc), rid)
    return None


def on_message(event) -> None:
    bind_event(event)
    services().notifier.handle_message(event.connection_id, event.body, reply_endpoint(event))


def on_disconnect(event) -> None:
    bind_event(event)
    services().notifier.disconnect(event.connection_id)
