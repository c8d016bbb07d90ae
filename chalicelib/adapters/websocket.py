"""WebSocket adapters: who is subscribed to what (DynamoDB), and posting to a connection
(the API Gateway Management API; locally, the gateway in scripts/ws_gateway.py speaks it too)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.aws_faults import unavailable
from chalicelib.adapters.dynamo import dynamo_call
from chalicelib.adapters.tables import WsConnectionTable
from chalicelib.errors import UpstreamUnavailable

# API Gateway closes a WebSocket after 2 hours at most; records outlive that a little.
CONNECTION_TTL_SECONDS = 3 * 3600


def topic(kind: str, key: str) -> str:
    return f"sub#{kind}#{key}"


class ConnectionStore:
    """Every method raises UpstreamUnavailable when DynamoDB cannot be reached (`dynamo_call`)."""

    table = WsConnectionTable

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now

    def _expiry(self, not_after: int | None = None) -> int:
        expiry = int(self.now()) + CONNECTION_TTL_SECONDS
        return min(expiry, not_after) if not_after else expiry

    @dynamo_call
    def add_connection(self, connection_id: str, principal: dict[str, Any] | None = None,
                       not_after: int | None = None) -> None:
        """Record a connection and who made it; it (and its subscriptions) expire with the token."""
        self.table(pk=f"conn#{connection_id}", sk="meta", expires_at=self._expiry(not_after),
                   principal=principal).save()

    @dynamo_call
    def connection(self, connection_id: str) -> tuple[dict[str, Any] | None, int] | None:
        """(principal, expires_at) of a live connection, or None."""
        for item in self.table.query(f"conn#{connection_id}", self.table.sk == "meta", consistent_read=True):
            if item.expires_at >= int(self.now()):
                return item.principal, int(item.expires_at)
        return None

    @dynamo_call
    def is_connected(self, connection_id: str) -> bool:
        return self.table.count(f"conn#{connection_id}", self.table.sk == "meta") > 0

    @dynamo_call
    def subscription_count(self, connection_id: str) -> int:
        return self.table.count(f"conn#{connection_id}", self.table.sk.startswith("sub#"))

    @dynamo_call
    def subscribe(self, connection_id: str, kind: str, key: str, expires_at: int | None = None) -> None:
        expiry = expires_at or self._expiry()
        with self.table.batch_write() as batch:
            batch.save(self.table(pk=topic(kind, key), sk=connection_id, expires_at=expiry))
            batch.save(self.table(pk=f"conn#{connection_id}", sk=topic(kind, key), expires_at=expiry))

    @dynamo_call
    def unsubscribe(self, connection_id: str, kind: str, key: str) -> None:
        with self.table.batch_write() as batch:
            batch.delete(self.table(pk=topic(kind, key), sk=connection_id))
            batch.delete(self.table(pk=f"conn#{connection_id}", sk=topic(kind, key)))

    @dynamo_call
    def subscriptions(self, connection_id: str) -> list[str]:
        return [item.sk for item in self.table.query(f"conn#{connection_id}", self.table.sk.startswith("sub#"))]

    @dynamo_call
    def subscribers(self, topics: list[str]) -> list[str]:
        """Connection ids subscribed to any of `topics`, each once, in a stable order."""
        now = int(self.now())
        found: dict[str, None] = {}
        for name in topics:
            for item in self.table.query(name):
                if item.expires_at >= now:  # DynamoDB's TTL deletes lazily; skip what has expired
                    found.setdefault(item.sk, None)
        return list(found)

    @dynamo_call
    def remove_connection(self, connection_id: str) -> None:
        items = list(self.table.query(f"conn#{connection_id}"))
        with self.table.batch_write() as batch:
            for item in items:
                if item.sk.startswith("sub#"):
                    batch.delete(self.table(pk=item.sk, sk=connection_id))
                batch.delete(item)


class ConnectionPoster:
    """Posts JSON to a WebSocket connection. Returns False when the connection is gone."""

    def __init__(self, client_factory: Callable[[str], Any], endpoint_url: str = "") -> None:
        self._client_factory = client_factory
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}

    def post(self, connection_id: str, payload: dict[str, Any], endpoint_url: str | None = None) -> bool:
        endpoint = endpoint_url or self.endpoint_url
        if not endpoint:
            return True  # notifications are not configured for this stage
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = self._client_factory(endpoint)
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=json.dumps(payload).encode())
        except client.exceptions.GoneException:
            return False
        except Exception as exc:
            if unavailable(exc):
                raise UpstreamUnavailable("the WebSocket gateway is temporarily unavailable; retry shortly") from exc
            raise
        return True
