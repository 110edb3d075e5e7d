"""Export round trip of the pointwise ops: each binary op and activation exports as standard
ONNX that onnxruntime runs to the reference's numbers and imports back as the same op."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphcnn as gc
from graphcnn.ir import Graph
from graphcnn.ops import ACTIVATIONS, BINARY_OPS

SHAPES = {"prelu": [(2, 5, 3, 4), (5, 1, 1)], "pow": [(2, 5, 3), (3,)]}
ARITY = {"sum": 3, "mean": 3, "max": 3, "min": 3}


def _binary_graph(op: str) -> tuple[Graph, list[np.ndarray]]:
    shapes = SHAPES.get(op, [(2, 5, 3)] + [(5, 1)] * (ARITY.get(op, 2) - 1))
    rng = np.random.default_rng(len(op))
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    if op == "pow":
        xs[0] = np.abs(xs[0]) + np.float32(0.1)
    g = Graph(op)
    g.set_outputs([g.apply(op, [g.add_input(f"x{i}", s) for i, s in enumerate(shapes)])])
    return g, xs


@pytest.mark.parametrize("op", sorted(BINARY_OPS))
def test_binary_round_trip(op):
    g, xs = _binary_graph(op)
    proto = gc.to_onnx(g)
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == [BINARY_OPS[op].onnx.op_type]
    want = gc.compile(g, target="reference")(*xs)
    np.testing.assert_allclose(gc.compile(g, target="onnxruntime")(*xs), want, rtol=2e-6,
                               atol=1e-7)
    assert [n.op for n in gc.from_onnx(proto).nodes] == [op]


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_exports_run_on_onnxruntime(name):
    act = ACTIVATIONS[name]
    g = Graph(name)
    g.set_outputs([g.apply(name, [g.add_input("x", (3, 29))], dict(act.attrs))])
    x = (np.random.default_rng(1).standard_normal((3, 29)) * 3).astype(np.float32)
    if name in ("sqrt", "log", "reciprocal"):
        x = np.abs(x) + np.float32(0.1)
    want = gc.compile(g, target="reference")(x)
    got = gc.compile(g, target="onnxruntime")(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_runtime_clip_bounds_export_as_max_min():
    g = Graph("clip")
    x, lo, hi = (g.add_input(n, s) for n, s in (("x", (4, 7)), ("lo", ()), ("hi", ())))
    g.set_outputs([g.apply("min", [g.apply("max", [x, lo]), hi])])
    ops = [n.op_type for n in gc.to_onnx(g).graph.node]
    assert ops == ["Max", "Min"]
