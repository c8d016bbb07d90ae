"""GET model latency while DynamoDB is slow, for `make bench`: bounded, never a hang.

    python -m bench.bench_faults

The whole app runs in process (the Chalice test client) with the stage's default time
budget (chalicelib/config.py: connect 2 s, read 5 s, 2 attempts per AWS call), against a
moto server reached through the fault proxy of the tests (tests/fakes/fault_proxy.py),
which holds every DynamoDB request for a while before forwarding it. Side by side in one
run: no delay, a 2 s delay (inside the read timeout: answered, slowly), and a delay past
the read timeout (503 upstream_unavailable once the retry budget is spent).
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from bench.report import markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
ONTOLOGY = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/s#> .
ex:Reading a owl:Class .
ex:temperature a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
"""
# (label, seconds each DynamoDB request is held, GETs measured)
CASES = [("no delay", 0.0, 30), ("DynamoDB delayed 2 s", 2.0, 10), ("DynamoDB delayed 8 s (past the 5 s read timeout)",
                                                                    8.0, 3)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def measure(client, model_id: str, proxy, hold: float, count: int) -> tuple[list[float], Counter]:
    if hold:
        proxy.inject("delay", service="dynamodb", seconds=hold)
    else:
        proxy.clear()
    times, statuses = [], Counter()
    for _ in range(count):
        start = time.perf_counter()
        response = client.http.get(f"/api/ml-models/{model_id}", headers={"Content-Type": "application/json"})
        times.append(time.perf_counter() - start)
        statuses[response.status_code] += 1
        if response.status_code >= 500 and response.status_code != 503:
            raise RuntimeError(f"GET model answered {response.status_code}: {response.body[:300]!r}")
    proxy.clear()
    return times, statuses


def main() -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sys.path.insert(0, str(ROOT / "tests"))  # the fault proxy lives with the test fakes
    from chalice.test import Client
    from fakes.fault_proxy import FaultProxy

    from chalicelib.config import Settings
    from scripts.local_stack import deploy_data_stores, embedded_aws

    port = _free_port()
    moto = embedded_aws(port)
    proxy = FaultProxy(("127.0.0.1", port)).start()
    rows = []
    try:
        os.environ.update(deploy_data_stores(f"http://127.0.0.1:{port}"))
        os.environ.update({"AWS_ENDPOINT_URL": proxy.url, "AUTH_MODE": "off"})
        for name in ("AWS_CONNECT_TIMEOUT_SECONDS", "AWS_READ_TIMEOUT_SECONDS", "AWS_CALL_MAX_ATTEMPTS"):
            os.environ.pop(name, None)  # the stage defaults are what is measured
        settings = Settings.from_environ()
        budget = settings.aws_max_attempts * (settings.aws_connect_timeout_seconds + settings.aws_read_timeout_seconds)
        from app import app
        from chalicelib import wiring

        wiring.reset()
        with Client(app, stage_name="local") as client:
            headers = {"Content-Type": "application/json"}
            onto = json.loads(client.http.post("/api/ontologies", headers=headers, body=json.dumps(
                {"project_id": "proj-bench-faults", "name": "o", "content": ONTOLOGY})).body)
            model = json.loads(client.http.post("/api/ml-models", headers=headers, body=json.dumps(
                {"project_id": "proj-bench-faults", "ontology_id": onto["id"], "name": "m",
                 "type": "regression"})).body)
            for label, hold, count in CASES:
                times, statuses = measure(client, model["id"], proxy, hold, count)
                answers = ", ".join(f"{n}× {code}" for code, n in sorted(statuses.items()))
                rows.append([label, count, answers, f"{statistics.median(times) * 1000:.0f}",
                             f"{percentile(times, 95) * 1000:.0f}", f"{max(times) * 1000:.0f}"])
                print(f"{label}: {answers}; p50 {statistics.median(times):.2f}s, max {max(times):.2f}s")
        wiring.reset()
    finally:
        proxy.stop()
        moto.stop()
    write_section("bench/bench_faults.py", "GET model with DynamoDB slow (bounded, 503)",
                  "`GET /api/ml-models/{id}` in process (the Chalice test client over the whole app) with the "
                  f"stage's default AWS time budget: connect {settings.aws_connect_timeout_seconds:g} s, read "
                  f"{settings.aws_read_timeout_seconds:g} s, {settings.aws_max_attempts} attempts per call "
                  f"(a call gives up after about {budget:g} s plus backoff). A TCP proxy holds every DynamoDB "
                  "request before forwarding it. GET model reads DynamoDB twice (the access check, then the "
                  "model), so each read pays the delay. A delay inside the read timeout is answered (200, slower); "
                  "one past it is a 503 `upstream_unavailable` with `Retry-After` once the attempts are spent, "
                  "well inside the Lambda's 30 s. Milliseconds.\n\n"
                  + markdown_table(["DynamoDB", "GETs", "answers", "p50 ms", "p95 ms", "max ms"], rows), order=27)
    return 0


if __name__ == "__main__":
    sys.exit(main())
