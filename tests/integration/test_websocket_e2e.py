"""Listening for completion over a real WebSocket, on the local stack (gateway + chalice local + trainer)."""
from __future__ import annotations

import json
import threading
import uuid

import pytest
from stack_samples import ONTOLOGY

pytestmark = pytest.mark.integration



class Listener:
    """A WebSocket client in a thread, collecting every event it receives."""

    def __init__(self, url: str, subscribe: dict, token: str, expect: str = "subscribed") -> None:
        from websockets.sync.client import connect

        self.socket = connect(f"{url}?token={token}")
        self.socket.send(json.dumps({"action": "subscribe", **subscribe}))
        self.ack = json.loads(self.socket.recv(timeout=10))
        assert self.ack["event"] == expect, self.ack
        self.events: list[dict] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.socket:
                event = json.loads(message)
                self.events.append(event)
                if event.get("event") == "model.status_changed" and event["status"] in ("trained", "failed"):
                    self.done.set()
        except Exception:  # noqa: BLE001 — closed at the end of the test
            pass

    def close(self) -> None:
        self.socket.close()
        self.thread.join(5)


def test_subscriber_hears_training_progress_then_trained_and_others_hear_nothing(stack):
    http = stack.http
    project, other_project = f"proj-{uuid.uuid4().hex[:8]}", f"proj-{uuid.uuid4().hex[:8]}"
    _, onto = http.post("/api/ontologies", {"project_id": project, "name": "S", "content": ONTOLOGY})
    _, model = http.post("/api/ml-models", {
        "project_id": project, "ontology_id": onto["id"], "name": "nn", "type": "neural_network",
        "training_config": {"max_iterations": 5, "early_stopping_rounds": 50, "random_seed": 1}})
    listener = Listener(stack.ws_url, {"project_id": project}, stack.tokens.mint({project: "viewer"}))
    bystander = Listener(stack.ws_url, {"project_id": other_project}, stack.tokens.mint({other_project: "editor"}))
    try:
        status, accepted = http.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": []})
        assert status == 202, accepted
        assert listener.done.wait(180), listener.events
        http.wait_for_status(model["id"], ("trained", "failed"))
    finally:
        listener.close()
        bystander.close()
    kinds = [(e["event"], e.get("status")) for e in listener.events]
    assert kinds[0] == ("model.status_changed", "training"), kinds
    assert kinds[-1] == ("model.status_changed", "trained"), kinds
    progress = [e for e in listener.events if e["event"] == "training.progress"]
    assert progress, kinds
    assert all(e["model_id"] == model["id"] and e["run_id"] == accepted["training_task_id"] for e in progress)
    assert [e["epoch"] for e in progress] == sorted(e["epoch"] for e in progress)
    assert kinds[1:-1] == [("training.progress", None)] * len(progress)
    assert bystander.events == []


def test_malformed_message_gets_an_error_reply(stack):
    from websockets.sync.client import connect

    with connect(f"{stack.ws_url}?token={stack.tokens.mint({'p': 'viewer'})}") as socket:
        socket.send("not json")
        reply = json.loads(socket.recv(timeout=10))
        assert reply["event"] == "error" and "JSON" in reply["message"]
        socket.send(json.dumps({"action": "subscribe", "project_id": "p"}))
        assert json.loads(socket.recv(timeout=10)) == {"event": "subscribed", "project_id": "p"}


def test_connecting_without_a_valid_token_is_refused(stack):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for url in (stack.ws_url, f"{stack.ws_url}?token=forged",
                f"{stack.ws_url}?token={stack.tokens.mint({'p': 'viewer'}, ttl_seconds=-300)}"):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=10)
        assert refused.value.response.status_code == 401
