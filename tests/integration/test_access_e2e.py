"""Who may do what, on the real local stack (issuer, chalice local, WebSocket gateway, trainer processes):
a viewer and an editor of one project and an editor of another, each doing what it may and refused
what it may not, and a subscriber of the other project hearing nothing of the first."""
from __future__ import annotations

import json
import threading
import uuid

import pytest
from stack_samples import ONTOLOGY

pytestmark = pytest.mark.integration


class Subscriber:
    def __init__(self, url: str, token: str, project_id: str) -> None:
        from websockets.sync.client import connect

        self.socket = connect(f"{url}?token={token}")
        self.socket.send(json.dumps({"action": "subscribe", "project_id": project_id}))
        self.ack = json.loads(self.socket.recv(timeout=10))
        self.events: list[dict] = []
        self.trained = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for message in self.socket:
                event = json.loads(message)
                self.events.append(event)
                if event.get("status") in ("trained", "failed"):
                    self.trained.set()
        except Exception:  # noqa: BLE001 — closed at the end of the test
            pass


def test_viewer_editor_and_outsider_each_get_what_their_role_allows(stack):
    mine, theirs = f"proj-{uuid.uuid4().hex[:8]}", f"proj-{uuid.uuid4().hex[:8]}"
    editor = stack.as_caller({mine: "editor"})
    viewer = stack.as_caller({mine: "viewer"})
    outsider = stack.as_caller({theirs: "editor"})
    anonymous = stack.http.as_caller(None)

    # The editor builds the project; the outsider builds its own.
    status, onto = editor.post("/api/ontologies", {"project_id": mine, "name": "S", "content": ONTOLOGY})
    assert status == 201, onto
    status, model = editor.post("/api/ml-models", {"project_id": mine, "ontology_id": onto["id"], "name": "m",
                                                   "type": "decision_tree"})
    assert status == 201, model
    assert outsider.post("/api/ontologies", {"project_id": theirs, "name": "T", "content": ONTOLOGY})[0] == 201

    # Nobody without a token gets anything.
    status, body = anonymous.get(f"/api/ml-models?project_id={mine}")
    assert status == 401 and body["code"] == "unauthorized"

    # The viewer reads, and is refused every write.
    assert viewer.get(f"/api/ml-models?project_id={mine}")[1]["models"][0]["id"] == model["id"]
    assert viewer.get(f"/api/ml-models/{model['id']}")[0] == 200
    assert viewer.put(f"/api/ml-models/{model['id']}", {"description": "mine now"})[0] == 403
    assert viewer.post("/api/ml-models/train", {"model_id": model["id"]})[0] == 403
    assert viewer.delete(f"/api/ml-models/{model['id']}")[0] == 403
    assert viewer.post("/api/ml-models", {"project_id": mine, "ontology_id": onto["id"], "name": "x",
                                          "type": "regression"})[0] == 403

    # The outsider cannot see the project, nor learn that its records exist.
    assert outsider.get(f"/api/ml-models?project_id={mine}")[0] == 403
    foreign = outsider.get(f"/api/ml-models/{model['id']}")
    unknown = outsider.get("/api/ml-models/model-does-not-exist")
    assert foreign[0] == unknown[0] == 404
    assert foreign[1]["message"].replace(model["id"], "X") == unknown[1]["message"].replace("model-does-not-exist", "X")
    assert outsider.put(f"/api/ml-models/{model['id']}", {"name": "stolen"})[0] == 404
    assert outsider.post("/api/ml-models/train", {"model_id": model["id"]})[0] == 404
    assert outsider.get(f"/api/ontologies/{onto['id']}")[0] == 404
    assert outsider.post("/api/ml-models/recommend", {"project_id": mine, "ontology_id": onto["id"]})[0] == 403

    # A subscriber of the other project hears nothing of this one; the viewer hears it train.
    listening = Subscriber(stack.ws_url, stack.tokens.mint({mine: "viewer"}), mine)
    bystander = Subscriber(stack.ws_url, stack.tokens.mint({theirs: "editor"}), theirs)
    snooper = Subscriber(stack.ws_url, stack.tokens.mint({theirs: "editor"}), mine)
    assert listening.ack["event"] == bystander.ack["event"] == "subscribed"
    assert snooper.ack["event"] == "error"
    try:
        status, accepted = editor.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": []})
        assert status == 202, accepted
        assert listening.trained.wait(180), listening.events
        assert editor.wait_for_status(model["id"], ("trained", "failed"))["status"] == "trained"
    finally:
        for socket in (listening, bystander, snooper):
            socket.socket.close()
    assert any(e.get("status") == "trained" for e in listening.events)
    assert bystander.events == [] and snooper.events == []
    _, after = editor.get(f"/api/ml-models/{model['id']}")
    assert after["name"] == "m" and after["description"] == ""
