"""A fake Kubernetes API server: plain HTTP on 127.0.0.1, namespaced objects in memory.

It speaks enough of the API for the official `kubernetes` client to create, read,
patch and delete namespaced objects of any kind (Jobs, Secrets, ConfigMaps, ...),
and it can be told to fail, so tests can drive a real client through the error paths.

Import it as ``from fakes.kube_api import FakeKubeApi`` (pytest puts ``tests/`` on
``sys.path`` because of ``tests/conftest.py``, as for ``samples`` and ``trainer_helpers``).

Usage::

    with FakeKubeApi() as kube:            # or the `fake_kube_api` pytest fixture
        configuration.host = kube.url      # "http://127.0.0.1:<port>"
        ...
        kube.objects("jobs", "ml-training")         # {name: object} as stored
        kube.get("secrets", "ml-training", "x")     # one object, or None
        kube.put("jobs", "ml-training", {...})      # seed an object (gets uid etc.)
        kube.requests                               # [RecordedRequest(method, path, resource,
                                                    #   namespace, name, authorization, body)]
        kube.authorizations                         # the Authorization header of each request
        kube.fail_next(500, times=2, method="POST", resource="secrets")
        kube.reset()                                # forget objects, requests and failures

Routes: ``/api/v1/namespaces/{ns}/{resource}[/{name}]`` and
``/apis/{group}/{version}/namespaces/{ns}/{resource}[/{name}]``. Objects are keyed by
(resource plural, namespace, name); the group/version is not part of the key, so
``kube.objects("jobs", ns)`` finds what ``POST /apis/batch/v1/namespaces/ns/jobs`` made.

- POST on a collection: 201 with the object plus ``metadata.uid``, ``namespace``,
  ``creationTimestamp`` and ``resourceVersion``; 409 ``AlreadyExists`` (a proper
  ``Status`` body) when the name is taken. As on a real server, a Secret's
  ``stringData`` is stored base64-encoded under ``data``.
- GET on an object: 200 or 404 ``NotFound``. GET on a collection: a ``List`` of items, only those
  matching a ``labelSelector`` of equality terms when one is given (``job-name=train-x``). Object
  status (a Job's conditions, a pod's container states) is whatever a test ``put`` there.
- PATCH on an object: a JSON merge patch (also used for strategic-merge bodies;
  lists are replaced, which is close enough for metadata patches).
- DELETE on an object: 200 with a ``Success`` Status; the delete options body
  (``propagationPolicy``, ...) is kept in ``requests``. Deletion is immediate.
- ``fail_next(status, times=1, method=None, resource=None, reason=None, message=None)``:
  the next `times` requests matching the (optional) method and resource are answered
  with `status` and a ``Status`` body (reason defaults to the one Kubernetes uses:
  401 Unauthorized, 403 Forbidden, 409 AlreadyExists, 422 Invalid, 500 InternalError, ...)
  without touching the stored objects.
- ``stall_next(seconds, times=1, method=None, resource=None)``: the next matching
  requests are answered normally, but only after `seconds` (to drive client timeouts;
  the work is still done, as a real server would).
- ``authorize``: optional callable ``(authorization_header_or_None) -> bool``; requests
  it rejects are answered 401. By default every request is accepted.
"""
from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<namespace>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?/?$"
)

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    410: "Gone",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    resource: str | None
    namespace: str | None
    name: str | None
    authorization: str | None
    body: Any


@dataclass
class _Failure:
    status: int
    times: int
    method: str | None
    resource: str | None
    reason: str | None
    message: str | None
    delay: float = 0.0

    def matches(self, method: str, resource: str | None) -> bool:
        return (self.method is None or self.method == method) and (
            self.resource is None or self.resource == resource
        )


def status_body(code: int, message: str, reason: str | None = None, details: dict | None = None) -> dict:
    """A Kubernetes `Status` object as the API server sends it with an error."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason if reason is not None else _REASONS.get(code, ""),
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _label_selector(path: str) -> dict[str, str]:
    """`?labelSelector=a=b,c=d` as {a: b, c: d} (equality terms only, which is all the client here sends)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    terms = ",".join(query.get("labelSelector", []))
    return dict(term.split("=", 1) for term in terms.split(",") if "=" in term)


def _labelled(obj: dict, selector: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


class FakeKubeApi:
    """The fake server; see the module docstring for its API."""

    def __init__(self, authorize: Callable[[str | None], bool] | None = None) -> None:
        self.authorize = authorize
        self._lock = threading.Lock()
        self._store: dict[tuple[str, str, str], dict] = {}
        self._failures: list[_Failure] = []
        self._stalls: list[_Failure] = []
        self._requests: list[RecordedRequest] = []
        self._resource_version = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------
    def start(self) -> FakeKubeApi:
        fake = self

        class Handler(_Handler):
            api = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval keeps stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-kube-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeKubeApi is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- what tests look at or arrange ----------------------------------------
    def objects(self, resource: str, namespace: str) -> dict[str, dict]:
        with self._lock:
            return {
                name: copy.deepcopy(obj)
                for (res, ns, name), obj in self._store.items()
                if res == resource and ns == namespace
            }

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        with self._lock:
            obj = self._store.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def put(self, resource: str, namespace: str, obj: dict) -> dict:
        """Store `obj` as if it had been created (overwrites); returns the stored copy."""
        with self._lock:
            stored = self._stamp(self._normalise(copy.deepcopy(obj)), namespace)
            self._store[(resource, namespace, stored["metadata"]["name"])] = stored
            return copy.deepcopy(stored)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def authorizations(self) -> list[str | None]:
        return [request.authorization for request in self.requests]

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        method: str | None = None,
        resource: str | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        with self._lock:
            self._failures.append(_Failure(status, times, method and method.upper(), resource, reason, message))

    def stall_next(
        self, seconds: float, times: int = 1, *, method: str | None = None, resource: str | None = None
    ) -> None:
        with self._lock:
            self._stalls.append(_Failure(0, times, method and method.upper(), resource, None, None, seconds))

    def clear_failures(self) -> None:
        """Forget the failures and stalls still pending (the server answers normally again)."""
        with self._lock:
            self._failures.clear()
            self._stalls.clear()

    def reset(self) -> None:
        with self._lock:
            self._store.clear()
            self._failures.clear()
            self._stalls.clear()
            self._requests.clear()

    # ---- request handling (called from the server threads) ---------------------
    def _stamp(self, obj: dict, namespace: str) -> dict:
        self._resource_version += 1
        metadata = obj.setdefault("metadata", {})
        metadata["namespace"] = namespace
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        metadata["resourceVersion"] = str(self._resource_version)
        return obj

    @staticmethod
    def _normalise(obj: dict) -> dict:
        # Like the API server: a Secret's write-only stringData is stored base64 in data.
        if obj.get("kind") == "Secret" and obj.get("stringData"):
            data = obj.setdefault("data", {}) or {}
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
        return obj

    @staticmethod
    def _take(rules: list[_Failure], method: str, resource: str | None) -> _Failure | None:
        for rule in rules:
            if rule.matches(method, resource):
                rule.times -= 1
                if rule.times <= 0:
                    rules.remove(rule)
                return rule
        return None

    def handle(self, method: str, path: str, authorization: str | None, body: Any) -> tuple[int, dict]:
        match = _PATH.match(path.split("?", 1)[0])
        resource = match["resource"] if match else None
        namespace = match["namespace"] if match else None
        name = match["name"] if match else None
        with self._lock:
            self._requests.append(RecordedRequest(method, path, resource, namespace, name, authorization, body))
            stall = self._take(self._stalls, method, resource)
        if stall is not None:
            time.sleep(stall.delay)
        with self._lock:
            failure = self._take(self._failures, method, resource)
            if failure is not None:
                message = failure.message or f"fake failure {failure.status} for {method} {path}"
                return failure.status, status_body(failure.status, message, failure.reason)
            if self.authorize is not None and not self.authorize(authorization):
                return 401, status_body(401, "Unauthorized")
            if match is None:
                return 404, status_body(404, f"the server could not find the requested resource {path}")
            return self._dispatch(method, resource, namespace, name, body, _label_selector(path))

    def _dispatch(self, method: str, resource: str, namespace: str, name: str | None, body: Any,
                  selector: dict[str, str] | None = None) -> tuple[int, dict]:
        if name is None:
            if method == "POST":
                return self._create(resource, namespace, body)
            if method == "GET":
                items = [copy.deepcopy(o) for (r, ns, _), o in self._store.items() if r == resource and ns == namespace
                         and _labelled(o, selector or {})]
                return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}
            return 405, status_body(405, f"{method} is not supported on a collection")
        key = (resource, namespace, name)
        if key not in self._store:
            return 404, status_body(404, f'{resource} "{name}" not found', details={"name": name, "kind": resource})
        if method == "GET":
            return 200, copy.deepcopy(self._store[key])
        if method == "PATCH":
            patched = _merge_patch(self._store[key], body)
            patched["metadata"]["name"] = name
            self._store[key] = self._stamp(self._normalise(patched), namespace)
            return 200, copy.deepcopy(patched)
        if method == "DELETE":
            removed = self._store.pop(key)
            details = {"name": name, "kind": resource, "uid": removed["metadata"]["uid"]}
            return 200, status_body(200, "", reason="", details=details)
        return 405, status_body(405, f"{method} is not supported")

    def _create(self, resource: str, namespace: str, body: Any) -> tuple[int, dict]:
        name = body.get("metadata", {}).get("name") if isinstance(body, dict) else None
        if not name:
            return 422, status_body(422, f"{resource} is invalid: metadata.name: Required value")
        if (resource, namespace, name) in self._store:
            message = f'{resource} "{name}" already exists'
            return 409, status_body(409, message, details={"name": name, "kind": resource})
        stored = self._stamp(self._normalise(copy.deepcopy(body)), namespace)
        self._store[(resource, namespace, name)] = stored
        return 201, copy.deepcopy(stored)


class _Handler(BaseHTTPRequestHandler):
    api: FakeKubeApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status, payload = self.api.handle(self.command, self.path, self.headers.get("Authorization"), body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@pytest.fixture
def fake_kube_api() -> Iterator[FakeKubeApi]:
    """A running FakeKubeApi, stopped after the test. Import it into a conftest to use it."""
    with FakeKubeApi() as kube:
        yield kube
