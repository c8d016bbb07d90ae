"""What the recommend route sees of every corpus task, cached: the selector's training inputs.

    python -m bench.recommend_meta [--workers 2] [--limit N]

For each task of `bench/recommend_corpus.json`, the task's table is written as one CSV object into an
in-memory S3 (`bench.bench_tuning.MemoryS3`), sampled by the route's own sampler
(`chalicelib.recommend.sample.sample_storage`, its byte and row bounds) and analysed by the route's own
`chalicelib.recommend.engine.analyze` (ontology summary, data profile, the two pure-Python probes). The
analysis is cached in `bench/recommend_meta.json`, keyed by task name and the task's CSV sha256 (the
corpus's key), so the selector (`bench/recommend_select.py`) is fitted on exactly what the route computes
at request time. A rerun analyses only tasks that are missing or whose CSV changed.

The per-column statistics (`data.columns`) and the storage-config descriptions are left out of the
cache: the selector does not read them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

META = Path(__file__).resolve().parent / "recommend_meta.json"
VERSION = 2  # 2: probes standardise by the largest magnitude first (their scores moved in the last digits)
LEFT_OUT = ("columns", "storage_configs", "profile_summary")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def analyse(dataset, ontology_ttl: str):
    """The route's analysis of this dataset: its sampler over one CSV object, its `engine.analyze`."""
    from bench.bench_tuning import MemoryS3
    from chalicelib.ontology import summarize
    from chalicelib.recommend.engine import analyze
    from chalicelib.recommend.sample import sample_storage

    s3 = MemoryS3("data/part-0.csv", dataset.frame.to_csv(index=False).encode())
    sample = sample_storage(s3, {"id": "bench", "uri": "s3://bench/data/", "format": "csv"})
    return analyze(summarize(ontology_ttl), [sample], dataset.target)


def compact(analysis) -> dict:
    raw = analysis.to_dict()
    raw["data"] = {k: v for k, v in raw["data"].items() if k not in LEFT_OUT}
    raw["ontology"] = {k: v for k, v in raw["ontology"].items() if k != "class_names"}
    return raw


def _one(spec) -> tuple[str, dict, float]:
    from bench import recommend_corpus as corpus

    started = time.perf_counter()
    dataset = corpus.load(spec)
    digest = corpus.csv_sha256(dataset.frame)
    try:
        entry = compact(analyse(dataset, corpus.ontology_for(dataset)))
    except Exception as error:  # noqa: BLE001 - a route failure is recorded (and reported), not fatal here
        entry = {"error": f"{type(error).__name__}: {error}"}
    return spec.name, {"csv_sha256": digest, **entry}, time.perf_counter() - started


def load_meta() -> dict:
    if META.exists():
        meta = json.loads(META.read_text())
        if meta.get("version") == VERSION:
            return meta
    return {"version": VERSION, "tasks": {}}


def save_meta(meta: dict) -> None:
    meta["tasks"] = dict(sorted(meta["tasks"].items()))
    temporary = META.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(meta, sort_keys=True, separators=(",", ":")) + "\n")
    os.replace(temporary, META)


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def run(workers: int, limit: int | None) -> None:
    from bench import recommend_corpus as corpus

    trained = corpus.load_corpus()["tasks"]
    meta = load_meta()
    specs = [s for s in corpus.tasks() if s.name in trained]
    meta["tasks"] = {k: v for k, v in meta["tasks"].items() if k in trained}
    todo = [s for s in specs if meta["tasks"].get(s.name, {}).get("csv_sha256") != trained[s.name]["csv_sha256"]
            or "error" in meta["tasks"][s.name]]
    todo = todo[:limit] if limit else todo
    log(f"{len(specs)} trained tasks, {len(todo)} to analyse")
    started, done = time.perf_counter(), 0
    with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
        futures = [pool.submit(_one, spec) for spec in todo]
        for future in as_completed(futures):
            name, entry, seconds = future.result()
            meta["tasks"][name] = entry
            done += 1
            if done % 25 == 0 or done == len(todo):
                save_meta(meta)
                log(f"{done}/{len(todo)} analysed ({time.perf_counter() - started:.0f} s; last {name} "
                    f"{seconds:.1f} s)")
    save_meta(meta)
    failed = {name: entry["error"] for name, entry in meta["tasks"].items() if "error" in entry}
    for name, error in failed.items():
        log(f"analysis FAILED for {name}: {error}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    run(args.workers, args.limit)


if __name__ == "__main__":
    main()
