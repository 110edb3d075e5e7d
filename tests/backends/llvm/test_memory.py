"""The static memory plan: live buffers never share bytes, dead ones are reused."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.llvm import memory


@pytest.mark.parametrize("seed", range(20))
def test_random_lifetimes_never_overlap(seed):
    rng = np.random.default_rng(seed)
    bufs = []
    for k in range(40):
        first = int(rng.integers(0, 30))
        bufs.append(memory.Buffer(k, int(rng.integers(1, 5000)), first,
                                  first + int(rng.integers(0, 6))))
    size = memory.plan(bufs)
    memory.check(bufs)
    assert all(b.offset % memory.ALIGN == 0 for b in bufs)
    assert size <= sum(memory.align(b.size) for b in bufs)
    # the arena is at least the largest set of simultaneously live buffers
    peak = max(sum(memory.align(b.size) for b in bufs if b.first <= t <= b.last)
               for t in range(40))
    assert size >= peak


def test_chain_reuses_two_slots():
    # a -> b -> c -> d: each buffer is read by the next node only
    bufs = [memory.Buffer(k, 1000, k, k + 1) for k in range(4)]
    size = memory.plan(bufs)
    memory.check(bufs)
    assert size == 2 * memory.align(1000)


def test_overlapping_lives_do_not_share():
    a, b = memory.Buffer(0, 100, 0, 2), memory.Buffer(1, 100, 2, 3)
    memory.plan([a, b])
    assert a.offset != b.offset
