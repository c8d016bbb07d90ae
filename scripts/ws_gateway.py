"""A local stand-in for the API Gateway WebSocket API, because `chalice local` serves none.

    python -m scripts.ws_gateway --port 8081 --management-port 8082

- Clients connect to ws://localhost:8081. Connect, each message, and disconnect are
  handed to the app's own Lambda entry points (app.ws_connect / ws_message /
  ws_disconnect) as API Gateway-shaped events.
- The app posts to connections through the API Gateway Management API; this
  gateway serves that API (POST/GET/DELETE /@connections/{id}) on the management
  port, so the app's code and boto3 client are the same as in AWS
  (WEBSOCKET_ENDPOINT_URL=http://127.0.0.1:8082). Unknown ids answer 410 GoneException.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("ws_gateway")


class Gateway:
    def __init__(self, host: str, port: int, management_port: int) -> None:
        self.host, self.port, self.management_port = host, port, management_port
        self.connections: dict[str, object] = {}
        self.accepted: dict[int, str] = {}  # handshakes $connect accepted → their connection id
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---- the app's handlers ----------------------------------------------------------

    def _event(self, route: str, connection_id: str, body: str | None = None, request=None) -> dict:
        kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
        event = {"requestContext": {"routeKey": route, "eventType": kind, "connectionId": connection_id,
                                    "domainName": f"{self.host}:{self.port}", "stage": "local", "apiId": "local"},
                 "isBase64Encoded": False}
        if body is not None:
            event["body"] = body
        if request is not None:  # $connect carries the handshake's query string and headers, as in AWS
            query = parse_qs(urlsplit(request.path).query)
            event["queryStringParameters"] = {k: v[-1] for k, v in query.items()} or None
            event["headers"] = {k: v for k, v in request.headers.raw_items()}
        return event

    async def _invoke(self, handler, event: dict) -> int:
        try:
            result = await asyncio.to_thread(handler, event, None)
        except Exception:  # noqa: BLE001 — API Gateway answers 500 and keeps the gateway up
            log.exception("handler failed for %s", event["requestContext"]["routeKey"])
            return 500
        return int((result or {}).get("statusCode", 200))

    async def check_handshake(self, connection, request):
        """$connect runs before the handshake completes: a refusal is an HTTP error, as in API Gateway."""
        import app as lambda_entry_points

        connection_id = uuid.uuid4().hex
        status = await self._invoke(lambda_entry_points.ws_connect,
                                    self._event("$connect", connection_id, request=request))
        if status != 200:
            return connection.respond(HTTPStatus(status), "connection refused\n")
        self.accepted[id(connection)] = connection_id
        return None

    async def serve_client(self, websocket) -> None:
        import app as lambda_entry_points

        connection_id = self.accepted.pop(id(websocket), None)
        if connection_id is None:
            await websocket.close(code=1008, reason="connect refused")
            return
        self.connections[connection_id] = websocket
        try:
            async for message in websocket:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                await self._invoke(lambda_entry_points.ws_message, self._event("$default", connection_id, text))
        except Exception:  # noqa: BLE001 — a dropped client is a disconnect
            pass
        finally:
            self.connections.pop(connection_id, None)
            await self._invoke(lambda_entry_points.ws_disconnect, self._event("$disconnect", connection_id))

    # ---- the management API the app posts to --------------------------------------------

    def post(self, connection_id: str, data: bytes) -> bool:
        websocket = self.connections.get(connection_id)
        if websocket is None or self.loop is None:
            return False
        future = asyncio.run_coroutine_threadsafe(websocket.send(data.decode("utf-8")), self.loop)
        try:
            future.result(timeout=10)
        except Exception:  # noqa: BLE001 — the socket closed meanwhile
            return False
        return True

    def disconnect(self, connection_id: str) -> bool:
        websocket = self.connections.get(connection_id)
        if websocket is None or self.loop is None:
            return False
        asyncio.run_coroutine_threadsafe(websocket.close(), self.loop)
        return True

    def management_server(self) -> ThreadingHTTPServer:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _connection_id(self) -> str | None:
                prefix = "/@connections/"
                return unquote(self.path[len(prefix):]) if self.path.startswith(prefix) else None

            def _answer(self, status: int, body: dict | None = None) -> None:
                payload = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 410:
                    self.send_header("x-amzn-ErrorType", "GoneException")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):  # noqa: N802 (stdlib name)
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                cid = self._connection_id()
                if cid is not None and gateway.post(cid, data):
                    self._answer(200)
                else:
                    self._answer(410, {"__type": "GoneException", "message": f"connection {cid} is gone"})

            def do_GET(self):  # noqa: N802
                cid = self._connection_id()
                if cid in gateway.connections:
                    self._answer(200, {"connectedAt": "", "identity": {"sourceIp": "127.0.0.1"}})
                else:
                    self._answer(410, {"__type": "GoneException", "message": f"connection {cid} is gone"})

            def do_DELETE(self):  # noqa: N802
                cid = self._connection_id()
                self._answer(204 if cid and gateway.disconnect(cid) else 410)

            def log_message(self, *args) -> None:
                pass

        return ThreadingHTTPServer((self.host, self.management_port), Handler)

    async def run(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.server import serve

        self.loop = asyncio.get_running_loop()
        management = self.management_server()
        threading.Thread(target=management.serve_forever, daemon=True).start()
        try:
            async with serve(self.serve_client, self.host, self.port, process_request=self.check_handshake):
                log.info("WebSocket gateway on ws://%s:%d (management API on :%d)", self.host, self.port,
                         self.management_port)
                await stop.wait()
        finally:
            management.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local API Gateway WebSocket stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("WS_PORT", 8081)))
    parser.add_argument("--management-port", type=int, default=int(os.environ.get("WS_MANAGEMENT_PORT", 8082)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Gateway(args.host, args.port, args.management_port).run(stop)

    asyncio.run(runner())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
