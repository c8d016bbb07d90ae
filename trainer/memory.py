"""How the trainer's process hands memory back: large buffers always come from, and return to, the kernel.

glibc's malloc serves a request of at least its mmap threshold with its own mapping, which `free` unmaps. The
threshold starts at 128 KiB but rises (up to 32 MiB) each time such a mapping is freed, so after the first
large temporary array (a split's index arrays, a decoded Parquet part) later arrays of tens of MiB land in the
heap instead, and their memory stays in the process after they are freed: the resident size ratchets up with
every pass over the data. Setting the threshold explicitly (`mallopt(M_MMAP_THRESHOLD)`, the same as the
`MALLOC_MMAP_THRESHOLD_` environment variable) keeps it fixed. `bench/bench_trainer_scale.py` measures the
effect on a streamed run's peak memory. Best effort: anything but glibc is left as it is.

pyarrow allocates from its own pool (jemalloc or mimalloc in the wheels), which keeps freed memory for reuse:
a Parquet part's decoded buffers then stay resident after the part, more for larger parts. The trainer makes
pyarrow allocate through the system allocator instead (`ARROW_DEFAULT_MEMORY_POOL=system`, read when pyarrow
first allocates), so they follow the rule above. Measured on a streamed network run over 20 Parquet parts
(`/proc` RSS): 1M rows peak 804 -> 729 MiB; 4M rows, after the first pass 454 -> 299 MiB.

Between the passes of a run, `release_free_memory` returns the free pages left inside the heap.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 256 * 1024


def release_free_memory() -> bool:
    """Hand the kernel the free pages inside malloc's heap (`malloc_trim(0)`): after a pass of many mid-sized
    allocations (a part's batches, their masks and copies) they are free but fragmented, and the heap keeps them
    resident. Measured before a 4M-row network's fit: 494 -> 402 MiB. True when glibc did it."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    libc.malloc_trim(0)
    return True


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def return_large_buffers(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix malloc's mmap threshold at `threshold` bytes and have pyarrow allocate through malloc; True when glibc
    accepted the threshold."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if "pyarrow" in sys.modules:  # already imported (tests): its pool may be chosen already
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
