"""Time from `POST /api/ml-models/train` to `trained`, on the local stack (for `make bench`).

    python -m bench.bench_training

The real local stack as processes (moto server, `chalice local`, the local launcher
starting `python -m trainer`), a 10,000-row CSV in S3, a decision tree. The
clock runs from sending the train request to the first poll that sees `trained`
(polling every 0.1 s), so it includes process start-up, data loading, fitting,
the artifact upload and the callback.
"""
from __future__ import annotations

import io
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime

from bench.report import markdown_table, write_section
from scripts import local_stack

ROWS = 10_000
REPEATS = 3


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base: str, method: str, path: str, body=None) -> dict:
    request = urllib.request.Request(base + path, method=method, headers={"Content-Type": "application/json"},
                                     data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def _seconds_between(a: str, b: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return (datetime.strptime(b, fmt) - datetime.strptime(a, fmt)).total_seconds()


def main() -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import boto3
    from sklearn.datasets import make_classification

    from trainer.ontology import ontology_from_frame

    x, y = make_classification(n_samples=ROWS, n_features=20, n_informative=8, random_state=0)
    import pandas as pd

    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)])
    frame["label"] = y
    moto_port, api_port = _port(), _port()
    moto = local_stack.embedded_aws(moto_port)
    endpoint = f"http://127.0.0.1:{moto_port}"
    api = None
    try:
        data_env = local_stack.deploy_data_stores(endpoint)
        env = local_stack.app_environment(endpoint, api_port, data_env)
        env["TMPDIR"] = tempfile.mkdtemp(prefix="bench-runs-")
        api = local_stack.start_api(api_port, env, log_file=open(os.devnull, "wb"))
        base = f"http://127.0.0.1:{api_port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="bench-training")
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        s3.put_object(Bucket="bench-training", Key="rows/part-0.csv", Body=buffer.getvalue().encode())
        onto = call(base, "POST", "/api/ontologies", {"project_id": "proj-bench", "name": "bench",
                                                      "content": ontology_from_frame(frame, "label", "Row")})
        storage = call(base, "POST", "/api/storage-configs", {"project_id": "proj-bench", "name": "rows",
                                                              "ontology_id": onto["id"],
                                                              "uri": "s3://bench-training/rows/", "format": "csv"})
        rows = []
        for i in range(REPEATS):
            model = call(base, "POST", "/api/ml-models", {"project_id": "proj-bench", "ontology_id": onto["id"],
                                                          "name": f"tree {i}", "type": "decision_tree"})
            start = time.perf_counter()
            call(base, "POST", "/api/ml-models/train", {"model_id": model["id"], "storage_ids": [storage["id"]]})
            while True:
                current = call(base, "GET", f"/api/ml-models/{model['id']}")
                if current["status"] in ("trained", "failed"):
                    break
                time.sleep(0.1)
            total = time.perf_counter() - start
            if current["status"] != "trained":
                raise RuntimeError(f"training failed: {current['metadata']}")
            run = call(base, "GET", f"/api/ml-models/{model['id']}/runs")["runs"][0]
            history = {h["status"]: h["at"] for h in run["status_history"]}
            rows.append([i + 1, f"{total:.2f}", f"{_seconds_between(history['queued'], history['submitted']):.2f}",
                         f"{_seconds_between(history['submitted'], history['succeeded']):.2f}",
                         f"{current['performance_metrics']['accuracy']:.3f}"])
    finally:
        if api is not None:
            local_stack.stop(api)
        moto.stop()
    median = statistics.median(float(r[1]) for r in rows)
    write_section("bench/bench_training.py", "Train request to trained (local stack)",
                  f"A decision tree on {ROWS:,} rows × 20 features (CSV in moto S3), trained through the whole "
                  "local stack: `POST /api/ml-models/train` → local launcher → `python -m trainer` → artifact in "
                  "S3 → complete callback; timed until a poll (every 0.1 s) sees `trained`.\n\n"
                  + markdown_table(["run", "POST /train → trained (s)", "accepted → submitted (s)",
                                    "submitted → succeeded (s)", "test accuracy"], rows)
                  + f"\n\nMedian: **{median:.2f} s**. Most of it is the trainer process: interpreter and "
                  "scikit-learn/pandas imports, reading the CSV, fitting, writing the artifact.", order=35)
    print(f"train → trained median {median:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
