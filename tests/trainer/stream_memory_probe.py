"""How much traced memory one pass of `trainer.stream` takes per extra row, measured in a fresh interpreter.

Run as a script by `test_stream.test_a_pass_keeps_peak_memory_bounded_as_rows_grow`; prints a JSON object
{pass name: traced bytes per extra row}. tracemalloc traces every thread of its process, so inside the test
session it would also count what servers other tests leave running (moto, the fake kube API) allocate: here
the only thread is the measured pass.
"""
from __future__ import annotations

import functools
import io
import json
import tracemalloc

import numpy as np
import pandas as pd

from trainer.ontology import Column
from trainer.storage import DataObject, parse_bytes
from trainer.stream import PartStream, scan

WIDE_COLUMNS = 24
PART_ROWS = 2000
SMALL_PARTS, LARGE_PARTS = 3, 15


def synthetic_part(obj: DataObject) -> bytes:
    """A CSV part made from its name (seeded); made once, before memory is traced."""
    return _synthetic_bytes(int(obj.key.split("-")[1].split(".")[0]))


@functools.cache
def _synthetic_bytes(index: int) -> bytes:
    rng = np.random.default_rng(index)
    frame = pd.DataFrame(rng.normal(size=(PART_ROWS, WIDE_COLUMNS)).round(4),
                         columns=[f"x{i}" for i in range(WIDE_COLUMNS)])
    frame["y"] = rng.normal(size=PART_ROWS).round(4)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def synthetic_stream(parts: int) -> PartStream:
    objects = [DataObject(uri=f"mem://part-{i}.csv", bucket="mem", key=f"part-{i}.csv", etag="e", size=0,
                          format="csv") for i in range(parts)]
    columns = [f"x{i}" for i in range(WIDE_COLUMNS)] + ["y"]
    return PartStream(objects, columns, "y", synthetic_part, batch_rows=500)


def peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def growth_per_row() -> dict[str, float]:
    target = Column("y", "number")
    features = [Column(f"x{i}", "number") for i in range(WIDE_COLUMNS)]

    def scan_of(parts):
        return lambda: scan(synthetic_stream(parts), target, features, reservoir_size=256)

    def epoch_of(parts):
        stream = synthetic_stream(parts)
        result = scan(stream, target)
        return lambda: sum(len(b.positions) for b in stream.batches_for(result.rows, result.y, seed=1,
                                                                        buffer_rows=1000))

    def whole_of(parts):
        stream = synthetic_stream(parts)
        return lambda: pd.concat([parse_bytes(synthetic_part(o), "csv", o.key, stream.wanted)
                                  for o in stream.objects])

    for index in range(LARGE_PARTS):
        _synthetic_bytes(index)  # the parts' bytes exist before tracing: the peak is the pass's own memory
    scan_of(SMALL_PARTS)()  # the pass's lazy imports happen before tracing too
    extra_rows = (LARGE_PARTS - SMALL_PARTS) * PART_ROWS
    return {name: (peak_bytes(make(LARGE_PARTS)) - peak_bytes(make(SMALL_PARTS))) / extra_rows
            for name, make in [("scan", scan_of), ("epoch", epoch_of), ("whole", whole_of)]}


if __name__ == "__main__":
    print(json.dumps(growth_per_row()))
