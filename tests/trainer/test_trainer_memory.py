"""`trainer.memory.return_large_buffers`: with it, arrays of tens of MiB freed after a large one go back to the
kernel (glibc would otherwise have raised its mmap threshold and kept them in the heap). In a child process,
so this test's own allocator is left alone."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from trainer_helpers import REPO

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from trainer.memory import return_large_buffers

    def rss_mib():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    fixed = sys.argv[1] == "fixed"
    if fixed:
        assert return_large_buffers()
    first = np.ones(30 * 2**20 // 8)
    del first  # glibc's default: the mmap threshold now rises to ~30 MiB
    before = rss_mib()
    arrays = [np.ones(20 * 2**20 // 8) for _ in range(10)]
    arrays.reverse()  # freed oldest-last, so the heap's top cannot simply shrink
    for index in range(0, 10, 2):
        arrays[index] = None
    print(rss_mib() - before)
""")


def test_freed_large_arrays_leave_the_process():
    out = subprocess.run([sys.executable, "-c", SCRIPT, "fixed"], cwd=REPO, capture_output=True, text=True,
                         check=True, timeout=60)
    held = float(out.stdout.strip())
    assert held < 120  # the five arrays still alive (100 MiB), not the ten allocated
