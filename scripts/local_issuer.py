"""The local stage's token issuer: an RSA signing key kept under `.local/issuer/` (out of git),
its public JWKS served over HTTP, and `mint()` for tokens shaped like the deployed issuer's.

The API verifies these tokens exactly as it verifies Cognito's in AWS (same
`chalicelib.auth.tokens.TokenVerifier`, only the issuer, audience and JWKS URL differ).
The running local stack records those in `issuer.json` (`write_state`) so that
`python -m scripts.token` mints tokens for the stack that is actually running.

    server = serve(DEFAULT_PORT)        # GET /.well-known/jwks.json, /.well-known/openid-configuration
    write_state(KEY_DIR, server.issuer, LOCAL_AUDIENCE, server.jwks_url)
    ...
    clear_state(KEY_DIR); server.stop()
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from chalicelib.auth.principal import EDITOR, PROJECT_ID_PATTERN, VIEWER

ROOT = Path(__file__).resolve().parent.parent
KEY_DIR = ROOT / ".local" / "issuer"
LOCAL_AUDIENCE = "ml-models-local"
# 8082 is the WebSocket gateway's management port (scripts/local_stack.py), so the issuer uses 8083.
DEFAULT_PORT = 8083
ALGORITHM = "RS256"
KEY_FILE = "signing-key.pem"
PREVIOUS_KEY_FILE = "previous-signing-key.pem"  # still published after a rotation, so old tokens verify
STATE_FILE = "issuer.json"
JWKS_PATH = "/.well-known/jwks.json"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
ROLES = (VIEWER, EDITOR)


# ---- keys ---------------------------------------------------------------------------


def ensure_key(key_dir: Path = KEY_DIR) -> Path:
    """The current signing key's PEM file, created (RSA 2048, mode 0600) on first use and reused after."""
    path = Path(key_dir) / KEY_FILE
    if not path.exists():
        _write_new_key(path)
    return path


def rotate_key(key_dir: Path = KEY_DIR) -> Path:
    """A new current signing key; the old one stays in the JWKS (as the previous key) until the next rotation."""
    key_dir = Path(key_dir)
    current = ensure_key(key_dir)
    os.replace(current, key_dir / PREVIOUS_KEY_FILE)
    _write_new_key(current)
    return current


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Written aside, then linked into place: a concurrent creator never sees a half-written key,
    # and if two race, the first link wins and both use its key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def public_jwk(private_key_path: Path) -> dict[str, Any]:
    """The public JWK of a key file, with `kid` = its RFC 7638 thumbprint."""
    jwk = RSAAlgorithm.to_jwk(_private_key(private_key_path).public_key(), as_dict=True)
    members = {name: jwk[name] for name in ("e", "kty", "n")}
    return {**members, "kid": thumbprint(members), "use": "sig", "alg": ALGORITHM}


def thumbprint(rsa_jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint of an RSA key: SHA-256 of its required members (e, kty, n), sorted, no spaces."""
    members = {name: rsa_jwk[name] for name in ("e", "kty", "n")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def jwks(key_dir: Path = KEY_DIR) -> dict[str, Any]:
    """The public key set: the current key (created if missing) and the previous one after a rotation."""
    key_dir = Path(key_dir)
    paths = [ensure_key(key_dir), key_dir / PREVIOUS_KEY_FILE]
    return {"keys": [public_jwk(path) for path in paths if path.exists()]}


def mint(subject: str, projects: dict[str, str], admin: bool = False, *, issuer: str, audience: str,
         ttl_seconds: int = 3600, key_dir: Path = KEY_DIR, issued_at: int | None = None) -> str:
    """A token signed with the current key: sub, iss, aud, iat, exp, `projects`, and `cognito:groups` for admin."""
    for project_id, role in projects.items():
        if not PROJECT_ID_PATTERN.fullmatch(project_id):
            raise ValueError(f"project id {project_id!r} is not valid")
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    path = ensure_key(key_dir)
    now = int(time.time()) if issued_at is None else issued_at
    claims: dict[str, Any] = {"sub": subject, "iss": issuer, "aud": audience, "iat": now,
                              "exp": now + ttl_seconds, "projects": dict(projects)}
    if admin:
        claims["cognito:groups"] = ["admin"]
    return jwt.encode(claims, _private_key(path), algorithm=ALGORITHM, headers={"kid": public_jwk(path)["kid"]})


# ---- the HTTP server ----------------------------------------------------------------


class IssuerServer:
    """The issuer's discovery document and JWKS on a loopback port, served from a daemon thread."""

    def __init__(self, port: int = DEFAULT_PORT, key_dir: Path = KEY_DIR, host: str = "127.0.0.1") -> None:
        self.key_dir = Path(key_dir)
        ensure_key(self.key_dir)
        self.jwks_requests = 0  # how many times the JWKS was served (tests check refetch pacing with it)
        self._count_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self.host, self.port = host, self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-issuer", daemon=True)
        self._thread.start()

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def openid_configuration(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks_uri": self.jwks_url, "id_token_signing_alg_values_supported": [ALGORITHM],
                "subject_types_supported": ["public"], "response_types_supported": ["id_token"]}

    def serve_jwks(self) -> dict[str, Any]:
        with self._count_lock:
            self.jwks_requests += 1
        return jwks(self.key_dir)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> IssuerServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(port: int = DEFAULT_PORT, key_dir: Path = KEY_DIR, host: str = "127.0.0.1") -> IssuerServer:
    """Start the issuer (port 0 picks a free one); `.url`, `.jwks_url`, `.stop()`."""
    return IssuerServer(port, key_dir, host)


def _handler_for(server: IssuerServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == JWKS_PATH:
                self._json(200, server.serve_jwks())
            elif path == OPENID_CONFIGURATION_PATH:
                self._json(200, server.openid_configuration())
            else:
                self._json(404, {"error": "not_found"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no request logging on stderr

    return Handler


# ---- the running stack's issuer -----------------------------------------------------


def write_state(key_dir: Path, issuer: str, audience: str, jwks_url: str) -> Path:
    """Record the running stack's issuer, so `scripts.token` mints tokens that stack accepts."""
    path = Path(key_dir) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"issuer": issuer, "audience": audience, "jwks_url": jwks_url}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_state(key_dir: Path = KEY_DIR) -> dict[str, str]:
    """The running stack's {"issuer", "audience", "jwks_url"}; FileNotFoundError when no stack wrote one."""
    path = Path(key_dir) / STATE_FILE
    state = json.loads(path.read_text())
    fields = ("issuer", "audience", "jwks_url")
    if not isinstance(state, dict) or not all(isinstance(state.get(name), str) for name in fields):
        raise ValueError(f"{path} is not a valid issuer state file")
    return {name: state[name] for name in fields}


def clear_state(key_dir: Path = KEY_DIR) -> None:
    """Forget the running stack's issuer (the stack calls this when it stops)."""
    (Path(key_dir) / STATE_FILE).unlink(missing_ok=True)
