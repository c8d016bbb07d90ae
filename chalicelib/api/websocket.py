"""WebSocket handlers (API Gateway WebSocket API): connect, message, disconnect.

app.py registers these with @app.on_ws_* (Chalice wraps app-level handlers into
Lambda entry points; blueprint-level WebSocket handlers are not). Locally,
scripts/ws_gateway.py invokes the same entry points with API Gateway-shaped events.
"""
from chalicelib.wiring import services


def reply_endpoint(event) -> str:
    """Where to post replies: the stage's configured endpoint, else the one the event came through."""
    return services().settings.websocket_endpoint_url or f"https://{event.domain_name}/{event.stage}"


def on_connect(event) -> None:
    services().notifier.connect(event.connection_id)


def on_message(event) -> None:
    services().notifier.handle_message(event.connection_id, event.body, reply_endpoint(event))


def on_disconnect(event) -> None:
    services().notifier.disconnect(event.connection_id)
