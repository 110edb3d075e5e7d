"""The static memory plan: live buffers never share bytes, dead ones are reused."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.llvm import memory, place

import graphcnn as gc


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


def quadratic_plan(buffers: list[memory.Buffer]) -> int:
    """The plan's rule spelled out directly: each buffer against every one placed before."""
    placed: list[memory.Buffer] = []
    for buf in sorted(buffers, key=lambda x: (-x.size, x.first, x.key)):
        size = memory.align(buf.size)
        busy = sorted((p.offset, p.offset + memory.align(p.size)) for p in placed
                      if p.first <= buf.last and buf.first <= p.last)
        best, best_gap, cursor = None, None, 0
        for start, end in busy:
            if start - cursor >= size and (best_gap is None or start - cursor < best_gap):
                best, best_gap = cursor, start - cursor
            cursor = max(cursor, end)
        buf.offset = best if best is not None else cursor
        placed.append(buf)
    return max((b.offset + memory.align(b.size) for b in buffers), default=0)


@pytest.mark.parametrize("seed", range(20))
def test_indexed_plan_equals_the_rule_spelled_out(seed):
    # the plan indexes placed buffers by step; the offsets must be those of the plain rule
    rng = np.random.default_rng(seed)
    lives = [(int(f), int(f + rng.integers(0, 12) * (rng.random() < 0.8)))
             for f in rng.integers(0, 60, 80)]
    sizes = [int(s) for s in rng.choice([64, 100, 1000, 4096, 5000], 80)]
    fast = [memory.Buffer(k, s, f, la) for k, (s, (f, la)) in enumerate(zip(sizes, lives))]
    slow = [memory.Buffer(k, s, f, la) for k, (s, (f, la)) in enumerate(zip(sizes, lives))]
    assert memory.plan(fast) == quadratic_plan(slow)
    assert [b.offset for b in fast] == [b.offset for b in slow]


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


# ----------------------------------------------------------------------------------------------
# A conv adding a residual writes its output over the residual when it is the residual's last
# reader (place._residuals_in_place)


def _block_graph(residual_is_input: bool, residual_read_later: bool):
    b = gc.GraphBuilder("block")
    x0 = b.input("input", (1, 16, 12, 12))
    x = gc.ReLU()(gc.Conv2d(16, 32, 3, padding=1, seed=1)(x0))
    y = gc.ReLU()(gc.Conv2d(32, 32, 3, padding=1, seed=2)(x))
    y = gc.Conv2d(32, 32, 3, padding=1, seed=3)(x if residual_is_input else y)
    y = gc.ReLU()(y + x)
    if residual_read_later:  # x is read after the residual conv
        y = gc.ReLU()(gc.Conv2d(32, 32, 1, seed=4)(y) + x)
    return b.build(y)


@pytest.mark.parametrize("residual_is_input,residual_read_later",
                         [(False, False), (True, False), (False, True)])
def test_residual_conv_in_place(monkeypatch, residual_is_input, residual_read_later):
    graph = _block_graph(residual_is_input, residual_read_later)
    x = np.random.default_rng(0).standard_normal((1, 16, 12, 12)).astype(np.float32)
    want = gc.compile(graph, target="reference")(x)
    fused = gc.compile(graph, target="llvm", threads=2, cache=False)
    assert sum(n.attrs.get("residual", False) for n in fused.graph.nodes) >= 1
    got = fused(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(place, "residual_in_place", lambda *args: False)
    apart = gc.compile(graph, target="llvm", threads=2, cache=False)
    np.testing.assert_array_equal(apart(x), got)
    # in place only when the residual is neither the conv's input nor read after it
    in_place = not residual_is_input and not residual_read_later
    assert (fused.memory_bytes < apart.memory_bytes) == in_place
