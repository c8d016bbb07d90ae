"""`trainer.memory.return_large_buffers`: with it, arrays of tens of MiB freed after a large one go back to the
kernel (glibc would otherwise have raised its mmap threshold and kept them in the heap), and pyarrow allocates
through that allocator, not its own pool. In child processes, so this test's own allocators are left alone."""
from __future__ import annotations

import os
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


def test_pyarrow_allocates_through_the_system_allocator():
    script = ("from trainer.memory import return_large_buffers\nreturn_large_buffers()\nimport pyarrow as pa\n"
              "print(pa.default_memory_pool().backend_name, pa.array(range(1000)).nbytes > 0)")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                         timeout=60, env={k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"})
    assert out.stdout.split() == ["system", "True"]


def test_free_heap_pages_go_back_to_the_kernel():
    script = textwrap.dedent("""
        import numpy as np
        from trainer.memory import release_free_memory

        def rss_mib():
            return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

        keep, drop = [], []
        for index in range(4000):  # 100 KiB each: below the mmap threshold, so in the heap, interleaved
            (keep if index % 8 == 0 else drop).append(np.ones(100 * 1024 // 8))
        drop.clear()
        before = rss_mib()
        assert release_free_memory()
        print(before - rss_mib())
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                         timeout=60)
    assert float(out.stdout.strip()) > 200  # most of the ~340 MiB freed between the arrays still alive
