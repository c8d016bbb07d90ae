"""Trainer fixed start for `make bench`: what a run costs before its data matters, per model type.

    python -m bench.bench_trainer_start [--types decision_tree,...] [--repeat 5] [--no-write]

Every measurement is a fresh `python -m trainer` (the image's entrypoint), a real run against a moto
server S3 in this process and a local callback receiver, on a tiny data set (200 rows x 20 features, one
CSV object), so nearly all of its time is the fixed part. Definitions:

- **to data** — from spawning the process to the trainer's "listed storage" log record: interpreter,
  settings, spec, the version check, the ontology, the first S3 listing of the data. Reading the data
  comes next. Taken from the log record's timestamp (milliseconds) against the wall clock at spawn.
- **serialisation imports** — what the run spends importing skops (`import skops.io`, when the model
  files are written), measured with `-X importtime` in separate runs (the outermost skops entries'
  cumulative time; whatever skops pulls in that is not loaded yet counts here).
- **torch imported outside its path** — for the scikit-learn types, the import time of torch anywhere else in
  the run after the data is listed (e.g. seeding torch); 0 when torch is never imported.
- **fixed start** = to data + serialisation imports + torch outside its path. For the network, torch is its
  training library (under "other imports"), so its fixed start is to data + serialisation imports.
- **other imports** (not part of the fixed start) — every other import after the data is listed, for reading
  it and training (pandas, scikit-learn's estimators, metrics and splits; torch for the network), from the
  same `-X importtime` runs. **tiny run** — spawn to exit of the whole run (fit, metrics, upload, callbacks).

Each number is the median over `--repeat` fresh processes of each kind (plain runs for the times, importtime
runs for the imports; importtime's own overhead stays out of "to data").
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.bench_trainer import MODEL_TYPES, make_frame, trainer_environment, trainer_world

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-trainer-start"
ROWS = 200
MARKER = "listed storage"  # the trainer's log record once the first storage location is listed
SETTINGS = {
    "decision_tree": {"hyperparameters": {"max_depth": 5}},
    "random_forest": {"max_iterations": 10, "hyperparameters": {"max_depth": 5}},
    "regression": {"max_iterations": 200},
    "neural_network": {"max_iterations": 2, "batch_size": 64},
}


def run_once(env: dict, model_type: str, uri: str, ontology: str, callback_url: str, importtime: bool) -> dict:
    """One fresh trainer process: wall seconds, seconds to the MARKER log record, its stderr."""
    model_id = f"start-{model_type}-{time.time_ns()}"
    child_env = trainer_environment(env, model_id, model_type, uri, "csv", ontology, callback_url,
                                    SETTINGS[model_type], bucket=BUCKET)
    if importtime:
        child_env["PYTHONPROFILEIMPORTTIME"] = "1"
    spawned = time.time()
    done = subprocess.run([sys.executable, "-m", "trainer"], env=child_env, cwd=str(ROOT), capture_output=True,
                          text=True, timeout=300)
    wall = time.time() - spawned
    if done.returncode != 0:
        raise RuntimeError(f"{model_type}: the trainer exited {done.returncode}:\n{done.stderr[-3000:]}")
    marker = next((_log_time(line) for line in done.stderr.splitlines() if _is_marker(line)), None)
    if marker is None:
        raise RuntimeError(f"{model_type}: no {MARKER!r} log record")
    return {"wall": wall, "to_data": marker - spawned, "stderr": done.stderr}


def _is_marker(line: str) -> bool:
    return line.startswith("{") and json.loads(line).get("message") == MARKER


def _log_time(line: str) -> float:
    return datetime.strptime(json.loads(line)["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def imports_after_marker(stderr: str) -> dict[str, float]:
    """Seconds of import after the MARKER record, from `-X importtime` lines, as {"skops", "torch", "other"}:
    the outermost skops entries; torch entries outside skops; every other outermost entry."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if _is_marker(line))
    entries = []  # (depth, name, cumulative seconds), in the order importtime prints them (children first)
    for line in lines[start + 1:]:
        if not line.startswith("import time:") or line.endswith("| imported package"):
            continue
        _, cumulative, name = line[len("import time:"):].split("|", 2)
        if not cumulative.strip().isdigit():
            continue
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        entries.append((depth, name.strip(), int(cumulative) / 1e6))
    totals = {"skops": 0.0, "torch": 0.0, "other": 0.0}
    ancestors: list[str] = []
    for depth, name, seconds in reversed(entries):  # reversed: parents before their children
        del ancestors[depth:]
        group = _group(name)
        if depth == 0:
            totals[group] += seconds
        elif group in ("skops", "torch") and not any(_group(a) in ("skops", group) for a in ancestors):
            totals[group] += seconds  # nested under an "other" entry: counted out of it
            totals["other"] -= seconds
        ancestors.append(name)
    return totals


def _group(name: str) -> str:
    top = name.split(".", 1)[0]
    return top if top in ("skops", "torch") else "other"


def measure(types: list[str], repeat: int) -> list[dict]:
    from trainer.ontology import ontology_from_frame

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's access log
    results = []
    with trainer_world(BUCKET, drop_env=("TRAINER_", "PYTHONPROFILEIMPORTTIME")) as (s3, env, callback_url):
        frame = make_frame(ROWS)
        buffer = io.BytesIO()
        frame.to_csv(buffer, index=False)
        s3.put_object(Bucket=BUCKET, Key="data/part-0.csv", Body=buffer.getvalue())
        uri = f"s3://{BUCKET}/data/part-0.csv"
        ontology = ontology_from_frame(frame, "label", "StartRow")
        for model_type in types:
            plain = [run_once(env, model_type, uri, ontology, callback_url, importtime=False) for _ in range(repeat)]
            timed = [imports_after_marker(run_once(env, model_type, uri, ontology, callback_url, importtime=True)
                                          ["stderr"]) for _ in range(repeat)]
            result = {"type": model_type, "repeat": repeat,
                      **{key: statistics.median(r[key] for r in plain) for key in ("to_data", "wall")},
                      **{key: statistics.median(t[key] for t in timed) for key in ("skops", "torch", "other")},
                      "torch_imported": any(t["torch"] > 0 for t in timed)}
            outside = 0.0 if model_type == "neural_network" else result["torch"]
            result["fixed"] = result["to_data"] + result["skops"] + outside
            result["other_imports"] = result["other"] + (result["torch"] if model_type == "neural_network" else 0)
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    return results


def report(results: list[dict]) -> str:
    from bench.report import markdown_table

    rows = []
    for r in results:
        network = r["type"] == "neural_network"
        rows.append([
            r["type"], f"{r['to_data']:.2f}", f"{r['skops']:.2f}",
            "n/a (its training library)" if network else f"{r['torch']:.2f}",
            f"**{r['fixed']:.2f}**", f"{r['other_imports']:.2f}", f"{r['wall']:.2f}",
            "yes" if r["torch_imported"] else "no",
        ])
    table = markdown_table(
        ["type", "to data s", "serialisation imports s", "torch outside its path s", "fixed start s",
         "other imports s", "tiny run s", "imports torch"],
        rows,
    )
    return (
        f"`python -m trainer` end to end on {ROWS} rows (20 features, one CSV object in moto server S3), medians of "
        f"{results[0]['repeat'] if results else 0} fresh processes per column kind. *to data*: spawn to the "
        "trainer's \"listed storage\" log record (interpreter, settings, spec, version check, ontology, the first "
        "S3 listing). *serialisation imports*: `import skops.io` when the model files are written (`-X importtime` "
        "runs). *torch outside its path*: torch imported by a scikit-learn run. **fixed start** = to data + "
        "serialisation imports + torch outside its path (the target: at most 2 s for the scikit-learn types). "
        "*other imports* (not in the fixed start): every other import after the listing, to read the data and "
        "train — pandas, scikit-learn's estimators, metrics and splits, torch for the network. *tiny run*: spawn "
        "to exit. skops is imported with "
        "torch kept out unless torch is already loaded (`trainer.fitted.skops_io`): skops' list of trusted "
        "estimators walks every scikit-learn package, and the walk imports scikit-learn's vendored "
        "array-API shim for torch, which imports torch.\n\n" + table
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default=",".join(MODEL_TYPES))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)
    body = report(measure(args.types.split(","), args.repeat))
    if args.no_write:
        print(body)
    else:
        from bench.report import write_section

        write_section(name="bench/bench_trainer_start.py", title="Trainer: fixed start per model type", body=body,
                      order=32)


if __name__ == "__main__":
    main()
