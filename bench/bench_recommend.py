"""Recommender benchmark for `make bench-recommend` (and `make bench`): quality, route parity, sampling cost.

    python -m bench.bench_recommend            # measure the shipped selector (and refit it to compare)
    python -m bench.bench_recommend --fit      # refit chalicelib/recommend/selector.json first

Quality (`bench/recommend_select.py`): the corpus of `bench/recommend_corpus.py` (every type trained by
our trainer over repeated splits), the route's own analysis of each task (`bench/recommend_meta.py`),
leave-datasets-out cross-validation of the selector against every constant choice and the noise
ceiling, a reliability table of its confidence, and the shipped selector on the held-out datasets it
never saw.

Route parity: held-out tasks go through the app (in-process moto: CSV in S3, ontology and storage config
created through the API) and POST /api/ml-models/recommend must answer exactly what the benchmark's
`engine.decide` computed from the cached analysis (the same type and all four scores).

Sampling cost: recommend on a 1,000,000-row and a 10,000-row CSV in S3, median of repeats.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

from bench.report import markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "ml-models-data-local"  # the local stage's data bucket: each project's data is under <project>/
SECTION = "bench/bench_recommend.py"
ROUTE_TASKS = 40


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def app_over_moto(endpoint_url: str | None = None):
    """The whole app through the Chalice test client, over moto with the real tables and bucket:
    in-process (`mock_aws`) by default, or the moto server at `endpoint_url`."""
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "APP_STAGE": "local",
                       "AUTH_MODE": "off"})  # the route is measured here, not the sign-in (see bench_api)
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    else:
        os.environ.pop("AWS_ENDPOINT_URL", None)
    with nullcontext() if endpoint_url else mock_aws():
        from scripts.local_stack import deploy_data_stores

        os.environ.update(deploy_data_stores(endpoint_url))
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint_url)
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            s3.create_bucket(Bucket=BUCKET)
        from app import app
        from chalicelib import wiring

        wiring.reset()
        with Client(app, stage_name="local") as client:  # the stage whose table names the stack made
            yield Api(client), s3
        wiring.reset()
    os.environ.pop("AWS_ENDPOINT_URL", None)


@contextmanager
def moto_server_process():
    """A moto server in its own process on a free port (stopped by its pid); yields its URL.

    The sampling-cost measurement runs against it rather than in-process moto: moto serves a
    ranged GET by reading the whole object, a cost real S3 does not have, and in its own
    process that work does not compete with the app for the interpreter.
    """
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Api:
    def __init__(self, client) -> None:
        self.client = client

    def post(self, path: str, body: dict) -> dict:
        reply = self.client.http.post(path, headers={"Content-Type": "application/json"}, body=json.dumps(body))
        data = json.loads(reply.body)
        if reply.status_code >= 300:
            raise RuntimeError(f"POST {path} -> {reply.status_code}: {data}")
        return data

    def dataset(self, s3, project: str, name: str, ttl: str, csv: bytes, key: str) -> tuple[str, str]:
        """Upload `csv`, create its ontology and storage config; return (ontology_id, storage_id)."""
        s3.put_object(Bucket=BUCKET, Key=key, Body=csv)
        onto = self.post("/api/ontologies", {"project_id": project, "name": name[:200], "content": ttl})
        config = self.post("/api/storage-configs", {"project_id": project, "name": name[:200],
                                                    "ontology_id": onto["id"], "uri": f"s3://{BUCKET}/{key}",
                                                    "format": "csv"})
        return onto["id"], config["id"]


LAYOUTS = (("10,000 rows, 1 object", 10_000, 1), ("1,000,000 rows, 20 objects", 1_000_000, 20),
           ("1,000,000 rows, 1 object", 1_000_000, 1))


def sampling_cost(api: Api, s3, repeats: int = 9) -> list[dict]:
    """Median recommend time on 10,000 and 1,000,000 rows of the same shape, in S3 as one or several objects."""
    import numpy as np
    import pandas as pd

    from trainer.ontology import ontology_from_frame

    rng = np.random.default_rng(0)
    big = pd.DataFrame(rng.normal(size=(1_000_000, 6)).round(5), columns=[f"x{i}" for i in range(6)])
    big["city"] = rng.choice(["north", "south", "east", "west"], size=len(big))
    big["label"] = np.where(big["x0"] + big["x1"] * big["x2"] > 0, "yes", "no")
    ttl = ontology_from_frame(big.head(100), "label", "Reading")
    bodies = []
    for i, (label, n, parts) in enumerate(LAYOUTS):
        project = f"bench-cost-{i}"
        prefix = f"{project}/cost/"
        size = 0
        for p in range(parts):
            csv = big.iloc[p * n // parts:(p + 1) * n // parts].to_csv(index=False).encode()
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}part-{p:05d}.csv", Body=csv)
            size += len(csv)
        onto = api.post("/api/ontologies", {"project_id": project, "name": label, "content": ttl})["id"]
        storage = api.post("/api/storage-configs", {"project_id": project, "name": label, "ontology_id": onto,
                                                    "uri": f"s3://{BUCKET}/{prefix}", "format": "csv"})["id"]
        bodies.append(({"project_id": project, "ontology_id": onto, "storage_ids": [storage]}, size))
        api.post("/api/ml-models/recommend", bodies[-1][0])  # warm-up: imports, connections
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    times: list[list[float]] = [[] for _ in LAYOUTS]
    answers: list[dict] = [{} for _ in LAYOUTS]
    sampling: list[list[float]] = [[] for _ in LAYOUTS]
    for _ in range(repeats):  # interleaved, so drifting machine load hits every layout alike
        for i, (body, _) in enumerate(bodies):
            with timed_sampling() as spent:
                started = time.perf_counter()
                answers[i] = api.post("/api/ml-models/recommend", body)
                times[i].append(time.perf_counter() - started)
            sampling[i].append(spent[0])
    rows = []
    for (label, n, parts), (_, size), ts, spent, answer in zip(LAYOUTS, bodies, times, sampling, answers,
                                                              strict=True):
        data = answer["data_analysis"]
        rows.append({"layout": label, "rows": n, "objects": parts, "bytes": size, "load": load,
                     "median_s": statistics.median(ts), "times": ts, "sampling_s": statistics.median(spent),
                     "rest_s": statistics.median(t - x for t, x in zip(ts, spent, strict=True)),
                     "bytes_read": data["bytes_read"], "rows_sampled": data["rows_sampled"],
                     "estimated_rows": data["estimated_rows"]})
        log(f"sampling cost {label}: median {statistics.median(ts):.3f}s, read {data['bytes_read']} bytes")
    return rows


@contextmanager
def timed_sampling():
    """Time spent in `sample_storage` (S3 listing, ranged GETs, parsing) during the block; yields [seconds].

    Bench-only instrumentation: the service imports `sample_storage` at call time, so wrapping the
    module attribute sees every call.
    """
    from chalicelib.recommend import sample

    spent = [0.0]
    original = sample.sample_storage

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    sample.sample_storage = timed
    try:
        yield spent
    finally:
        sample.sample_storage = original


def single_get_seconds(s3) -> dict[str, float]:
    """What one ranged GET of 1 KB costs on the emulator, from a 10,000-row and a 1,000,000-row object."""
    out = {}
    keys = (("10,000-row object", "bench-cost-0/cost/part-00000.csv"),
            ("1,000,000-row object", "bench-cost-2/cost/part-00000.csv"))
    for label, key in keys:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=0-1023")["Body"].read()
            times.append(time.perf_counter() - started)
        out[label] = statistics.median(times)
    return out


def route_parity(api: Api, s3, names: list[str]) -> tuple[int, int, list[str]]:
    """(asked, identical, mismatches): the route's answer vs engine.decide on the cached analysis."""
    from bench import recommend_corpus as corpus
    from bench import recommend_select as select
    from chalicelib.recommend.engine import Analysis, decide

    cached = {t.name: t for t in select.load_tasks()}
    specs = {spec.name: spec for spec in corpus.tasks()}
    identical, mismatches = 0, []
    for i, name in enumerate(names):
        dataset = corpus.load(specs[name])
        project = f"bench-{i:03d}"
        onto, _ = api.dataset(s3, project, name, corpus.ontology_for(dataset),
                              dataset.frame.to_csv(index=False).encode(), f"{project}/quality/data.csv")
        answer = api.post("/api/ml-models/recommend",
                          {"project_id": project, "ontology_id": onto, "target_column": dataset.target})
        expected = decide(Analysis.from_dict(cached[name].analysis))
        same = (answer["recommended_type"], answer["all_scores"]) == (expected["recommended_type"],
                                                                       expected["all_scores"])
        identical += same
        if not same:
            mismatches.append(f"{name}: route {answer['recommended_type']} {answer['all_scores']}, bench "
                              f"{expected['recommended_type']} {expected['all_scores']}")
    return len(names), identical, mismatches


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def quality_rows(summary: dict, constants: dict, ceiling: dict) -> list[list]:
    rows = [["**selector**", summary["tasks"], pct(summary["hit"]), f"{summary['regret']:.4f}"]]
    rows += [[f"always {m}", summary["tasks"], pct(c["hit"]), f"{c['regret']:.4f}"] for m, c in constants.items()]
    rows.append(["noise ceiling (best type of one half of the splits, judged on the other)", summary["tasks"],
                 pct(ceiling["hit"]), f"{ceiling['regret']:.4f}"])
    return rows


def reliability_table(table: list[dict]) -> str:
    return markdown_table(["predicted P(hit)", "n", "mean predicted", "observed hit rate"],
                          [[r["bin"], r["n"], pct(r["predicted"]), pct(r["observed"])] for r in table])


def gap_closed(e) -> float:
    best_constant = max(v["hit"] for v in e.cv_constants.values())
    return (e.cv["hit"] - best_constant) / max(1e-9, e.cv_ceiling["hit"] - best_constant)


def selector_sentence(e) -> str:
    from bench import recommend_select as select

    variant = select.VARIANTS[e.chosen]
    features = f"{len(e.selector['features']['regression'])}-{len(e.selector['features']['classification'])}"
    inputs = (f"{features} meta-features of the route's own analysis (probe scores, their gap, rows, features, "
              "shares, class balance)")
    if variant.family == "logistic":
        model = f"a logistic regression on {inputs}, calibrated by Platt scaling"
    else:
        trees = (f"{variant.trees} gradient-boosted trees of depth {variant.depth} (learning rate "
                 f"{variant.learning_rate}, at least {variant.min_leaf} tasks a leaf; fitted by scikit-learn, exported "
                 f"as JSON) on {inputs}")
        model = (f"{trees} predicting P(hit), calibrated by Platt scaling" if variant.family == "boosted" else
                 f"{trees} predicting the type's regret, mapped to P(hit) by one Platt line per task kind (so the "
                 "highest P(hit) is the least predicted regret)")
    return (f"**Selector** ({e.chosen}): per task kind and type, {model} on its own leave-datasets-out predictions; "
            "the pick is the type with the highest calibrated P(hit), which is also the route's `score` (×100). "
            "Shipped as `chalicelib/recommend/selector.json`, evaluated in pure Python.")


def report(e, shipped_matches: bool, parity: tuple[int, int, list[str]], cost) -> str:
    from bench import recommend_select as select

    c = e.corpus
    heads = ["choice", "tasks", "hit@0.01", "mean regret"]
    variants = markdown_table(["variant", "hit@0.01", "mean regret", "picks"],
                              [[("**" + k + "**") if k == e.chosen else k, pct(v["hit"]), f"{v['regret']:.4f}",
                                ", ".join(f"{t} {n}" for t, n in v["picks"].items())]
                               for k, v in e.variants.items()])
    asked, identical, mismatches = parity
    rows, gets = cost
    cost_table = markdown_table(
        ["layout", "CSV bytes", "bytes read", "rows sampled", "estimated rows", "median recommend (s)",
         "of which sampling (s)", "rest (s)"],
        [[r["layout"], f"{r['bytes']:,}", f"{r['bytes_read']:,}", f"{r['rows_sampled']:,}",
          f"{r['estimated_rows']:,}", f"{r['median_s']:.3f}", f"{r['sampling_s']:.3f}", f"{r['rest_s']:.3f}"]
         for r in rows])
    parts = [
        f"**Corpus**: {c['tasks']:,} tasks ({c['classification']} classification, {c['regression']} regression) "
        f"from {c['tables']} tables, merged into {c['datasets']} datasets (copies of a table under another name "
        "are one dataset). Ground truth: each type trained by our trainer with a user's defaults over 2-5 "
        "repeated 75/25 splits (`bench/recommend_corpus.json`); a type **hits** when its mean test score "
        f"(accuracy or R², an R² below 0 counted as 0) is within {select.TOLERANCE} of the best type's; "
        "**regret** is the best mean minus its mean.",
        selector_sentence(e),
        f"### Leave-datasets-out cross-validation ({select.FOLDS} folds over {c['fitting_tasks']:,} tasks)",
        markdown_table(heads, quality_rows(e.cv, e.cv_constants, e.cv_ceiling)),
        "Variants compared by the same cross-validation (the one with the least mean regret is shipped):",
        variants,
        "### Held out: datasets the shipped selector never saw",
        f"{c['held_out_tasks']} tasks from {c['held_out_datasets']} datasets ({int(100 * select.HELD_OUT_SHARE)}%"
        " of the datasets, by a hash of their name) were left out of all fitting and of the choice of variant.",
        markdown_table(heads, quality_rows(e.held_out, e.held_out_constants, e.held_out_ceiling)),
        "### Calibration (reliability by decile of the predicted probability)",
        "Cross-validated, the recommended type's `score`/100 against how often it was within 0.01 of the best:",
        reliability_table(e.cv_reliability),
        f"Expected calibration error: {100 * select.expected_calibration_error(e.cv_reliability):.1f} points. "
        "Every type's `all_scores` pooled:",
        reliability_table(e.cv_reliability_all),
        f"Expected calibration error: {100 * select.expected_calibration_error(e.cv_reliability_all):.1f} points. "
        "Held out, the recommended type:",
        reliability_table(e.held_out_reliability),
        "### Against the targets",
        f"Target on unseen datasets: hit@0.01 ≥ 85% and mean regret ≤ 0.008, ahead of every constant. Measured "
        f"(cross-validated / held out): hit {pct(e.cv['hit'])} / {pct(e.held_out['hit'])}, regret "
        f"{e.cv['regret']:.4f} / {e.held_out['regret']:.4f}, ahead of every constant on both. The noise "
        f"ceiling is {pct(e.cv_ceiling['hit'])} / {e.cv_ceiling['regret']:.4f} (cross-validated tasks): knowing "
        "the best type on half of the repeated splits hits on the other half that often, so 85% is beyond what "
        f"these scores can confirm; the selector closes {pct(gap_closed(e))} of the hit-rate gap between the "
        "best constant and the ceiling.",
        f"Shipped selector equals a refit on this corpus: {'yes' if shipped_matches else 'NO (run --fit)'}.",
        "### Route parity",
        f"{asked} held-out tasks asked through the app (POST /api/ml-models/recommend over moto): {identical} "
        "answers identical to the benchmark's (type and all four scores)."
        + ("" if not mismatches else " Mismatches: " + "; ".join(mismatches[:5])),
        "### Sampling cost",
        cost_table,
        "One 1 KB ranged GET on the emulator: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in gets.items())
        + ". The route reads a bounded sample whatever the data's size (see README, Recommend).",
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit chalicelib/recommend/selector.json first")
    parser.add_argument("--no-write", action="store_true", help="print the report instead of writing it")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from bench import recommend_select as select
    from chalicelib.recommend import selector as shipped

    log("fitting and cross-validating the selector")
    evaluation = select.evaluate()
    if args.fit:
        select.write_selector(evaluation.selector)
        shipped.load_selector.cache_clear()
    on_disk = json.loads(select.SELECTOR_FILE.read_text())
    matches = json.dumps(on_disk, sort_keys=True) == json.dumps(json.loads(json.dumps(evaluation.selector)),
                                                                 sort_keys=True)
    held = sorted(t.name for t in select.load_tasks() if select.held_out(t.dataset))
    step = max(1, len(held) // ROUTE_TASKS)
    with app_over_moto() as (api, s3):
        log("asking the route")
        parity = route_parity(api, s3, held[::step][:ROUTE_TASKS])
    log("measuring sampling cost")
    with moto_server_process() as url, app_over_moto(url) as (api, s3):
        cost = sampling_cost(api, s3)
        gets = single_get_seconds(s3)
    body = report(evaluation, matches, parity, (cost, gets))
    print(body)
    if not args.no_write:
        write_section(name=SECTION, title="Recommender: quality, calibration and sampling cost", body=body,
                      order=40)
        log("wrote docs/BENCHMARKS.md")
    return 0 if parity[1] == parity[0] and matches else 1


if __name__ == "__main__":
    sys.exit(main())
