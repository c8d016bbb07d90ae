"""Helpers for trainer tests: an HTTP callback receiver, S3 seeding, and running `python -m trainer`.

A plain module (not conftest) so test files can import it by a name no other test directory uses.
"""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACT_BUCKET = "trainer-artifacts"
DATA_BUCKET = "trainer-data"
TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CallbackReceiver:
    """Records every request; answers `statuses` in order first (e.g. [500, 500]), then 200.

    With `start_delay`, the port is reserved but nothing listens until the delay has passed,
    so clients see connection refused for a while.
    """

    def __init__(
        self,
        statuses: list[int] | None = None,
        start_delay: float | None = 0.0,
        status_for: dict | None = None,
    ):
        self.requests: list[dict] = []
        self.statuses = list(statuses or [])
        self.status_for = dict(status_for or {})  # action -> status, always
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._starter = threading.Timer(start_delay or 0.0, self._serve)
        self._starter.daemon = True
        if start_delay is not None:  # None: nothing listens until start()
            self._starter.start()

    def start(self) -> None:
        """Start listening now (once; later calls do nothing)."""
        with self._lock:
            if not self._starter.is_alive() and not self._starter.finished.is_set():
                self._starter.start()

    def _serve(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with receiver._lock:
                    action = self.path.rsplit("/", 1)[-1]
                    if action in receiver.status_for:
                        status = receiver.status_for[action]
                    else:
                        status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "raw": raw, "status": status}
                    )
                body = json.dumps({"status": "ok" if status < 300 else "error"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._starter.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def delivered(self, action: str) -> list[dict]:
        """Requests to .../training/<action> that were answered 2xx."""
        return [call for call in self.calls(action) if call["status"] < 300]

    def calls(self, action: str) -> list[dict]:
        """Recorded requests to .../training/<action>, bodies parsed strictly (NaN/Infinity rejected)."""
        out = []
        for request in list(self.requests):
            if request["path"].endswith(f"/training/{action}"):
                body = json.loads(request["raw"], parse_constant=_reject_constant)
                out.append({**request, "body": body})
        return out


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name} in callback body")


def put_frame(s3, key: str, frame, fmt: str) -> str:
    """Write `frame` to s3://DATA_BUCKET/key in csv / jsonl / parquet; returns the object URI."""
    buffer = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buffer, index=False)
    elif fmt == "jsonl":
        frame.to_json(buffer, orient="records", lines=True, date_format="iso")
    else:
        frame.to_parquet(buffer, index=False)
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=buffer.getvalue())
    return f"s3://{DATA_BUCKET}/{key}"


_counter = iter(range(1, 10**6))


def new_ids() -> tuple[str, str]:
    n = next(_counter)
    return f"model-{os.getpid()}-{n}-{time.time_ns() % 10**6}", f"run-{n}"


def make_spec(model_id: str, run_id: str, model_type: str, ontology: str, storage: list[dict], config: dict,
              version: int = 1) -> dict:
    return {
        "model_id": model_id,
        "run_id": run_id,
        "model_type": model_type,
        "version": version,
        "ontology": {"id": "onto-test", "content": ontology},
        "storage": storage,
        "training_config": config,
    }


def trainer_env(moto_server: str, receiver: CallbackReceiver, spec: dict | None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINER_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "AWS_ENDPOINT_URL": moto_server,
            "TRAINER_MODEL_ID": spec["model_id"] if spec else "model-x",
            "TRAINER_RUN_ID": spec["run_id"] if spec else "run-x",
            "TRAINER_CALLBACK_URL": receiver.url,
            "TRAINER_CALLBACK_TOKEN": TOKEN,
            "TRAINER_ARTIFACT_BUCKET": ARTIFACT_BUCKET,
            "TRAINER_CALLBACK_RETRIES": "6",
            "TRAINER_CALLBACK_BACKOFF": "0.2",
            "TRAINER_CALLBACK_TIMEOUT": "5",
            "TRAINER_PROGRESS_INTERVAL": "0",
            "TRAINER_TORCH_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    if spec is not None:
        env["TRAINER_SPEC"] = json.dumps(spec)
    env.update(extra)
    return env


def start_trainer(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trainer"], env=env, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def run_trainer(env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer"], env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout
    )


def run_many(envs: dict, workers: int = 3, timeout: float = 240) -> dict:
    """Run several trainers at once (each is mostly import time and one core); returns name -> CompletedProcess."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run_trainer, env, timeout) for name, env in envs.items()}
        return {name: future.result() for name, future in futures.items()}


def log_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
