"""Trainer benchmark for `make bench`: wall time and peak memory per model type, vs bare scripts.

    python -m bench.bench_trainer [--sizes 100000,1000000] [--types decision_tree,...]

The data (N rows x 20 features: 18 numeric, 2 categorical; a binary target with a
learnable, partly non-linear relation) is written as one Parquet object to a moto
server S3 in this process. Each measurement is one child process, timed from spawn
to exit, with its own peak RSS (os.wait4 in the small launcher of `bench.child`: a child forked from this
process, which holds moto's objects, would report this process's high-water mark):

- trainer: `python -m trainer` — reads the object from S3, builds features from the
  ontology, fits, evaluates, permutation importance, writes the artifact, reports to a
  local callback receiver;
- bare: `python -m bench.bench_trainer --bare ...` — the same object from S3, an 80/20
  split, the same estimator and settings in a plain scikit-learn pipeline or PyTorch loop,
  accuracy on the test split. Nothing else.

Both pay their imports (the trainer's fixed start per type is `bench/bench_trainer_start.py`'s). At up to
100,000 rows the trainer also runs with `training_config.diagnostics: minimal`, to show what its extras cost.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.child import measure

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-trainer"
MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
NUMERIC, CATEGORICAL, LEVELS = 18, 2, 8
SEED = 42
# Moderate settings so the full run stays around 20 minutes on 2 cores; the same for trainer and bare.
SETTINGS = {
    "decision_tree": {"hyperparameters": {"max_depth": 12}},
    "random_forest": {"max_iterations": 20, "hyperparameters": {"max_depth": 12}},
    "regression": {"max_iterations": 200},
    "neural_network": {"max_iterations": 5, "batch_size": 1024, "learning_rate": 0.001, "early_stopping_rounds": 5},
}
MINIMAL = {"diagnostics": "minimal"}
MINIMAL_UP_TO_ROWS = 100_000
SETTINGS_TEXT = {
    "decision_tree": "max_depth 12",
    "random_forest": "20 trees, max_depth 12",
    "regression": "logistic, max_iter 200",
    "neural_network": "MLP 64-32, 5 epochs, batch 1024, Adam 1e-3",
}


def make_frame(rows: int, seed: int = SEED, relation_seed: int | None = None):
    """`rows` rows drawn with `seed`; the target's relation to the features is drawn with the same generator,
    or with `relation_seed` (so that parts drawn with different seeds share one relation)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    relation = rng if relation_seed is None else np.random.default_rng(relation_seed)
    x = rng.normal(size=(rows, NUMERIC))
    weights = relation.normal(size=NUMERIC)
    cats = rng.integers(0, LEVELS, size=(rows, CATEGORICAL))
    effects = relation.normal(size=(CATEGORICAL, LEVELS))
    score = x @ weights / np.sqrt(NUMERIC) + np.sin(2 * x[:, 0]) + effects[0][cats[:, 0]] + effects[1][cats[:, 1]]
    score += rng.normal(scale=0.5, size=rows)
    frame = pd.DataFrame(x, columns=[f"num_{i:02d}" for i in range(NUMERIC)])
    for j in range(CATEGORICAL):
        frame[f"cat_{j}"] = pd.Series([f"level_{v}" for v in range(LEVELS)], dtype=object).to_numpy()[cats[:, j]]
    frame["label"] = (score > np.median(score)).astype("int64")
    return frame


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def trainer_environment(env: dict, model_id: str, model_type: str, uri: str, fmt: str, ontology: str,
                        callback_url: str, settings: dict, bucket: str = BUCKET) -> dict:
    """The environment of one `python -m trainer` process training `model_type` on the data at `uri`."""
    spec = {
        "model_id": model_id, "run_id": "run-bench", "model_type": model_type, "version": 1,
        "ontology": {"id": "onto-bench", "content": ontology},
        "storage": [{"id": "st", "uri": uri, "format": fmt}],
        "training_config": {"train_test_split": 0.8, "random_seed": SEED, **settings},
    }
    return {
        **env, "TRAINER_MODEL_ID": model_id, "TRAINER_RUN_ID": "run-bench", "TRAINER_CALLBACK_URL": callback_url,
        "TRAINER_CALLBACK_TOKEN": "bench", "TRAINER_ARTIFACT_BUCKET": bucket, "TRAINER_SPEC": json.dumps(spec),
    }


def trainer_run(s3, env: dict, model_type: str, rows: int, uri: str, ontology: str, callback_url: str,
                extra: dict | None = None) -> dict:
    model_id = f"bench-{model_type}-{rows}-{time.time_ns()}"
    child_env = trainer_environment(env, model_id, model_type, uri, "parquet", ontology, callback_url,
                                    {**SETTINGS[model_type], **(extra or {})})
    result = measure([sys.executable, "-m", "trainer"], child_env)
    if result["returncode"] == 0:
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"models/{model_id}/v1/manifest.json")["Body"].read())
        result["accuracy"] = manifest["performance_metrics"]["accuracy"]
    return result


def bare_run(env: dict, model_type: str, uri: str) -> dict:
    result = measure([sys.executable, "-m", "bench.bench_trainer", "--bare", model_type, "--uri", uri], env)
    result["accuracy"] = (result.get("output") or {}).get("accuracy")
    return result


# ---- the bare scripts (run in the child) ---------------------------------------------------------------------------

def bare(model_type: str, uri: str) -> None:
    """What one would write by hand: read, split 80/20, fit, score. Prints {"accuracy": ...}."""
    import boto3
    import pandas as pd
    from sklearn.model_selection import train_test_split

    bucket, _, key = uri[5:].partition("/")
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    frame = pd.read_parquet(io.BytesIO(body))
    y = frame.pop("label").to_numpy()
    train_x, test_x, train_y, test_y = train_test_split(frame, y, train_size=0.8, random_state=SEED, stratify=y)
    if model_type == "neural_network":
        accuracy = _bare_torch(train_x, train_y, test_x, test_y)
    else:
        accuracy = _bare_sklearn(model_type, train_x, train_y, test_x, test_y)
    print(json.dumps({"accuracy": accuracy}))


def _encoder(scale: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f"num_{i:02d}" for i in range(NUMERIC)]
    categorical = [f"cat_{j}" for j in range(CATEGORICAL)]
    return ColumnTransformer(
        [("num", StandardScaler() if scale else "passthrough", numeric),
         ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)]
    )


def _bare_sklearn(model_type, train_x, train_y, test_x, test_y) -> float:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.tree import DecisionTreeClassifier

    jobs = max(1, min(4, len(os.sched_getaffinity(0))))
    estimator = {
        "decision_tree": lambda: DecisionTreeClassifier(max_depth=12, random_state=SEED),
        "random_forest": lambda: RandomForestClassifier(n_estimators=20, max_depth=12, random_state=SEED, n_jobs=jobs),
        "regression": lambda: LogisticRegression(max_iter=200, random_state=SEED),
    }[model_type]()
    model = make_pipeline(_encoder(scale=model_type == "regression"), estimator).fit(train_x, train_y)
    return float((model.predict(test_x) == test_y).mean())


def _bare_torch(train_x, train_y, test_x, test_y) -> float:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(SEED)
    torch.set_num_threads(max(1, min(4, len(os.sched_getaffinity(0)))))
    encoder = _encoder(scale=True)
    xs = torch.tensor(encoder.fit_transform(train_x), dtype=torch.float32)
    xt = torch.tensor(encoder.transform(test_x), dtype=torch.float32)
    net = nn.Sequential(nn.Linear(xs.shape[1], 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(xs, torch.tensor(train_y)), batch_size=1024, shuffle=True)
    for _ in range(5):
        for xb, yb in loader:
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(xb), yb).backward()
            optimiser.step()
    with torch.no_grad():
        predicted = net(xt).argmax(dim=1).numpy()
    return float((predicted == test_y).mean())


# ---- orchestration ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def trainer_world(bucket: str, drop_env: tuple[str, ...] = ("TRAINER_",)) -> Iterator[tuple[Any, dict, str]]:
    """A moto server with `bucket`, and a callback receiver that answers 200: (s3 client, the environment of a
    trainer process against them, the callback URL). Both are stopped on exit."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    receiver = ThreadingHTTPServer(("127.0.0.1", free_port()), _Ok)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(drop_env)},
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(ROOT),
    }
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")
        s3.create_bucket(Bucket=bucket)
        yield s3, env, f"http://127.0.0.1:{receiver.server_port}"
    finally:
        receiver.shutdown()
        server.stop()


def emulator_read_cost(s3, key: str) -> dict:
    """What reading the object costs on the emulator, side by side: one GET of the whole object (the bare
    script's read) and the ranged GETs the trainer makes of a Parquet object over `RANGED_READ_ABOVE_BYTES`
    (one per column chunk, `trainer.stream.column_chunk_ends`), one after the other. moto answers a ranged
    GET by materialising the whole object and slicing it, so each range costs about as much as the whole
    object; S3 serves a range at the cost of its bytes."""
    import pyarrow.parquet as pq

    from trainer.stream import RANGED_READ_ABOVE_BYTES, column_chunk_ends

    started = time.perf_counter()
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    whole = time.perf_counter() - started
    if len(body) <= RANGED_READ_ABOVE_BYTES:
        return {"whole_s": whole, "ranges": 0, "ranged_s": 0.0}
    ends = sorted(column_chunk_ends(pq.ParquetFile(io.BytesIO(body)).metadata))
    starts = [4] + ends[:-1]  # after the file's magic bytes: the chunks are contiguous
    del body
    started = time.perf_counter()
    for start, end in zip(starts, ends, strict=True):
        s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={start}-{end - 1}")["Body"].read()
    return {"whole_s": whole, "ranges": len(ends), "ranged_s": time.perf_counter() - started}


def run(sizes: list[int], types: list[str]) -> tuple[list[list[object]], dict[int, dict]]:
    from trainer.ontology import ontology_from_frame

    rows_out, reads = [], {}
    with trainer_world(BUCKET) as (s3, env, callback_url):
        for size in sizes:
            frame = make_frame(size)
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            key = f"data/{size}/part-0.parquet"
            s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
            uri = f"s3://{BUCKET}/{key}"
            ontology = ontology_from_frame(frame, "label", "BenchRow")
            megabytes = len(buffer.getvalue()) / 2**20
            del frame, buffer
            reads[size] = emulator_read_cost(s3, key)
            for model_type in types:
                ours = trainer_run(s3, env, model_type, size, uri, ontology, callback_url)
                base = bare_run(env, model_type, uri)
                # Where the extras weigh most (small data), the same run with training_config.diagnostics minimal.
                lean = (trainer_run(s3, env, model_type, size, uri, ontology, callback_url, MINIMAL)
                        if size <= MINIMAL_UP_TO_ROWS else None)
                rows_out.append(_row(model_type, size, megabytes, ours, base, lean))
                print(json.dumps({"type": model_type, "rows": size, "trainer": ours, "bare": base, "minimal": lean},
                                 default=str)[:2000], file=sys.stderr, flush=True)
    return rows_out, reads


def _row(model_type: str, size: int, megabytes: float, ours: dict, base: dict, lean: dict | None) -> list[object]:
    def fmt(value, spec):
        return "failed" if value is None else format(value, spec)

    ok = ours["returncode"] == 0 and base["returncode"] == 0
    lean_ok = ok and lean is not None and lean["returncode"] == 0
    if lean is None:
        minimal = ["-", "-"]
    elif lean_ok:
        minimal = [f"{lean['wall']:.1f}", f"{lean['wall'] / base['wall']:.2f}"]
    else:
        minimal = ["failed", "-"]
    return [
        model_type, f"{size:,}", f"{megabytes:.0f}", SETTINGS_TEXT[model_type],
        fmt(ours["wall"], ".1f") if ours["returncode"] == 0 else "failed", fmt(ours["peak_mib"], ".0f"),
        fmt(base["wall"], ".1f") if base["returncode"] == 0 else "failed", fmt(base["peak_mib"], ".0f"),
        f"{ours['wall'] / base['wall']:.2f}" if ok else "-",
        f"{ours['peak_mib'] / base['peak_mib']:.2f}" if ok else "-",
        fmt(ours.get("accuracy"), ".3f"), fmt(base.get("accuracy"), ".3f"), *minimal,
    ]


def report(rows: list[list[object]], reads: dict[int, dict] | None = None) -> str:
    from bench.report import markdown_table

    table = markdown_table(
        ["type", "rows", "Parquet MiB", "settings", "trainer s", "trainer peak MiB", "bare s", "bare peak MiB",
         "time ratio", "memory ratio", "trainer accuracy", "bare accuracy", "trainer s, diagnostics minimal",
         "time ratio, minimal"],
        rows,
    )
    return (
        "Binary classification, 20 features (18 numeric, 2 categorical with 8 levels), one Parquet object "
        "in moto server S3. *trainer* is `python -m trainer` end to end (S3 read, ontology → features, split, "
        "fit, test metrics, permutation importance, monitoring reference, artifact upload, callbacks); *bare* is a "
        "hand-written scikit-learn / PyTorch script on the same object (S3 read, 80/20 split, fit, test "
        "accuracy). Both are child processes timed from spawn to exit, imports included; peak memory is the "
        "child's own max RSS (`os.wait4` in a small launcher, `bench.child`: a child forked from the "
        "benchmark's process starts at that process's high-water mark). The trainer fits on 72% of the rows "
        "(10% of the train split is held out for validation loss) where the bare script fits on 80%; what it "
        "does beyond the bare script is fixed "
        "start (its imports: \"Trainer: fixed start per model type\"), the forest's 10 staged fits for its "
        "learning curve, the network's validation loss every epoch, permutation importance (2,000 rows), the "
        "monitoring reference (up to 200,000 rows predicted) and the artifact. *diagnostics minimal* is the same "
        "run with `training_config.diagnostics: minimal` (no permutation importance; the forest fitted in one "
        f"go), measured up to {MINIMAL_UP_TO_ROWS:,} rows, where those extras weigh most.\n\n" + table
        + _read_cost_note(reads or {})
    )


def _read_cost_note(reads: dict[int, dict]) -> str:
    ranged = {size: cost for size, cost in reads.items() if cost["ranges"]}
    if not ranged:
        return ""
    parts = [f"{size:,} rows: one GET of the whole object {cost['whole_s']:.2f} s, the trainer's "
             f"{cost['ranges']} ranged GETs of it {cost['ranged_s']:.2f} s" for size, cost in sorted(ranged.items())]
    return ("\n\n**The emulator's price of a ranged read**, measured in this run (`emulator_read_cost`): "
            + "; ".join(parts) + ". The trainer reads a Parquet part over 32 MiB with one ranged GET per column "
            "chunk (bounded memory, and parallel reads on S3); moto materialises the whole object for each range, "
            "so on the emulator the trainer pays for the object once per column chunk and the bare script once. "
            "That difference is in the trainer's wall time above.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--types", default=",".join(MODEL_TYPES))
    parser.add_argument("--bare", choices=MODEL_TYPES, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    parser.add_argument("--note", default="", help="a paragraph on the run (the targets), appended to the section")
    args = parser.parse_args(argv)
    if args.bare:
        bare(args.bare, args.uri)
        return
    rows, reads = run([int(s) for s in args.sizes.split(",")], args.types.split(","))
    body = report(rows, reads) + (f"\n\n{args.note}" if args.note else "")
    if args.no_write:
        print(body)
    else:
        from bench.report import write_section

        write_section(name="bench/bench_trainer.py", title="Trainer: wall time and peak memory", body=body, order=30)


if __name__ == "__main__":
    main()
