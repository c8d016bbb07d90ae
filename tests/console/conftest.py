"""The web console's tests: the real local stack on free ports (its own moto server process, the token
issuer, the WebSocket gateway, `chalice local` serving the API and /console/), and Debian's Chromium
driven by Playwright (the system browser via `executable_path`: nothing is downloaded).

One stack and one browser per module keep the browser tests to well under two minutes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scripts import local_stack

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# This closed network has nothing for the browser to phone home to; each flag stops one kind of trying.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """JSON over HTTP with one caller's bearer token (what curl does in the README)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        return status, (json.loads(payload) if payload else None)

    def ok(self, method: str, path: str, body=None, expect: int = 200) -> dict:
        status, answer = self.call(method, path, body)
        assert status == expect, (method, path, status, answer)
        return answer

    def wait_for_status(self, model_id: str, statuses: tuple[str, ...], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.ok("GET", f"/api/ml-models/{model_id}")
            if model["status"] in statuses:
                return model
            time.sleep(0.3)
        raise AssertionError(f"model {model_id} still {model['status']} after {timeout}s")


class ConsoleStack:
    def __init__(self, base: str, ws_url: str, issuer, key_dir: Path, log_path: str) -> None:
        self.base, self.ws_url, self.issuer, self.key_dir, self.log_path = base, ws_url, issuer, key_dir, log_path
        self.console_url = f"{base}/console/"

    def token(self, projects: dict[str, str]) -> str:
        from scripts.local_issuer import LOCAL_AUDIENCE, mint

        return mint("console-test", projects, issuer=self.issuer.url, audience=LOCAL_AUDIENCE, key_dir=self.key_dir)

    def api(self, projects: dict[str, str]) -> Api:
        return Api(self.base, self.token(projects))


def _moto_process(port: int, log_file) -> subprocess.Popen:
    """The embedded AWS in a process of its own, so this module's tables are its own: moto's backends are
    per process, and the integration tier's in-process moto (and its reconciler) share theirs."""
    code = ("import sys, time\nfrom scripts.local_stack import embedded_aws\n"
            "embedded_aws(int(sys.argv[1]))\nwhile True: time.sleep(3600)")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=ROOT, env=env, stdout=log_file,
                            stderr=subprocess.STDOUT, start_new_session=True)
    local_stack.wait_for_http(f"http://127.0.0.1:{port}/moto-api/", proc)
    return proc


@pytest.fixture(scope="module")
def console_env():
    """More environment for the module's `chalice local`, given the API's base URL (a module overrides this:
    CONSOLE_AUTH for the hosted sign-in, CONSOLE_DEMO_CODE for the demo link)."""
    return lambda base: {}


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory, console_env):
    from scripts import local_issuer

    moto_port, api_port, ws_port, ws_management_port = free_port(), free_port(), free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="console-stack-", suffix=".log", delete=False)
    started: list[subprocess.Popen] = []
    key_dir = tmp_path_factory.mktemp("console-issuer")
    issuer = local_issuer.serve(0, key_dir)
    try:
        started.append(_moto_process(moto_port, log))
        endpoint = f"http://127.0.0.1:{moto_port}"
        data_env = local_stack.deploy_data_stores(endpoint)
        ws_url = f"ws://127.0.0.1:{ws_port}"
        env = local_stack.app_environment(endpoint, api_port, data_env, ws_management_port,
                                          local_stack.auth_environment("on", issuer), websocket_url=ws_url)
        env["TRAINER_PROGRESS_INTERVAL"] = "0"  # a progress event per epoch, so the live curve has points
        env["LOCAL_RECONCILE_SECONDS"] = "0"
        env["TMPDIR"] = env["LOCAL_RUN_LOG_DIR"] = tempfile.mkdtemp(prefix="console-runs-")
        env["CONSOLE_DEMO_KEY_DIR"] = str(key_dir)  # the demo sign-in (when asked for) mints with this issuer's key
        env.update(console_env(f"http://127.0.0.1:{api_port}"))
        started.append(local_stack.start_ws_gateway(ws_port, ws_management_port, env, log_file=log))
        started.append(local_stack.start_api(api_port, env, log_file=log))
        yield ConsoleStack(f"http://127.0.0.1:{api_port}", ws_url, issuer, key_dir, log.name)
    finally:
        for proc in reversed(started):
            local_stack.stop(proc)
        issuer.stop()
        log.close()
        os.unlink(log.name)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's Chromium in a fresh profile; `new_page()` gives a tab with its own (empty) session storage."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
