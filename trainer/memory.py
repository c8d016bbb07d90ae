"""How the trainer's process hands memory back: large buffers always come from, and return to, the kernel.

glibc's malloc serves a request of at least its mmap threshold with its own mapping, which `free` unmaps. The
threshold starts at 128 KiB but rises (up to 32 MiB) each time such a mapping is freed, so after the first
large temporary array (a split's index arrays, a decoded Parquet part) later arrays of tens of MiB land in the
heap instead, and their memory stays in the process after they are freed: the resident size ratchets up with
every pass over the data. Setting the threshold explicitly (`mallopt(M_MMAP_THRESHOLD)`, the same as the
`MALLOC_MMAP_THRESHOLD_` environment variable) keeps it fixed. `bench/bench_trainer_scale.py` measures the
effect on a streamed run's peak memory. Best effort: anything but glibc is left as it is.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 256 * 1024


def return_large_buffers(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix malloc's mmap threshold at `threshold` bytes; True when glibc accepted it."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
