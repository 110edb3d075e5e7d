"""Drawn attributes: conv and pooling with random geometry (seeded), plain and rewritten, vs
the reference. Shapes that the op's own shape rule rejects are redrawn."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from llvm_cases import rel_l2

import graphcnn as gc
from graphcnn.errors import ShapeError
from graphcnn.ir import Graph


def draw_conv(rng: np.random.Generator) -> Graph:
    while True:
        nd = int(rng.choice([1, 2, 2, 2, 3]))
        groups = int(rng.choice([1, 1, 2, 3]))
        cin = groups * int(rng.integers(1, 5))
        cout = groups * int(rng.integers(1, 6))
        size = [int(rng.integers(3, 14 if nd < 3 else 7)) for _ in range(nd)]
        k = [int(rng.integers(1, 4)) for _ in range(nd)]
        attrs = {"strides": [int(rng.integers(1, 3)) for _ in range(nd)],
                 "dilations": [int(rng.integers(1, 3)) for _ in range(nd)],
                 "pads": [int(rng.integers(0, 3)) for _ in range(2 * nd)], "groups": groups,
                 "activation": str(rng.choice(["none", "relu", "sigmoid"]))}
        g = Graph("drawn_conv")
        x = g.add_input("x", (int(rng.integers(1, 3)), cin, *size))
        w = g.add_constant(rng.standard_normal((cout, cin // groups, *k)).astype(np.float32), "w")
        ins = [x, w]
        if rng.random() < 0.7:
            ins.append(g.add_constant(rng.standard_normal(cout).astype(np.float32), "b"))
        try:
            g.set_outputs([g.apply("conv", ins, attrs)])
        except ShapeError:
            continue
        return g


def draw_pool(rng: np.random.Generator) -> Graph:
    while True:
        op = str(rng.choice(["max_pool", "avg_pool", "sum_pool"]))
        nd = int(rng.choice([1, 2, 2, 3]))
        size = [int(rng.integers(2, 12 if nd < 3 else 7)) for _ in range(nd)]
        k = [int(rng.integers(1, 4)) for _ in range(nd)]
        attrs = {"kernel_shape": k, "strides": [int(rng.integers(1, 3)) for _ in range(nd)],
                 "dilations": [int(rng.integers(1, 3)) for _ in range(nd)],
                 "pads": [int(rng.integers(0, 2)) for _ in range(2 * nd)],
                 "ceil_mode": bool(rng.random() < 0.5)}
        if op == "avg_pool":
            attrs["count_include_pad"] = bool(rng.random() < 0.5)
        g = Graph("drawn_pool")
        x = g.add_input("x", (int(rng.integers(1, 3)), int(rng.integers(1, 20)), *size))
        try:
            g.set_outputs([g.apply(op, [x], attrs)])
        except ShapeError:
            continue
        return g


@pytest.mark.parametrize("draw", [draw_conv, draw_pool], ids=["conv", "pool"])
@pytest.mark.parametrize("seed", range(25))
def test_drawn_geometry(draw, seed):
    rng = np.random.default_rng(seed)
    graph = draw(rng)
    x = rng.standard_normal(graph.inputs[0].type.shape).astype(np.float32)
    want = interpret(graph, [x])[0]
    for rewrites in (False, True):
        got = gc.compile(graph, target="llvm", opt_level=0, cache=False, rewrites=rewrites)(x)
        assert rel_l2(got, want) <= 1e-4, (graph.nodes[0].attrs, rewrites)
