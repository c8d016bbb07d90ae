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


# ---- the hosted sign-in settings ---------------------------------------------------------------------

AUTH = {"authorize_url": "https://idp.example.com/oauth2/authorize", "token_url": "https://idp.example.com/oauth2/token",
        "client_id": "abc", "redirect_uri": "https://d1.cloudfront.net/", "scopes": "openid email"}


def test_the_config_carries_checked_hosted_sign_in_settings_and_the_csp_lets_the_page_reach_the_token_endpoint(root):
    status, headers, body = local_console.answer("/console/config.json", "ws://127.0.0.1:9", root, AUTH)
    assert json.loads(body) == {"websocket_url": "ws://127.0.0.1:9", "auth": {**AUTH, "scopes": ["openid", "email"]}}
    assert "connect-src 'self' ws://127.0.0.1:9 https://idp.example.com;" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("change", [
    {"token_url": "http://idp.example.com/oauth2/token"},  # plain http off this machine
    {"redirect_uri": "javascript:alert(1)"}, {"client_id": ""}, {"scopes": ["email"]}, {"secret": "x"},
])
def test_hosted_sign_in_settings_that_would_be_unsafe_or_unusable_are_refused(change):
    with pytest.raises(ValueError):
        local_console.check_auth({**AUTH, **change})


# ---- the demo sign-in --------------------------------------------------------------------------------

LOCAL = {"APP_STAGE": "local", "AUTH_MODE": "jwt", "AUTH_ISSUER": "http://127.0.0.1:8083",
         "AUTH_AUDIENCE": "ml-models-local", "CONSOLE_DEMO_CODE": "one-time-code"}
GOOD = {"Host": "localhost:8080", "Origin": "http://localhost:8080", "Content-Type": "application/json"}


@pytest.fixture
def demo(tmp_path):
    return local_console.DemoSignIn.from_environ({**LOCAL, "CONSOLE_DEMO_KEY_DIR": str(tmp_path)})


@pytest.mark.parametrize("change", [
    {"APP_STAGE": "dev"}, {"AUTH_MODE": "off"}, {"CONSOLE_DEMO_CODE": ""},
    {"AUTH_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool"},
])
def test_the_demo_sign_in_exists_only_on_the_local_stage_with_the_local_issuer(change):
    assert local_console.DemoSignIn.from_environ({**LOCAL, **change}) is None


def test_the_demo_code_is_redeemed_once_for_a_short_lived_editor_token_in_the_body(demo, tmp_path):
    import jwt

    from scripts.local_issuer import jwks

    status, headers, body = local_console.demo_sign_in(demo, GOOD, b'{"code": "one-time-code"}', "127.0.0.1")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    answer = json.loads(body)
    key = jwt.PyJWK(jwks(tmp_path)["keys"][0]).key
    claims = jwt.decode(answer["token"], key, algorithms=["RS256"], audience="ml-models-local",
                        issuer="http://127.0.0.1:8083")
    assert claims["projects"] == {"demo": "editor"} and claims["exp"] - claims["iat"] <= 3600
    assert (answer["project_id"], answer["expires_in"]) == ("demo", 3600)
    status, _, body = local_console.demo_sign_in(demo, GOOD, b'{"code": "one-time-code"}', "127.0.0.1")
    assert status == 403 and "used already" in json.loads(body)["message"] and b"eyJ" not in body


@pytest.mark.parametrize("headers, body, client, status", [
    (GOOD, b'{"code": "wrong"}', "127.0.0.1", 403),
    (GOOD, b'{"code": "one-time-code"}', "192.168.1.20", 403),  # not from this machine
    ({**GOOD, "Host": "evil.example:8080", "Origin": "http://evil.example:8080"}, b'{"code": "one-time-code"}',
     "127.0.0.1", 403),  # DNS rebinding: another name for this machine
    ({**GOOD, "Origin": "http://evil.example"}, b'{"code": "one-time-code"}', "127.0.0.1", 403),
    ({k: v for k, v in GOOD.items() if k != "Origin"}, b'{"code": "one-time-code"}', "127.0.0.1", 403),
    ({**GOOD, "Content-Type": "application/x-www-form-urlencoded"}, b"code=one-time-code", "127.0.0.1", 415),
    (GOOD, b"not json", "127.0.0.1", 400),
    (GOOD, b'{"code": 1}', "127.0.0.1", 400),
])
def test_the_demo_code_is_not_spent_by_a_request_from_elsewhere_or_malformed(demo, headers, body, client, status):
    assert local_console.demo_sign_in(demo, headers, body, client)[0] == status
    assert local_console.demo_sign_in(demo, GOOD, b'{"code": "one-time-code"}', "127.0.0.1")[0] == 200


def test_without_a_demo_the_endpoint_is_not_there():
    status, _, body = local_console.demo_sign_in(None, GOOD, b'{"code": "x"}', "127.0.0.1")
    assert status == 404 and json.loads(body)["code"] == "not_found"


def test_the_deployed_app_never_imports_the_local_console():
    from pathlib import Path

    root = Path(local_console.__file__).resolve().parents[1]
    for source in [root / "app.py", *(root / "chalicelib").rglob("*.py")]:
        text = source.read_text()
        assert "local_console" not in text and "demo-sign-in" not in text, source
