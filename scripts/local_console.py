"""The web console's static files (`console/`), served by `chalice local` on the API's own port (local stage).

    GET  /console/                 console/index.html
    GET  /console/<file>           a file under console/ (only known types, no dot-files)
    GET  /console/config.json      what the console cannot know by itself: the WebSocket URL, and the
                                   hosted-UI sign-in settings when CONSOLE_AUTH names them
    POST /console/demo-sign-in     `make run`'s sign-in link: a one-time code in, a demo editor's token out

Every other request goes to the app untouched, so the API keeps its one door (`user_route`'s
authentication). The console is plain files (no secrets). A path is resolved (symlinks and `..`
followed) and served only if it is still inside console/; anything else is the same 404 as a file
that is not there. In AWS the console is served from S3 behind CloudFront
(infra/cloudformation/console.yaml, scripts/deploy_console.py), not by the API's Lambda, so this lives
with the local stack, not in app.py; the Content-Security-Policy and config.json's shape defined here
are the ones that deployment uses too.

The demo sign-in exists only on the local stage with the local issuer (`DemoSignIn.from_environ`): the
link `make run` prints carries a one-time code in its fragment (never sent to a server, never logged);
the page POSTs it as JSON and gets a short-lived editor token of the demo project in the response
body. A code is redeemed once; the token never goes into a URL.
"""
from __future__ import annotations

import hmac
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
PREFIX = "/console"
CONFIG_FILE = "config.json"
DEMO_SIGN_IN_PATH = f"{PREFIX}/demo-sign-in"
DEMO_PROJECT = "demo"
DEMO_SUBJECT = "demo-editor"
DEMO_TOKEN_SECONDS = 3600
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
AUTH_FIELDS = ("authorize_url", "token_url", "client_id", "redirect_uri", "scopes")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

Answer = tuple[int, dict[str, str], bytes]


# ---- what the console is told and how it is sandboxed (local and AWS alike) ------------------------


def _url(value: Any, name: str) -> str:
    """`value` if it is an https URL, or an http one on this machine (local stage, tests)."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if not parts or not parts.netloc or not (
            parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)):
        raise ValueError(f"auth.{name} must be an https URL (or http on 127.0.0.1/localhost), not {value!r}")
    return value


def check_auth(auth: Mapping[str, Any]) -> dict[str, Any]:
    """The hosted-UI settings config.json carries (authorization code + PKCE), checked; ValueError names the field."""
    if not isinstance(auth, Mapping):
        raise ValueError("auth must be an object")
    unknown = set(auth) - set(AUTH_FIELDS)
    if unknown:
        raise ValueError(f"auth has unknown fields {sorted(unknown)}")
    scopes = auth.get("scopes", ["openid"])
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) and s for s in scopes):
        raise ValueError("auth.scopes must be a list of scope names")
    if "openid" not in scopes:
        raise ValueError("auth.scopes must include openid: the API takes the ID token")
    client_id = auth.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError("auth.client_id is required")
    return {"authorize_url": _url(auth.get("authorize_url"), "authorize_url"),
            "token_url": _url(auth.get("token_url"), "token_url"), "client_id": client_id,
            "redirect_uri": _url(auth.get("redirect_uri"), "redirect_uri"), "scopes": scopes}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def connect_sources(websocket_url: str | None, auth: Mapping[str, Any] | None) -> list[str]:
    """Where the console may connect besides its own origin: the WebSocket and the token endpoint's origin."""
    sources = [websocket_url] if websocket_url else []
    if auth:
        sources.append(origin(auth["token_url"]))
    return sources


def content_security_policy(sources: Iterable[str] = ()) -> str:
    """Only this origin's scripts and styles; connections to this origin (the API) and `sources`.

    infra/cloudformation/console.yaml sends the same policy from CloudFront (a test holds them equal)."""
    connect = " ".join(["'self'", *sources])
    return (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def config_document(websocket_url: str | None, auth: Mapping[str, Any] | None = None,
                    api_base_url: str | None = None) -> dict[str, Any]:
    """config.json: the WebSocket URL; `auth` for the hosted UI; `api_base_url` only when the API is elsewhere."""
    document: dict[str, Any] = {"websocket_url": websocket_url}
    if api_base_url:
        document["api_base_url"] = api_base_url.rstrip("/")
    if auth:
        document["auth"] = check_auth(auth)
    return document


def security_headers(websocket_url: str | None, auth: Mapping[str, Any] | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(connect_sources(websocket_url, auth)),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


# ---- the demo sign-in (local stage only) -----------------------------------------------------------


@dataclass
class DemoSignIn:
    """One code, redeemable once, for an editor token of `project` minted by the local issuer's key."""

    code: str
    issuer: str
    audience: str
    key_dir: Path
    project: str = DEMO_PROJECT
    ttl_seconds: int = DEMO_TOKEN_SECONDS
    _used: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DemoSignIn | None:
        """The demo sign-in of a local stack that asked for one (CONSOLE_DEMO_CODE), else None.

        Only the local stage with the local issuer: a stage that verifies another issuer's tokens
        (Cognito) could not accept these, and a deployed app never imports this module anyway."""
        code = environ.get("CONSOLE_DEMO_CODE", "")
        issuer = environ.get("AUTH_ISSUER", "")
        if (not code or environ.get("APP_STAGE") != "local" or environ.get("AUTH_MODE") != "jwt"
                or urlsplit(issuer).hostname not in LOOPBACK_HOSTS):
            return None
        from scripts import local_issuer

        return cls(code=code, issuer=issuer, audience=environ.get("AUTH_AUDIENCE", local_issuer.LOCAL_AUDIENCE),
                   key_dir=Path(environ.get("CONSOLE_DEMO_KEY_DIR") or local_issuer.KEY_DIR),
                   project=environ.get("CONSOLE_DEMO_PROJECT") or DEMO_PROJECT)

    def redeem(self, offered: str) -> str:
        """The token for `offered` if it is the code and was not redeemed yet; PermissionError otherwise."""
        with self._lock:
            if not hmac.compare_digest(offered.encode(), self.code.encode()):
                raise PermissionError("this is not the sign-in link of the running stack")
            if self._used:
                raise PermissionError("this sign-in link was used already: restart `make run` for a new one, "
                                      "or paste a `make token` token")
            self._used = True
        from scripts.local_issuer import mint

        return mint(DEMO_SUBJECT, {self.project: "editor"}, issuer=self.issuer, audience=self.audience,
                    ttl_seconds=self.ttl_seconds, key_dir=self.key_dir)


def _error(status: int, code: str, message: str) -> Answer:
    body = json.dumps({"code": code, "message": message}).encode()
    return status, {"Content-Type": "application/json", "Cache-Control": "no-store"}, body


def demo_sign_in(demo: DemoSignIn | None, headers: Mapping[str, str], body: bytes, client_host: str) -> Answer:
    """The answer to POST /console/demo-sign-in: {"token", "project_id", "expires_in"} or an error.

    Same-origin JSON from this machine only: a page of another site cannot send this (a JSON POST
    needs a CORS preflight nobody answers), nor read the answer, nor reach it under another host name."""
    if demo is None:
        return _error(404, "not_found", f"no console file at {DEMO_SIGN_IN_PATH}")
    host = headers.get("Host", "")
    if client_host not in LOOPBACK_HOSTS or urlsplit(f"//{host}").hostname not in LOOPBACK_HOSTS:
        return _error(403, "forbidden", "the demo sign-in answers on this machine only")
    if headers.get("Origin") != f"http://{host}":
        return _error(403, "forbidden", "the demo sign-in answers the console's own page only")
    if headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
        return _error(415, "invalid_input", "send {\"code\": ...} as application/json")
    try:
        offered = json.loads(body or b"null")["code"]
        if not isinstance(offered, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return _error(400, "invalid_input", "send {\"code\": ...} as application/json (field: code)")
    try:
        token = demo.redeem(offered)
    except PermissionError as exc:
        return _error(403, "forbidden", str(exc))
    answer_body = json.dumps({"token": token, "project_id": demo.project, "expires_in": demo.ttl_seconds}).encode()
    return 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}, answer_body


# ---- the files ---------------------------------------------------------------------------------------


def resolve(relative: str, root: Path = CONSOLE_DIR) -> Path | None:
    """The file `relative` (already URL-decoded) names inside `root`, or None if it is not a servable file there."""
    if "\\" in relative or "\x00" in relative:
        return None
    parts = [part for part in relative.split("/") if part]
    if any(part.startswith(".") for part in parts):  # dot-files, `..` and `.`
        return None
    base = root.resolve()
    path = base.joinpath(*parts).resolve() if parts else base
    if path.is_dir():
        path = path / "index.html"
    if not path.is_relative_to(base) or not path.is_file() or path.suffix not in TYPES:
        return None
    return path


def servable_files(root: Path = CONSOLE_DIR) -> dict[str, Path]:
    """{relative path: file} of everything `resolve` serves from `root` (what scripts/deploy_console.py uploads)."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and relative != CONFIG_FILE and resolve(relative, root) == path.resolve():
            found[relative] = path
    return found


def answer(raw_path: str, websocket_url: str | None, root: Path = CONSOLE_DIR,
           auth: Mapping[str, Any] | None = None) -> Answer | None:
    """The console's answer to a GET of `raw_path`, or None when the path is not the console's (the API's)."""
    path = urlsplit(raw_path).path
    if path == PREFIX:
        return 301, {"Location": f"{PREFIX}/", "Content-Type": "text/plain; charset=utf-8"}, b""
    if not path.startswith(PREFIX + "/"):
        return None
    headers = security_headers(websocket_url, auth)
    relative = unquote(path[len(PREFIX) + 1:])
    if relative == CONFIG_FILE:
        body = json.dumps(config_document(websocket_url, auth)).encode()
        return 200, {**headers, "Content-Type": "application/json"}, body
    file = resolve(relative, root)
    if file is None:
        body = json.dumps({"code": "not_found", "message": f"no console file at {path}"}).encode()
        return 404, {**headers, "Content-Type": "application/json"}, body
    return 200, {**headers, "Content-Type": TYPES[file.suffix]}, file.read_bytes()


def auth_from_environ(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """CONSOLE_AUTH: the hosted-UI settings as JSON (to try the code flow locally), or None."""
    raw = environ.get("CONSOLE_AUTH", "")
    return check_auth(json.loads(raw)) if raw else None


def install(handler_cls, websocket_url: str | None, root: Path = CONSOLE_DIR, *,
            auth: Mapping[str, Any] | None = None, demo: DemoSignIn | None = None,
            environ: Mapping[str, str] | None = None) -> None:
    """Make `chalice local`'s request handler answer GET and HEAD of /console/... from `root`, and the demo
    sign-in's POST. `auth` and `demo` default to what the environment (CONSOLE_AUTH, CONSOLE_DEMO_CODE) says."""
    environ = os.environ if environ is None else environ
    auth = auth if auth is not None else auth_from_environ(environ)
    demo = demo if demo is not None else DemoSignIn.from_environ(environ)
    to_api = handler_cls._generic_handle

    def send(self, found: Answer) -> None:
        status, headers, body = found
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle(self) -> None:
        found = answer(self.path, websocket_url, root, auth)
        if found is None:
            to_api(self)
        else:
            send(self, found)

    def handle_post(self) -> None:
        if urlsplit(self.path).path != DEMO_SIGN_IN_PATH:
            to_api(self)
            return
        length = self.headers.get("Content-Length", "0")
        size = int(length) if length.isdigit() else 0
        if size > 4096:
            self.close_connection = True
            send(self, _error(413, "invalid_input", "the body is too large"))
            return
        body = self.rfile.read(size) if size else b""
        send(self, demo_sign_in(demo, self.headers, body, self.client_address[0]))

    handler_cls.do_GET = handler_cls.do_HEAD = handle
    handler_cls.do_POST = handle_post
