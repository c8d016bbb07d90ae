"""Predictions benchmark for `make bench`: batch memory and speed, `/predict` latency, the predictor's
cold start, and the size of the predictor's dependencies (why a container image, not a zip).

    python -m bench.bench_predictions [--sizes 100000,1000000] [--types decision_tree,...] [--repeats 3]
                                      [--requests 50] [--skip batch,online,cold,sizes] [--no-write]

Everything runs on the real local stack (scripts/local_stack.py helpers, on free ports): moto server in
this process with the data stores deployed from infra/, `chalice local` with AUTH off, the predictor's
local twin (`scripts.local_predictor`, the Lambda Invoke API in front of `trainer.predictor.handler`).

1. One model per type is trained once through the stack (`POST /api/ml-models/train`: the local
   launcher runs the real `python -m trainer`) on 5,000 rows of bench_trainer's data.
2. Batch: `python -m trainer.batch_predict` as a child process per run, with the job's environment
   contract (a spec JSON in S3, a local callback receiver), on Parquet inputs of the training
   features plus a `row_id` passthrough column, each size `--repeats` times; wall time from spawn to
   exit and the child's own peak RSS (`os.wait4` in a small launcher, see `LAUNCHER`). One more child
   per type only loads the model (the job's imports and the artifact): the floor every run pays.
3. `/predict` warm: p50/p95 of HTTP requests to `chalice local` (API → Lambda Invoke → twin →
   handler), interleaved with the same payload sent straight to the twin (boto3 `lambda.invoke`),
   after a warm-up request that loads the model into the twin's cache.
4. Cold start: a fresh interpreter per type (`--cold`): spawn → `import trainer.predictor` → first
   invocation (S3 read, sha256 check, skops/torch load, predict) → warm invocations.
5. The installed size of the predictor's runtime dependencies, from this venv's site-packages.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.bench_trainer import free_port, make_frame
from bench.child import measure

ROOT = Path(__file__).resolve().parent.parent
MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
TRAIN_ROWS = 5000
QUICK_CONFIG = {"train_test_split": 0.8, "random_seed": 42, "max_iterations": 20, "early_stopping_rounds": 5,
                "batch_size": 256, "learning_rate": 0.01}
# Parquet row groups of the batch inputs (pyarrow's default would make the 1M-row file one row group).
ROW_GROUP_ROWS = 100_000
INSTANCE_COUNTS = (1, 100)
ZIP_LIMIT_MB = 250  # Lambda: a zip package, unzipped, layers included
# What a zip-packaged predictor would have to carry (trainer/requirements.txt's model libraries).
PREDICTOR_ROOTS = ("torch", "scikit-learn", "numpy", "pandas", "skops")
MEMORY_TARGET = 1.3


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


# ---- the local stack ------------------------------------------------------------------------------------------


@dataclass
class Stack:
    endpoint: str
    env: dict[str, str]  # the app's data-store settings (tables, buckets)
    api: str
    predictor: str
    function_name: str

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def lambda_client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("lambda", endpoint_url=self.predictor, region_name="us-east-1",
                            config=Config(retries={"total_max_attempts": 1}, read_timeout=60))

    def request(self, method: str, path: str, body=None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        return status, (json.loads(payload) if payload else None)

    def post(self, path: str, body) -> object:
        status, answer = self.request("POST", path, body)
        if status >= 300:
            raise RuntimeError(f"POST {path}: {status} {answer}")
        return answer


@contextlib.contextmanager
def local_stack(workdir: Path):
    from scripts import local_stack as ls
    from scripts.local_predictor import DEFAULT_FUNCTION_NAME

    port = free_port()
    moto = ls.embedded_aws(port)
    endpoint = f"http://127.0.0.1:{port}"
    procs = []
    log = (workdir / "stack.log").open("wb")
    try:
        data_env = ls.deploy_data_stores(endpoint)
        api_port, predictor_port = free_port(), free_port()
        env = ls.app_environment(endpoint, api_port, data_env, None, ls.auth_environment("off"),
                                 predictor_port=predictor_port)
        env.update({"LOCAL_MAX_CONCURRENT_JOBS": "2", "TRAINER_PROGRESS_INTERVAL": "0", "TMPDIR": str(workdir),
                    "LOCAL_RUN_LOG_DIR": str(workdir / "runs")})
        procs.append(ls.start_predictor(predictor_port, env, log_file=log))
        procs.append(ls.start_api(api_port, env, log_file=log))
        yield Stack(endpoint, data_env, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{predictor_port}",
                    DEFAULT_FUNCTION_NAME)
    finally:
        for proc in reversed(procs):
            ls.stop(proc)
        log.close()
        moto.stop()


def features(rows: int, seed: int):
    """bench_trainer's data without its target."""
    return make_frame(rows, seed=seed).drop(columns=["label"])


def train_models(stack: Stack, types: list[str]) -> tuple[dict[str, dict], dict[str, float]]:
    """One trained model per type, through the API and the local launcher; (type -> model, type -> seconds
    from the train request to a poll seeing it trained)."""
    from trainer.ontology import ontology_from_frame

    project = f"proj-bench-{time.time_ns() % 10**8}"
    bucket = stack.env["DATA_BUCKETS"].split(",")[0]
    frame = make_frame(TRAIN_ROWS)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    stack.s3().put_object(Bucket=bucket, Key=f"{project}/train/part-0.parquet", Body=buffer.getvalue())
    onto = stack.post("/api/ontologies", {"project_id": project, "name": "bench",
                                          "content": ontology_from_frame(frame, "label", "BenchRow")})
    storage = stack.post("/api/storage-configs", {"project_id": project, "name": "train", "ontology_id": onto["id"],
                                                  "uri": f"s3://{bucket}/{project}/train/", "format": "parquet"})
    ids, started = {}, time.monotonic()
    for model_type in types:
        model = stack.post("/api/ml-models", {"project_id": project, "ontology_id": onto["id"], "name": model_type,
                                              "type": model_type, "training_config": QUICK_CONFIG})
        stack.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": [storage["id"]]})
        ids[model_type] = model["id"]
    models, seconds, deadline = {}, {}, time.monotonic() + 300
    while len(models) < len(ids) and time.monotonic() < deadline:
        for model_type, model_id in ids.items():
            if model_type in models:
                continue
            _, model = stack.request("GET", f"/api/ml-models/{model_id}")
            if model["status"] == "failed":
                raise RuntimeError(f"training {model_type} failed: {model['metadata']}")
            if model["status"] == "trained":
                models[model_type], seconds[model_type] = model, time.monotonic() - started
        time.sleep(0.5)
    if len(models) < len(ids):
        raise RuntimeError(f"not trained within 300 s: {sorted(set(ids) - set(models))}")
    return {t: models[t] for t in ids}, seconds


# ---- 2. batch -------------------------------------------------------------------------------------------------


class CallbackRecorder(BaseHTTPRequestHandler):
    """Answers every callback 200 and keeps (path, body): the job's progress/complete/fail reports."""

    calls: list[tuple[str, dict]] = []

    def do_POST(self):  # noqa: N802 - http.server naming
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"unreadable": raw[:200].decode(errors="replace")}
        CallbackRecorder.calls.append((self.path, body))
        answer = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def put_batch_input(s3, bucket: str, key: str, rows: int) -> float:
    """A Parquet input of `rows` rows (the training features and a `row_id`); its size in MiB."""
    frame = features(rows, seed=7)
    frame.insert(0, "row_id", [f"r-{i:07d}" for i in range(rows)])
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, row_group_size=ROW_GROUP_ROWS)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return len(buffer.getvalue()) / 2**20


def batch_env(stack: Stack, model: dict, job_id: str, spec_uri: str, callback_url: str) -> dict[str, str]:
    """The environment the API hands a prediction job (trainer_contract.trainer_environment), locally."""
    from chalicelib import trainer_contract as contract

    plain = contract.trainer_environment(
        model_id=model["id"], run_id=job_id, callback_url=callback_url, spec_uri=spec_uri,
        artifact_bucket=stack.env["ARTIFACT_BUCKET"], artifact_prefix="models", region="us-east-1",
        endpoint_url=stack.endpoint)
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRAINER_")}
    return {**base, **plain, contract.CALLBACK_TOKEN: "bench", "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench", "PYTHONPATH": str(ROOT), "TRAINER_PROGRESS_INTERVAL": "0"}


def batch_run(stack: Stack, model: dict, input_uri: str, callback_url: str) -> dict:
    s3 = stack.s3()
    bucket = stack.env["ARTIFACT_BUCKET"]
    job_id = f"pred-bench-{time.time_ns()}"
    output_uri = f"s3://{bucket}/predictions/{model['id']}/{job_id}/"
    spec = {"kind": "prediction", "prediction_id": job_id, "model_id": model["id"], "version": model["version"],
            "artifact_uri": model["model_artifact_path"], "inputs": [{"id": "in", "uri": input_uri,
                                                                      "format": "parquet"}],
            "passthrough_columns": ["row_id"], "output_format": "parquet", "output_uri": output_uri}
    key = f"runs/{model['id']}/{job_id}/spec.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(spec).encode())
    CallbackRecorder.calls.clear()
    result = measure([sys.executable, "-m", "trainer.batch_predict"],
                     batch_env(stack, model, job_id, f"s3://{bucket}/{key}", callback_url))
    result["callbacks"] = [path.rsplit("/", 1)[-1] for path, _ in CallbackRecorder.calls]
    done = [body for path, body in CallbackRecorder.calls if path.endswith("/complete")]
    if result["returncode"] == 0 and done:
        success = json.loads(s3.get_object(Bucket=bucket, Key=f"predictions/{model['id']}/{job_id}/_SUCCESS")
                             ["Body"].read())
        result["rows_out"] = success.get("rows")
        result["parts"] = len(success.get("parts", []))
    return result


def load_only_run(stack: Stack, model: dict) -> dict:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRAINER_")}, "PYTHONPATH": str(ROOT),
           "AWS_ENDPOINT_URL": stack.endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    return measure([sys.executable, "-m", "bench.bench_predictions", "--load-only", model["model_artifact_path"]],
                   env)


def load_only(uri: str) -> None:
    """The child of `load_only_run`: the batch job's imports and the model loaded, then exit."""
    import pyarrow.parquet  # noqa: F401 - the job's imports are part of the floor

    import trainer.batch_predict  # noqa: F401
    import trainer.predict_input  # noqa: F401
    import trainer.predict_output  # noqa: F401
    import trainer.predict_rows  # noqa: F401
    from trainer.loader import load_model

    load_model(uri)
    print(json.dumps({"loaded": uri}))


def batch_benchmark(stack: Stack, models: dict[str, dict], sizes: list[int], repeats: int) -> list[dict]:
    """Per type: the floor, and `repeats` runs of each size (interleaved, so drifting load hits every size)."""
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), CallbackRecorder)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    callback_url = f"http://127.0.0.1:{receiver.server_port}"
    bucket = stack.env["DATA_BUCKETS"].split(",")[0]
    s3 = stack.s3()
    inputs = {}
    try:
        for size in sizes:
            key = f"bench-batch/{size}/part-0.parquet"
            inputs[size] = (f"s3://{bucket}/{key}", put_batch_input(s3, bucket, key, size))
        out = []
        for model_type, model in models.items():
            floor = load_only_run(stack, model)
            runs: dict[int, list[dict]] = {size: [] for size in sizes}
            for _ in range(repeats):
                for size in sizes:
                    runs[size].append(batch_run(stack, model, inputs[size][0], callback_url))
            out.append({"type": model_type, "floor": floor, "runs": runs,
                        "mib": {size: mib for size, (_, mib) in inputs.items()}})
            print(json.dumps({"type": model_type, "floor": floor["peak_mib"],
                              "peaks": {s: [round(r["peak_mib"]) for r in rs] for s, rs in runs.items()},
                              "walls": {s: [round(r["wall"], 1) for r in rs] for s, rs in runs.items()},
                              "failed": [r.get("error", "")[-500:] for rs in runs.values() for r in rs
                                         if not _complete(r)]}), file=sys.stderr, flush=True)
    finally:
        receiver.shutdown()
    return out


def _complete(run: dict) -> bool:
    return run["returncode"] == 0 and run.get("rows_out") is not None


# ---- 3. /predict warm -----------------------------------------------------------------------------------------


def instances(count: int) -> list[dict]:
    return json.loads(features(count, seed=11).to_json(orient="records"))


def online_benchmark(stack: Stack, models: dict[str, dict], requests: int) -> list[dict]:
    client = stack.lambda_client()
    out = []
    for model_type, model in models.items():
        for count in INSTANCE_COUNTS:
            rows = instances(count)
            path = f"/api/ml-models/{model['id']}/predict"
            event = json.dumps({"model_id": model["id"], "version": model["version"],
                                "artifact_uri": model["model_artifact_path"], "instances": rows}).encode()
            stack.post(path, {"instances": rows})  # warm-up: the twin loads the version into its cache
            api, direct = [], []
            for _ in range(requests):  # interleaved, so load on the machine hits both alike
                started = time.perf_counter()
                status, answer = stack.request("POST", path, {"instances": rows})
                api.append((time.perf_counter() - started) * 1000)
                if status != 200 or len(answer["predictions"]) != count:
                    raise RuntimeError(f"/predict {model_type}: {status} {str(answer)[:300]}")
                started = time.perf_counter()
                reply = client.invoke(FunctionName=stack.function_name, Payload=event)
                payload = json.loads(reply["Payload"].read())
                direct.append((time.perf_counter() - started) * 1000)
                if "FunctionError" in reply or "error" in payload:
                    raise RuntimeError(f"invoke {model_type}: {payload}")
            out.append({"type": model_type, "instances": count, "api": api, "direct": direct})
    return out


# ---- 4. cold start --------------------------------------------------------------------------------------------


def cold_benchmark(stack: Stack, models: dict[str, dict]) -> list[dict]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRAINER_")}, "PYTHONPATH": str(ROOT),
           "AWS_ENDPOINT_URL": stack.endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    rows = json.dumps(instances(1))  # made here: the child must not import numpy or pandas before its first call
    out = []
    for model_type, model in models.items():
        spawned = time.time()
        result = measure([sys.executable, "-m", "bench.bench_predictions", "--cold", model["model_artifact_path"],
                          "--spawned", repr(spawned), "--instances", rows], env)
        if result["returncode"] != 0 or "output" not in result:
            raise RuntimeError(f"cold start {model_type}: {result.get('error')}")
        out.append({"type": model_type, **result["output"], "peak_mib": result["peak_mib"]})
    return out


def cold(uri: str, spawned: float, rows: list[dict]) -> None:
    """The child of `cold_benchmark`: what a fresh predictor pays before and at its first answer."""
    started = time.time()
    heavy = ("numpy", "pandas", "sklearn", "torch")
    if any(name in sys.modules for name in heavy):
        raise RuntimeError("a heavy library was imported before the handler: the cold start would be understated")
    from trainer import predictor

    ready = time.time()
    loads = []

    def timed_load(artifact: str):
        begun = time.perf_counter()
        try:
            return predictor._load_from_s3(artifact)
        finally:
            loads.append(time.perf_counter() - begun)

    models = predictor.ModelCache(load=timed_load)
    event = {"model_id": "bench", "version": 1, "artifact_uri": uri, "instances": rows}
    first_started = time.perf_counter()
    answer = predictor.handle(event, models)
    first = time.perf_counter() - first_started
    if "error" in answer:
        raise RuntimeError(answer["error"])
    answered = time.time()
    warm = []
    for _ in range(20):
        begun = time.perf_counter()
        predictor.handle(event, models)
        warm.append(time.perf_counter() - begun)
    print(json.dumps({"interpreter_s": started - spawned, "import_s": ready - started, "first_s": first,
                      "load_s": loads[0], "spawn_to_answer_s": answered - spawned,
                      "warm_ms": statistics.median(warm) * 1000}))


# ---- 5. dependency sizes --------------------------------------------------------------------------------------


def _dist_size(dist) -> tuple[int, int]:
    """(bytes of every installed file of `dist`, bytes without compiled .pyc)."""
    total = without_pyc = 0
    for file in dist.files or []:
        path = Path(dist.locate_file(file))
        if not path.is_file():
            continue
        size = path.stat().st_size
        total += size
        if path.suffix != ".pyc":
            without_pyc += size
    return total, without_pyc


def dependency_sizes(roots: tuple[str, ...] = PREDICTOR_ROOTS) -> list[tuple[str, str, int, int, bool]]:
    """(name, version, bytes, bytes without .pyc, is a root) for `roots` and everything they require."""
    import importlib.metadata as md

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, tuple[str, str, int, int, bool]] = {}
    pending = list(roots)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        total, without_pyc = _dist_size(dist)
        seen[name] = (dist.metadata["Name"], dist.version, total, without_pyc, name in map(canonicalize_name, roots))
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(seen.values(), key=lambda row: -row[2])


def onnx_listing() -> dict[str, str]:
    """What the machine's PyPI listing says of onnxruntime / skl2onnx (name -> version); it has no sizes."""
    listing = Path("/work/.library/env/packages/pypi.tsv")
    found = {}
    if listing.exists():
        with listing.open() as handle:
            for line in handle:
                name, _, rest = line.partition("\t")
                if name in ("onnxruntime", "skl2onnx"):
                    found[name] = rest.split("\t", 1)[0]
    return found


# ---- report ---------------------------------------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f}"


def batch_row(item: dict, sizes: list[int]) -> tuple[list[str], float]:
    """One type's cells, and its ratio of median peaks (largest size / smallest)."""
    small, large = min(sizes), max(sizes)
    runs = item["runs"]
    if not all(_complete(r) and r["rows_out"] == size for size in sizes for r in runs[size]):
        return [item["type"], "failed (see the benchmark's stderr)"], float("nan")
    peak = {size: statistics.median(r["peak_mib"] for r in runs[size]) for size in sizes}
    wall = {size: statistics.median(r["wall"] for r in runs[size]) for size in sizes}
    cells = [item["type"], f"{item['floor']['peak_mib']:.0f}"]
    for size in sizes:
        peaks = [r["peak_mib"] for r in runs[size]]
        cells += [f"{peak[size]:.0f} ({min(peaks):.0f}–{max(peaks):.0f})", f"{wall[size]:.1f}"]
    ratio = peak[large] / peak[small]
    worst = max(r["peak_mib"] for r in runs[large]) / min(r["peak_mib"] for r in runs[small])
    extra = wall[large] - wall[small]
    cells += [f"{large / wall[large]:,.0f}", f"{(large - small) / extra:,.0f}" if extra > 0 else "-",
              f"**{ratio:.2f}×**", f"{worst:.2f}×",
              " → ".join(f"{peak[size] - item['floor']['peak_mib']:.0f}" for size in (small, large))]
    return cells, ratio


def batch_table(results: list[dict], sizes: list[int]) -> tuple[str, list[str]]:
    """The batch table, and the types over MEMORY_TARGET (or failed)."""
    from bench.report import markdown_table

    small, large = min(sizes), max(sizes)
    rows, over = [], []
    for item in results:
        cells, ratio = batch_row(item, sizes)
        rows.append(cells)
        if not ratio <= MEMORY_TARGET:  # NaN (a failed run) counts as over
            over.append(item["type"])
    headers = ["type", "floor: peak MiB"]
    for size in sizes:
        headers += [f"{size:,} rows: peak MiB, median (min–max)", "s"]
    headers += [f"rows/s at {large:,}", f"rows/s, marginal {small:,} → {large:,}",
                f"peak {large:,} / {small:,} (medians)", "worst (max / min)", "peak above the floor, MiB"]
    return markdown_table(headers, rows), over


def report(batch: list[dict], sizes: list[int], online: list[dict], colds: list[dict], deps: list[tuple],
           requests: int, trained: dict[str, float], load: tuple[float, float], wall: float) -> str:
    parts = [
        "Everything on the real local stack on free ports: moto server in the benchmark's process (data "
        "stores deployed from infra/; one HTTP round trip per AWS call), `chalice local` with AUTH off, and the "
        "predictor's local twin (`scripts.local_predictor`: the Lambda Invoke API in front of "
        "`trainer.predictor.handler`). One model per type was trained once through the API (the local launcher "
        f"runs `python -m trainer`) on {TRAIN_ROWS:,} rows of the trainer benchmark's data (20 features: 18 "
        f"numeric, 2 categorical with 8 levels; binary target) with `{json.dumps(QUICK_CONFIG)}`; from train "
        f"request to trained: {', '.join(f'{t} {s:.0f} s' for t, s in trained.items())} (all requested at "
        "once; the launcher runs two at a time)."]
    if batch:
        parts += batch_section(batch, sizes)
    if online:
        parts += online_section(online, requests)
    if colds:
        parts += cold_section(colds)
    if deps:
        parts += dependency_section(deps, onnx_listing())
    parts.append(
        f"Machine notes: other sessions shared the 2 cores (load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end); the whole benchmark took {wall:.0f} s.")
    return "\n\n".join(parts)


def batch_section(batch: list[dict], sizes: list[int]) -> list[str]:
    from trainer.predict_spec import DEFAULT_BATCH_ROWS

    table, over = batch_table(batch, sizes)
    mib = ", ".join(f"{s:,} rows: {m:.0f} MiB" for s, m in batch[0]["mib"].items())
    repeats = len(batch[0]["runs"][sizes[0]])
    parts = [
        "### Batch predictions: peak memory and speed vs input size",
        "`python -m trainer.batch_predict` as a child process per run, given the environment the API hands a "
        "prediction job (TRAINER_* variables; a spec JSON in S3 naming the artifact, the input, "
        "`passthrough_columns: [\"row_id\"]`, Parquet output; the default TRAINER_PREDICT_BATCH_ROWS, "
        f"{DEFAULT_BATCH_ROWS:,}) and a local callback receiver. Inputs: one Parquet object of the training "
        f"features plus a string `row_id`, in row groups of {ROW_GROUP_ROWS:,} rows ({mib}). {repeats} runs per "
        "type and size, interleaved. Wall time is spawn to exit (imports and model load included, hence the "
        "marginal rate as well: the extra rows over the extra seconds). Peak memory is the child's max RSS "
        "(`os.wait4` in a small launcher process: Linux carries the high-water mark of the process that forks "
        "a child into the child's, and the benchmark's own process holds moto's objects). *Floor*: a child that "
        "only does the job's imports and loads the model. Every run wrote all its rows (counted in `_SUCCESS`) "
        f"and reported complete. Target: peak RSS at {max(sizes):,} rows / at {min(sizes):,} rows ≤ "
        f"{MEMORY_TARGET}×.",
        table,
    ]
    if over:
        parts.append(f"**Over the target:** {', '.join(over)}.")
    return parts


def online_section(online: list[dict], requests: int) -> list[str]:
    from bench.report import markdown_table

    rows = [[o["type"], o["instances"], f"{statistics.median(o['api']):.1f}", f"{percentile(o['api'], 95):.1f}",
             f"{statistics.median(o['direct']):.1f}", f"{percentile(o['direct'], 95):.1f}",
             f"{statistics.median(o['api']) - statistics.median(o['direct']):.1f}"] for o in online]
    return [
        "### `POST /api/ml-models/{id}/predict`, warm",
        f"{requests} requests per row after one warm-up request (which loads the version into the twin's cache). "
        "*API*: an HTTP request to `chalice local` (the access check and version lookup in DynamoDB, then "
        "`chalicelib/adapters/predictor.py` invokes the twin with boto3's Lambda client). *Invoke*: the same "
        "event sent straight to the twin with boto3 `lambda.invoke`, interleaved request by request. Instances "
        "are rows of the training features as JSON. Milliseconds.",
        markdown_table(["type", "instances", "API p50", "API p95", "Invoke p50", "Invoke p95", "API share, p50"],
                       rows),
    ]


def cold_section(colds: list[dict]) -> list[str]:
    from bench.report import markdown_table

    rows = [[c["type"], f"{c['interpreter_s'] + c['import_s']:.2f}", f"{c['load_s']:.2f}",
             f"{(c['first_s'] - c['load_s']) * 1000:.0f}", f"**{c['spawn_to_answer_s']:.2f}**",
             f"{c['warm_ms']:.1f}", f"{c['peak_mib']:.0f}"] for c in colds]
    return [
        "### Predictor cold start",
        "One fresh interpreter per type (`python -m bench.bench_predictions --cold URI`): spawn, `import "
        "trainer.predictor` (what the Lambda runtime does at init), then the first invocation of "
        "`trainer.predictor.handle` with one instance: the load (the loader's imports of scikit-learn, skops "
        "and torch, the artifact read from S3, sha256-checked and deserialised) and the first prediction; then "
        "20 warm invocations of the same event (their median). Not included: what Lambda adds to a container "
        "image's cold start (fetching the image, starting the runtime interface client), which this machine "
        "cannot show.",
        markdown_table(["type", "spawn → handler imported, s", "first invocation: load, s",
                        "first invocation: predict, ms", "spawn → first answer, s", "warm invocation, ms",
                        "peak RSS MiB"], rows),
    ]


def dependency_section(deps: list[tuple], onnx: dict[str, str]) -> list[str]:
    from bench.report import markdown_table

    total, total_src = sum(d[2] for d in deps), sum(d[3] for d in deps)
    rows = [[name, version, _mb(size), _mb(src), "yes" if root else ""]
            for name, version, size, src, root in deps if size >= 1e6]
    small = [d for d in deps if d[2] < 1e6]
    if small:
        rows.append([f"{len(small)} others under 1 MB", "", _mb(sum(d[2] for d in small)),
                     _mb(sum(d[3] for d in small)), ""])
    rows.append(["**total**", "", f"**{_mb(total)}**", f"**{_mb(total_src)}**", ""])
    torch_mb = next((d[2] for d in deps if d[0].lower() == "torch"), 0)
    listed = ", ".join(f"`{n}` {v}" for n, v in sorted(onnx.items())) or "neither `onnxruntime` nor `skl2onnx`"
    return [
        "### Zip Lambda or container image: the predictor's dependencies",
        f"Installed size in this venv (CPU torch, x86_64) of {', '.join(PREDICTOR_ROOTS)} and everything they "
        "require (the closure of their `Requires-Dist`, read with `importlib.metadata`; each distribution's "
        "RECORD summed on disk). MB = 10^6 bytes.",
        markdown_table(["distribution", "version", "MB installed", "MB without .pyc", "root"], rows),
        f"**{_mb(total)} MB** ({_mb(total_src)} MB without compiled bytecode) against Lambda's **{ZIP_LIMIT_MB} MB** "
        f"limit for a zip package unzipped, layers included; torch alone is {_mb(torch_mb)} MB. Hence a container "
        "image Lambda (up to 10 GB), built from the trainer image, so the predictor runs the very loader and "
        "pipeline code the trainer saved the artifact with.",
        "ONNX Runtime (the models exported to ONNX and served by `onnxruntime` from a zip): not on this machine "
        f"and not installed for this benchmark. The machine's PyPI listing names {listed}, but it carries no "
        "file sizes, so their wheel sizes were **not measured**; nor were an export's fidelity (the pipelines' "
        "preprocessing, the trainer's own estimator types) or its latency.",
    ]

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--types", default=",".join(MODEL_TYPES))
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="batch runs per type and size")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: batch,online,cold,sizes")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    parser.add_argument("--cold", help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--instances", help=argparse.SUPPRESS)
    parser.add_argument("--load-only", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold:
        cold(args.cold, args.spawned, json.loads(args.instances))
        return 0
    if args.load_only:
        load_only(args.load_only)
        return 0
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    skip = set(filter(None, args.skip.split(",")))
    sizes = [int(s) for s in args.sizes.split(",")]
    begun, load_start = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-predictions-") as tmp, local_stack(Path(tmp)) as stack:
        models, trained = train_models(stack, args.types.split(","))
        batch = [] if "batch" in skip else batch_benchmark(stack, models, sizes, args.repeats)
        online = [] if "online" in skip else online_benchmark(stack, models, args.requests)
        colds = [] if "cold" in skip else cold_benchmark(stack, models)
    deps = [] if "sizes" in skip else dependency_sizes()
    body = report(batch, sizes, online, colds, deps, args.requests, trained, (load_start, os.getloadavg()[0]),
                  time.monotonic() - begun)
    if args.no_write:
        print(body)
    else:
        from bench.report import write_section

        write_section(name="bench/bench_predictions.py", title="Predictions", body=body, order=37)
    print(summary(batch, sizes, online, colds, deps), file=sys.stderr)
    return 0


def summary(batch, sizes, online, colds, deps) -> str:
    lines = []
    for item in batch:
        cells, ratio = batch_row(item, sizes)
        lines.append(f"batch {' | '.join(cells)}")
    for o in online:
        lines.append(f"/predict {o['type']} x{o['instances']}: p50 {statistics.median(o['api']):.1f} ms, "
                     f"p95 {percentile(o['api'], 95):.1f} ms (invoke p50 {statistics.median(o['direct']):.1f} ms)")
    for c in colds:
        lines.append(f"cold {c['type']}: {c['spawn_to_answer_s']:.2f} s to first answer (load {c['load_s']:.2f} s), "
                     f"warm {c['warm_ms']:.1f} ms")
    if deps:
        lines.append(f"predictor deps: {sum(d[2] for d in deps) / 1e6:.0f} MB installed")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
