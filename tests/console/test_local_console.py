"""scripts/local_console.py: what `chalice local` serves under /console/, and that nothing outside the folder is."""
from __future__ import annotations

import json
import os

import pytest

from scripts import local_console


@pytest.fixture
def root(tmp_path):
    """A console folder beside a secret, with a symlink and a dot-file inside that must not be served."""
    console = tmp_path / "console"
    (console / "views").mkdir(parents=True)
    (console / "index.html").write_text("<!doctype html><title>c</title>")
    (console / "app.js").write_text("export {};")
    (console / "views" / "page.js").write_text("export {};")
    (console / "notes.md").write_text("not a served type")
    (console / ".env").write_text("SECRET=1")
    (tmp_path / "secret.js").write_text("the secret")
    os.symlink(tmp_path / "secret.js", console / "link.js")
    return console


def test_files_of_known_types_are_served_with_their_type_and_a_strict_policy(root):
    status, headers, body = local_console.answer("/console/", "ws://127.0.0.1:9", root)
    assert (status, body) == (200, b"<!doctype html><title>c</title>")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "connect-src 'self' ws://127.0.0.1:9" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = local_console.answer("/console/views/page.js?v=1", None, root)
    assert (status, headers["Content-Type"], body) == (200, "text/javascript; charset=utf-8", b"export {};")


def test_the_config_names_the_websocket_and_the_bare_prefix_redirects(root):
    status, headers, body = local_console.answer("/console/config.json", "ws://localhost:8081", root)
    assert status == 200 and json.loads(body) == {"websocket_url": "ws://localhost:8081"}
    assert local_console.answer("/console/config.json", None, root)[2] == b'{"websocket_url": null}'
    status, headers, _ = local_console.answer("/console?x=1", None, root)
    assert (status, headers["Location"]) == (301, "/console/")


@pytest.mark.parametrize("path", [
    "/console/../secret.js", "/console/%2e%2e/secret.js", "/console/..%2fsecret.js", "/console/views/../../secret.js",
    "/console/%2E%2E%2Fsecret.js", "/console/link.js", "/console/.env", "/console/notes.md", "/console/missing.js",
    "/console/views", "/console/..%5csecret.js", "/console/app.js%00.html", "/console//etc/passwd",
])
def test_nothing_outside_the_folder_nor_unknown_types_nor_dot_files(root, path):
    status, headers, body = local_console.answer(path, None, root)
    assert status == 404, path
    assert json.loads(body)["code"] == "not_found"
    assert b"the secret" not in body and b"SECRET" not in body


@pytest.mark.parametrize("path", ["/api/ml-models", "/consoles/", "/", "/api/console/x"])
def test_other_paths_are_the_apis(root, path):
    assert local_console.answer(path, None, root) is None
