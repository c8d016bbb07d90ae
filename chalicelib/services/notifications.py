"""WebSocket notifications: subscriptions over the socket, and fan-out of model events.

Clients connect with a bearer token (`?token=` or an Authorization header), then send
{"action": "subscribe" | "unsubscribe", "project_id": ...} or {..., "model_id": ...}.
A subscription is accepted only to what the connection's caller may read (the access
guard decides; a foreign or unknown model look alike), at most MAX_SUBSCRIPTIONS per
connection, and it lapses when the caller's token expires. Events go only to the
subscribers of the event's project or model. A connection found gone on send is
removed. Notifying never raises: a failure to notify must not fail the API call that
caused it.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.websocket import ConnectionPoster, ConnectionStore, topic
from chalicelib.auth.principal import Principal
from chalicelib.errors import UpstreamUnavailable
from chalicelib.records import MlModel, ModelJob, TrainingRun
from chalicelib.services.common import utc_now

log = logging.getLogger("ml_models.notifications")
MAX_MESSAGE = 4096
MAX_KEY = 200
MAX_SUBSCRIPTIONS = 50


class Notifier:
    def __init__(self, store: ConnectionStore, poster: ConnectionPoster, clock: Callable[[], str] = utc_now,
                 access: Any = None) -> None:
        self.store = store
        self.poster = poster
        self.clock = clock
        # The access guard (services/access.py): which projects and models a caller may read.
        self.access = access

    # ---- events ----------------------------------------------------------------------

    def model_status_changed(self, model: MlModel, previous_status: str | None, run_id: str = "") -> None:
        self.publish(model.project_id, model.id, {
            "event": "model.status_changed", "model_id": model.id, "project_id": model.project_id,
            "status": model.status, "previous_status": previous_status,
            "run_id": run_id or model.training_task_id, "at": self.clock(),
        })

    def model_deleted(self, model: MlModel) -> None:
        self.publish(model.project_id, model.id, {
            "event": "model.deleted", "model_id": model.id, "project_id": model.project_id,
            "status": "deleted", "previous_status": model.status, "run_id": model.training_task_id,
            "at": self.clock(),
        })

    def model_version_promoted(self, model: MlModel, previous_version: int | None) -> None:
        self.publish(model.project_id, model.id, {
            "event": "model.version_promoted", "model_id": model.id, "project_id": model.project_id,
            "version": model.version, "previous_version": previous_version,
            "model_artifact_path": model.model_artifact_path, "status": model.status, "at": self.clock(),
        })

    def training_progress(self, model: MlModel, run_id: str, progress: dict[str, Any]) -> None:
        self.publish(model.project_id, model.id, {
            "event": "training.progress", "model_id": model.id, "run_id": run_id, **progress,
        })

    def training_cancelled(self, run: TrainingRun) -> None:
        self.publish(run.project_id, run.model_id, {
            "event": "training.cancelled", "model_id": run.model_id, "project_id": run.project_id,
            "run_id": run.run_id, "status": run.status, "at": self.clock(),
        })

    def job_status_changed(self, job: ModelJob, previous_status: str | None) -> None:
        """`<kind>.status_changed` (prediction.status_changed, evaluation.status_changed)."""
        self.publish(job.project_id, job.model_id, {
            "event": f"{job.kind}.status_changed", "model_id": job.model_id, "project_id": job.project_id,
            f"{job.kind}_id": job.id, "status": job.status, "previous_status": previous_status,
            "rows": job.result.get("rows"), "at": self.clock(),
        })

    def publish(self, project_id: str, model_id: str, event: dict[str, Any]) -> int:
        """Send `event` to every subscriber of the project or model; returns how many got it."""
        if not self.poster.endpoint_url:
            return 0
        delivered = 0
        try:
            for connection_id in self.store.subscribers([topic("project", project_id), topic("model", model_id)]):
                delivered += self._send(connection_id, event)
        except Exception:  # noqa: BLE001 — never fail the API call over a notification
            log.exception("notify_failed", extra={"model_id": model_id})
        return delivered

    def _send(self, connection_id: str, event: dict[str, Any]) -> int:
        try:
            if self.poster.post(connection_id, event):
                return 1
            self.store.remove_connection(connection_id)
            log.info("connection_gone", extra={"connection_id": connection_id})
        except Exception:  # noqa: BLE001 — one bad connection must not stop the fan-out
            log.exception("post_failed", extra={"connection_id": connection_id})
        return 0

    # ---- the socket's own messages -----------------------------------------------------

    def connect(self, connection_id: str, principal: Principal) -> None:
        self.store.add_connection(connection_id, principal.to_dict(), not_after=principal.expires_at)

    def disconnect(self, connection_id: str) -> None:
        try:
            self.store.remove_connection(connection_id)
        except UpstreamUnavailable:  # the records expire with the connection's TTL anyway
            log.warning("disconnect_cleanup_failed", extra={"connection_id": connection_id})

    def handle_message(self, connection_id: str, body: str | None, reply_endpoint: str | None = None) -> None:
        """Act on a client message and answer it on the same connection (never raises over an outage:
        the client is told to retry, or, if even the reply cannot be sent, the failure is logged)."""
        try:
            reply = self._answer(connection_id, body)
        except UpstreamUnavailable as exc:
            log.warning("message_failed", extra={"connection_id": connection_id, "reason": exc.message})
            reply = error(exc.message)
        try:
            if not self.poster.post(connection_id, reply, endpoint_url=reply_endpoint):
                self.store.remove_connection(connection_id)
        except UpstreamUnavailable as exc:
            log.warning("reply_failed", extra={"connection_id": connection_id, "reason": exc.message})

    def _answer(self, connection_id: str, body: str | None) -> dict[str, Any]:
        if not body or len(body) > MAX_MESSAGE:
            return error(f"a message must be a JSON object of at most {MAX_MESSAGE} bytes")
        try:
            message = json.loads(body)
        except ValueError:
            return error("a message must be valid JSON")
        if not isinstance(message, dict):
            return error("a message must be a JSON object")
        action = message.get("action")
        if action not in ("subscribe", "unsubscribe"):
            return error("action must be 'subscribe' or 'unsubscribe'", field="action")
        targets = [(kind, message.get(f"{kind}_id")) for kind in ("project", "model") if f"{kind}_id" in message]
        if len(targets) != 1:
            return error("give exactly one of project_id or model_id", field="project_id")
        kind, key = targets[0]
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            return error(f"{kind}_id must be a non-empty string", field=f"{kind}_id")
        if action == "unsubscribe":
            self.store.unsubscribe(connection_id, kind, key)
            return {"event": "unsubscribed", f"{kind}_id": key}
        return self._subscribe(connection_id, kind, key)

    def _subscribe(self, connection_id: str, kind: str, key: str) -> dict[str, Any]:
        connection = self.store.connection(connection_id)
        if connection is None or connection[0] is None:
            return error("this connection is not signed in; reconnect with a token")
        principal, expires_at = Principal.from_dict(connection[0]), connection[1]
        refusal = self._refusal(principal, kind, key)
        if refusal is not None:
            return refusal
        if self.store.subscription_count(connection_id) >= MAX_SUBSCRIPTIONS:
            return error(f"a connection may hold at most {MAX_SUBSCRIPTIONS} subscriptions", field=f"{kind}_id")
        self.store.subscribe(connection_id, kind, key, expires_at=expires_at)
        return {"event": "subscribed", f"{kind}_id": key}

    def _refusal(self, principal: Principal, kind: str, key: str) -> dict[str, Any] | None:
        """An error event unless the caller may read the project or model (None: allowed)."""
        if kind == "project":
            if not principal.can_read(key):
                return error(f"you may not read project '{key}'", field="project_id")
            return None
        if self.access is None or self.access.readable_record_project(principal, "model", key) is None:
            return error(f"model '{key}' does not exist", field="model_id")
        return None


def error(message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"event": "error", "message": message}
    if field:
        body["field"] = field
    return body


class NullNotifier:
    """Stands in where notifications are off (and in tests that do not look at them)."""

    def model_status_changed(self, model: MlModel, previous_status: str | None, run_id: str = "") -> None:
        pass

    def model_deleted(self, model: MlModel) -> None:
        pass

    def model_version_promoted(self, model: MlModel, previous_version: int | None) -> None:
        pass

    def training_progress(self, model: MlModel, run_id: str, progress: dict[str, Any]) -> None:
        pass

    def training_cancelled(self, run: TrainingRun) -> None:
        pass

    def job_status_changed(self, job: ModelJob, previous_status: str | None) -> None:
        pass
