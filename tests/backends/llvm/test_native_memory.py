"""Native memory stays flat over many models loaded from the cache, or compiled cold, and
dropped: the RSS of a child process (its own, so the test process' state does not count), read
from /proc/self/statm after a warm-up, per model."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

KB_PER_MODEL = 5
PROBE = r"""
import ctypes, gc as pygc, os, sys
import numpy as np
import graphcnn as gc

def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

threads, cache, n = int(sys.argv[1]), sys.argv[2] == "hit", int(sys.argv[3])
gc.manual_seed(0)
graph = gc.Sequential(gc.Conv2d(8, 16, 3, padding=1), gc.ReLU()).build((1, 8, 32, 32))
x = np.random.default_rng(0).standard_normal((1, 8, 32, 32)).astype(np.float32)
trim = ctypes.CDLL(None).malloc_trim

def cycle():
    m = gc.compile(graph, target="llvm", threads=threads, cache=cache)
    m(x)
    del m
    if not cache:  # lowering's reference cycles: Python garbage, not the native growth sought
        pygc.collect()

for _ in range(50):
    cycle()
pygc.collect(); trim(0)
before = rss_kb()
for _ in range(n):
    cycle()
pygc.collect(); trim(0)
print((rss_kb() - before) / n)
"""


def growth_per_model(tmp_path, threads: int, mode: str, n: int) -> float:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE), str(threads), mode,
                           str(n)], capture_output=True, text=True, timeout=1800, check=False,
                          env={**os.environ, "GRAPHCNN_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    return float(proc.stdout.strip())


@pytest.mark.parametrize("threads", [1, 2])
def test_cache_hit_loads_do_not_grow_native_memory(tmp_path, threads):
    kb = growth_per_model(tmp_path, threads, "hit", 1000)
    assert kb < KB_PER_MODEL, f"{kb:.1f} KB per cache-hit load at threads={threads}"


@pytest.mark.slow  # 1000 cold compiles: ~1.5 minutes per thread count
@pytest.mark.parametrize("threads", [1, 2])
def test_compile_and_drop_does_not_grow_native_memory(tmp_path, threads):
    kb = growth_per_model(tmp_path, threads, "miss", 1000)
    assert kb < KB_PER_MODEL, f"{kb:.1f} KB per compiled-and-dropped model at threads={threads}"
