"""The web console's static files (`console/`), served by `chalice local` on the API's own port (local stage).

    GET /console/             console/index.html
    GET /console/<file>       a file under console/ (only known types, no dot-files)
    GET /console/config.json  what the console cannot know by itself: the WebSocket URL

Every other request goes to the app untouched, so the API keeps its one door (`user_route`'s
authentication). The console is plain files (no secrets): nothing here looks at a token. A path
is resolved (symlinks and `..` followed) and served only if it is still inside console/; anything
else is the same 404 as a file that is not there. In AWS the console is meant to be served from
S3 behind CloudFront, not by the API's Lambda, so this lives with the local stack, not in app.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
PREFIX = "/console"
CONFIG_FILE = "config.json"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

Answer = tuple[int, dict[str, str], bytes]


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


def security_headers(websocket_url: str | None) -> dict[str, str]:
    """Only this origin's scripts and styles, and connections to the API (same origin) and the WebSocket."""
    connect = "'self'" + (f" {websocket_url}" if websocket_url else "")
    return {
        "Content-Security-Policy": (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                    f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; "
                                    "form-action 'self'"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def answer(raw_path: str, websocket_url: str | None, root: Path = CONSOLE_DIR) -> Answer | None:
    """The console's answer to a GET of `raw_path`, or None when the path is not the console's (the API's)."""
    path = urlsplit(raw_path).path
    if path == PREFIX:
        return 301, {"Location": f"{PREFIX}/", "Content-Type": "text/plain; charset=utf-8"}, b""
    if not path.startswith(PREFIX + "/"):
        return None
    headers = security_headers(websocket_url)
    relative = unquote(path[len(PREFIX) + 1:])
    if relative == CONFIG_FILE:
        body = json.dumps({"websocket_url": websocket_url}).encode()
        return 200, {**headers, "Content-Type": "application/json"}, body
    file = resolve(relative, root)
    if file is None:
        body = json.dumps({"code": "not_found", "message": f"no console file at {path}"}).encode()
        return 404, {**headers, "Content-Type": "application/json"}, body
    return 200, {**headers, "Content-Type": TYPES[file.suffix]}, file.read_bytes()


def install(handler_cls, websocket_url: str | None, root: Path = CONSOLE_DIR) -> None:
    """Make `chalice local`'s request handler answer GET and HEAD of /console/... from `root`."""
    to_api = handler_cls._generic_handle

    def handle(self) -> None:
        found = answer(self.path, websocket_url, root)
        if found is None:
            to_api(self)
            return
        status, headers, body = found
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    handler_cls.do_GET = handler_cls.do_HEAD = handle
