"""Signing in to the console without pasting a token, in a real Chromium against the real local stack:

- the hosted UI's authorization code flow with PKCE, against a small authorization server of this test
  (127.0.0.1, a free port) that checks the S256 challenge against the verifier and answers with an ID
  token of the stack's own issuer, so the API accepting it proves the whole flow;
- `make run`'s demo sign-in link: a one-time code in the fragment, redeemed by a JSON POST for a demo
  editor's token in the response body.

Neither leaves a token, nor the code, in the page's URL or history."""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from console_samples import ONTOLOGY

pytestmark = pytest.mark.integration

CLIENT_ID = "console-test-client"
DEMO_CODE = secrets.token_urlsafe(24)
SUFFIX = uuid.uuid4().hex[:6]
TEAM, DEMO_PROJECT = f"team-{SUFFIX}", f"demo-{SUFFIX}"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class AuthorizationServer:
    """/authorize signs the person in at once and redirects back with a code bound to the S256 challenge;
    /token gives the ID token only for that code, its redirect URI and client, and the matching verifier."""

    def __init__(self) -> None:
        self.redirect_uri = ""
        self.mint = None  # set once the stack (and its issuer) runs: projects -> token
        self.projects = {TEAM: "editor"}
        self.codes: dict[str, dict] = {}
        self.exchanges: list[dict] = []  # every POST /token: the form and what was answered
        self.authorizations: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                server.authorizations.append(query)
                if url.path != "/authorize":
                    return self._json(404, {"error": "not_found"})
                if (query.get("response_type") != "code" or query.get("client_id") != CLIENT_ID
                        or query.get("redirect_uri") != server.redirect_uri
                        or query.get("code_challenge_method") != "S256"
                        or len(query.get("code_challenge", "")) != 43
                        or "openid" not in query.get("scope", "").split()):
                    return self._json(400, {"error": "invalid_request"})
                code = secrets.token_urlsafe(16)
                server.codes[code] = {"challenge": query["code_challenge"], "redirect_uri": query["redirect_uri"]}
                back = f"{query['redirect_uri']}?{urllib.parse.urlencode({'code': code, 'state': query['state']})}"
                self.send_response(302)
                self.send_header("Location", back)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = dict(urllib.parse.parse_qsl(body))
                issued = server.codes.pop(form.get("code", ""), None)  # a code works once
                ok = (self.path == "/token" and issued is not None
                      and self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
                      and form.get("grant_type") == "authorization_code" and form.get("client_id") == CLIENT_ID
                      and form.get("redirect_uri") == issued["redirect_uri"]
                      and s256(form.get("code_verifier", "")) == issued["challenge"])
                server.exchanges.append({"form": form, "ok": ok})
                if not ok:
                    return self._json(400, {"error": "invalid_grant"})
                self._json(200, {"id_token": server.mint(server.projects), "access_token": "opaque-access-token",
                                 "token_type": "Bearer", "expires_in": 3600})

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # The console is on another port (another origin): it reads the answer under CORS.
                self.send_header("Access-Control-Allow-Origin", server.console_origin)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.console_origin = ""
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="module")
def authorization_server():
    server = AuthorizationServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def console_env(authorization_server):
    def env(base: str) -> dict[str, str]:
        authorization_server.redirect_uri = f"{base}/console/"
        authorization_server.console_origin = base
        server = authorization_server.url
        auth = {"authorize_url": f"{server}/authorize", "token_url": f"{server}/token",
                "client_id": CLIENT_ID, "redirect_uri": f"{base}/console/", "scopes": ["openid", "email"]}
        return {"CONSOLE_AUTH": json.dumps(auth), "CONSOLE_DEMO_CODE": DEMO_CODE, "CONSOLE_DEMO_PROJECT": DEMO_PROJECT}
    return env


@pytest.fixture(scope="module")
def stack(console_stack, authorization_server):
    authorization_server.mint = console_stack.token
    editor = console_stack.api({TEAM: "editor"})
    onto = editor.ok("POST", "/api/ontologies", {"project_id": TEAM, "name": "Sensors", "content": ONTOLOGY}, 201)
    model = editor.ok("POST", "/api/ml-models", {"project_id": TEAM, "ontology_id": onto["id"],
                                                  "name": "Signed-in view", "type": "decision_tree"}, 201)
    return console_stack, model


def new_page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def kept(page) -> str:
    return page.evaluate("Object.values(sessionStorage).join(' ')")


def post(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_the_config_names_the_hosted_sign_in_and_the_csp_allows_its_token_endpoint(stack, authorization_server):
    console_stack, _ = stack
    url = urllib.parse.urlsplit(console_stack.base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("GET", "/console/config.json")
    response = connection.getresponse()
    status, csp, config = response.status, response.getheader("Content-Security-Policy"), json.loads(response.read())
    connection.close()
    assert status == 200 and config["auth"]["client_id"] == CLIENT_ID
    assert config["auth"]["redirect_uri"] == console_stack.console_url
    assert f"connect-src 'self' {console_stack.ws_url} {authorization_server.url};" in csp
    assert DEMO_CODE not in json.dumps(config)  # the demo code is only in the link make run prints


def test_sign_in_with_the_code_flow_and_pkce_and_the_api_takes_the_token(browser, stack, authorization_server):
    console_stack, model = stack
    page, errors = new_page(browser)
    page.goto(console_stack.console_url)
    page.wait_for_selector("#sign-in-hosted:focus")
    assert page.locator("#token").count() == 1  # pasting a token stays possible
    page.keyboard.press("Enter")
    page.wait_for_selector("#projects")

    authorization, = authorization_server.authorizations
    exchange, = authorization_server.exchanges
    assert exchange["ok"], exchange
    assert s256(exchange["form"]["code_verifier"]) == authorization["code_challenge"]
    assert authorization["code_challenge"] != exchange["form"]["code_verifier"]  # S256, not plain
    assert len(exchange["form"]["code_verifier"]) >= 43
    # The code is gone from the address bar and the history entry; the token never was in a URL.
    assert page.url == console_stack.console_url
    assert exchange["form"]["code"] not in page.url and "eyJ" not in page.url
    assert page.evaluate("location.search + location.hash") == ""
    token = kept(page)
    assert token.startswith("eyJ") and exchange["form"]["code_verifier"] not in token  # verifier dropped once used
    assert authorization["state"] not in token
    assert page.locator("#projects li").all_inner_texts() == [f"{TEAM}\neditor"]

    # The API accepts the token the code flow got: the project's model is listed.
    page.click(f"#projects a:text('{TEAM}')")
    page.wait_for_selector(f"#models tr[data-model-id='{model['id']}']")
    page.close()
    assert not errors, errors


def test_a_returned_code_with_a_state_this_tab_did_not_send_is_not_exchanged(browser, stack, authorization_server):
    console_stack, _ = stack
    before = len(authorization_server.exchanges)
    page, errors = new_page(browser)
    page.goto(f"{console_stack.console_url}?code=stolen-code&state=forged")
    page.wait_for_selector("body[data-ready=true]")
    assert "does not match a sign-in this tab started" in page.locator("#error").inner_text()
    assert page.url == console_stack.console_url  # the code is taken out of the URL anyway
    assert len(authorization_server.exchanges) == before
    assert page.locator("#sign-in-hosted").count() == 1 and "eyJ" not in kept(page)
    page.close()
    assert not errors, errors


def test_the_authorization_server_refuses_a_verifier_that_does_not_match_the_challenge(authorization_server):
    """The fake must be able to say no, or the browser test above would prove nothing."""
    authorization_server.codes["c1"] = {"challenge": s256("the-right-verifier-" + "x" * 30),
                                        "redirect_uri": authorization_server.redirect_uri}
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": "c1",
                                   "redirect_uri": authorization_server.redirect_uri,
                                   "code_verifier": "a-wrong-verifier-" + "x" * 30}).encode()
    status, body = post(authorization_server.url, "/token", form,
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, body) == (400, {"error": "invalid_grant"})


def test_the_demo_endpoint_answers_only_a_same_origin_json_post_from_this_machine(stack):
    console_stack, _ = stack
    host = urllib.parse.urlsplit(console_stack.base).netloc
    good = {"Content-Type": "application/json", "Origin": console_stack.base, "Host": host}
    body = json.dumps({"code": DEMO_CODE}).encode()
    no_origin = {k: v for k, v in good.items() if k != "Origin"}
    for headers, status in (({**good, "Origin": "http://evil.example"}, 403), (no_origin, 403),
                            ({**good, "Host": "rebound.example:80", "Origin": "http://rebound.example:80"}, 403),
                            ({**good, "Content-Type": "text/plain"}, 415)):
        assert post(console_stack.base, "/console/demo-sign-in", body, headers)[0] == status, headers
    status, answer = post(console_stack.base, "/console/demo-sign-in", json.dumps({"code": "guess"}).encode(), good)
    assert status == 403 and "token" not in answer
    # A GET is not the endpoint (it is no file either), and the API's routes are untouched by it.
    url = urllib.parse.urlsplit(console_stack.base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("GET", "/console/demo-sign-in")
    assert connection.getresponse().status == 404
    connection.close()


def test_the_demo_link_signs_in_as_the_demo_editor_once_without_a_token_in_the_url(browser, stack):
    console_stack, _ = stack
    page, errors = new_page(browser)
    page.goto(f"{console_stack.console_url}#demo-sign-in={DEMO_CODE}")
    page.wait_for_selector("#projects")
    assert page.locator("#projects li").all_inner_texts() == [f"{DEMO_PROJECT}\neditor"]
    assert DEMO_CODE not in page.url and page.url == console_stack.console_url and "eyJ" not in page.url
    assert kept(page).startswith("eyJ")
    page.click(f"#projects a:text('{DEMO_PROJECT}')")  # the API takes the demo token: the (empty) project opens
    page.wait_for_selector("#models td:text('No models in this project yet.')")
    assert page.locator("#new-model").count() == 1  # an editor's button
    page.close()
    assert not errors, errors

    again, errors = new_page(browser)
    again.goto(f"{console_stack.console_url}#demo-sign-in={DEMO_CODE}")
    again.wait_for_selector("body[data-ready=true]")
    assert "used already" in again.locator("#error").inner_text()
    assert again.locator("#sign-in-hosted").count() == 1 and "eyJ" not in kept(again)
    again.close()
    assert not errors, errors
