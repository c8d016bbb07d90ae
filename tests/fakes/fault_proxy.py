"""A TCP proxy that injects network faults between the API and its AWS endpoint (moto server).

    proxy = FaultProxy(("127.0.0.1", moto_port)).start()     # proxy.url → AWS_ENDPOINT_URL
    proxy.inject("delay", service="dynamodb", seconds=3)      # hold DynamoDB requests 3 s
    proxy.inject("drop", service="s3")                        # close S3 connections, no reply
    proxy.inject("reset")                                     # RST every connection on accept
    proxy.clear()                                             # back to a plain relay

Modes:
- "drop": the connection is closed (FIN) without a byte of reply.
- "reset": the connection is aborted with an RST (SO_LINGER 0), as a crashed peer or a
  middlebox does.
- "delay": the request's bytes are held for `seconds` before they are forwarded (past the
  client's read timeout, the client gives up first).

Without a `service`, drop and reset act on accept. With one, the proxy reads each request's
head first to learn which service it is for (the service in its SigV4 credential scope:
"dynamodb", "s3", "sts", ...), so one endpoint (moto serves every service on one port) can
fail DynamoDB while S3 works. Requests are parsed one by one on kept-alive connections
(Content-Length bodies; a chunked request turns the rest of its connection into a plain
relay), and changing the faults closes every open connection, so no pooled connection
carries on unaffected. `faulted` counts the requests a fault was applied to, so a test can
tell that its fault was really met.
"""
from __future__ import annotations

import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass

_SCOPE = re.compile(rb"Credential=[^/\s]+/\d{8}/[^/\s]+/([a-z0-9-]+)/aws4_request", re.I)
_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.I | re.M)
_CHUNKED = re.compile(rb"^transfer-encoding:.*chunked", re.I | re.M)
MODES = ("drop", "reset", "delay")
MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Fault:
    mode: str
    service: str | None = None
    seconds: float = 0.0

    def applies_to(self, service: str | None) -> bool:
        return self.service is None or self.service == service


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self._fault: Fault | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._changed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self.faulted: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._changed.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self._close_all()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    def inject(self, mode: str, service: str | None = None, seconds: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self._set(Fault(mode, service, seconds))

    def clear(self) -> None:
        self._set(None)

    def _set(self, fault: Fault | None) -> None:
        with self._lock:
            self._fault = fault
            self._changed.set()
            self._changed = threading.Event()
        self._close_all()

    # ---- connections ------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _shutdown(sock)

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        upstream: socket.socket | None = None
        try:
            fault = self._fault
            if fault is not None and fault.service is None and fault.mode != "delay":
                self._apply(fault, client, None)
                return
            buffer = b""
            while True:
                request, buffer, chunked = _read_request(client, buffer)
                if request is None:
                    return
                fault, changed = self._fault, self._changed
                service = _service(request)
                if fault is not None and fault.applies_to(service):
                    if not self._apply(fault, client, service, changed):
                        return
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=10)
                    upstream.settimeout(None)
                    self._track(upstream)
                    threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
                upstream.sendall(request)
                if chunked:  # no framing we parse: relay the rest of this connection as it is
                    upstream.sendall(buffer)
                    _pump(client, upstream)
                    return
        except OSError:
            return
        finally:
            _shutdown(client)
            if upstream is not None:
                _shutdown(upstream)

    def _apply(self, fault: Fault, client: socket.socket, service: str | None,
               changed: threading.Event | None = None) -> bool:
        """Act out `fault` on `client`; True when the request should then be forwarded (a delay)."""
        self.faulted[fault.mode] += 1
        if fault.mode == "delay":
            # Hold the bytes; faults changing (or the proxy stopping) ends the hold early.
            if changed is not None and changed.wait(fault.seconds):
                return False
            return not self._stopped.is_set()
        if fault.mode == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        return False


def _read_request(sock: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes, bool]:
    """(one whole request, what was read past it, whether it is chunked); None at end of stream."""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD:
            return None, b"", False
        data = sock.recv(65536)
        if not data:
            return None, b"", False
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    head = buffer[:end]
    if _CHUNKED.search(head):
        return head, buffer[end:], True
    match = _LENGTH.search(head)
    total = end + (int(match.group(1)) if match else 0)
    while len(buffer) < total:
        data = sock.recv(65536)
        if not data:
            return None, b"", False
        buffer += data
    return buffer[:total], buffer[total:], False


def _service(request: bytes) -> str | None:
    match = _SCOPE.search(request[: request.find(b"\r\n\r\n")])
    return match.group(1).decode().lower() if match else None


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        _shutdown(target)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
