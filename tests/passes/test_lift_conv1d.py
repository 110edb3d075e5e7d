"""lift-conv1d: 1-D convs as 2-D convs over H = 1, with the per-channel ops after them, so a
text CNN runs on the blocked 2-D conv kernels (llvm against the reference on random inputs)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from graphcnn.passes.lift_conv1d import lift_conv1d
from pass_cases import check_pass, const, ops, rel_l2

import graphcnn as gc
from graphcnn.ir import Graph


def _conv1d(g: Graph, x, c_out: int, k: int, seed: int, **attrs):
    c_in = x.type.shape[1] // attrs.get("groups", 1)
    return g.apply("conv", [x, const(g, (c_out, c_in, k), seed), const(g, (c_out,), seed + 1)],
                   attrs)


def _text_cnn(c: int = 24, length: int = 30, filters: int = 20) -> Graph:
    """Kim's text CNN after fusion: convs of widths 3, 4, 5 with relu, max over time, concat,
    the classifier."""
    g = Graph("text")
    x = g.add_input("x", (1, c, length))
    pooled = []
    for i, k in enumerate((3, 4, 5)):
        y = _conv1d(g, x, filters, k, 10 * i, activation="relu")
        y = g.apply("global_max_pool", [y])
        pooled.append(g.apply("reshape", [y], {"shape": (1, filters)}))
    cat = g.apply("concat", pooled, {"axis": 1})
    g.set_outputs([g.apply("gemm", [cat, const(g, (4, 3 * filters), 50), const(g, (4,), 51)],
                           {"transB": 1})])
    return g


def _llvm_matches(graph: Graph, tol: float = 1e-5) -> Graph:
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
    want = interpret(graph, xs)
    got = gc.compile(graph, target="llvm", opt_level=2, cache=False)(*xs)
    got = got if isinstance(got, tuple) else (got,)
    for a, b in zip(got, want):
        assert rel_l2(a, b) <= tol
    return gc.optimize(graph.copy(), opt_level=2, target="llvm")


def test_rules_1_2_5_6_text_cnn_runs_blocked():
    out = check_pass(_text_cnn(), lift_conv1d)
    c = Counter(ops(out))
    assert c["reshape"] == 2 and c["conv"] == 3  # one reshape in (shared), one out (the concat)
    convs = [n for n in out.nodes if n.op == "conv"]
    assert {n.inputs[0].producer.op for n in convs} == {"reshape"}
    assert len({id(n.inputs[0]) for n in convs}) == 1
    assert [n.inputs[1].type.shape[2] for n in convs] == [1, 1, 1]
    assert all(n.outputs[0].type.rank == 4 for n in out.nodes if n.op not in ("gemm", "reshape"))
    opt = _llvm_matches(_text_cnn())
    c = Counter(ops(opt))  # in: the embedded tokens; the classifier reads the blocks
    assert c["to_blocked"] == 1 and c["from_blocked"] == 0
    assert {n.attrs["layout"] for n in opt.nodes if n.op == "conv"} == {"NCHWc"}


def test_rule1_window_attributes_and_residual():
    g = Graph("t")
    x = g.add_input("x", (2, 16, 23))
    y = _conv1d(g, x, 16, 3, 1, pads=(2, 1), strides=(2,), dilations=(2,))
    r = g.apply("conv", [y, const(g, (16, 16, 1), 3), const(g, (16,), 4), y],
                {"residual": True, "activation": "relu"})
    g.set_outputs([r])
    out = check_pass(g, lift_conv1d)
    first = next(n for n in out.nodes if n.op == "conv")
    assert first.attrs["pads"] == (0, 2, 0, 1) and first.attrs["strides"] == (1, 2)
    assert first.attrs["dilations"] == (1, 2)
    assert ops(out) == ["reshape", "conv", "conv", "reshape"]
    _llvm_matches(g)


def test_rules_2_3_4_batch_norm_pools_and_constants():
    g = Graph("t")
    x = g.add_input("x", (1, 12, 40))
    y = _conv1d(g, x, 24, 5, 1)
    y = g.apply("batch_norm", [y, const(g, (24,), 2), const(g, (24,), 3), const(g, (24,), 4),
                               const(g, (24,), 5, 0.5, 2.0)], {"activation": "relu"})
    y = g.apply("max_pool", [y], {"kernel_shape": (3,), "strides": (2,), "pads": (1, 1)})
    y = g.apply("mul", [y, const(g, (24, 1), 6)])
    y = g.apply("add", [y, const(g, (1,), 7)])
    y = g.apply("avg_pool", [g.apply("relu", [y])], {"kernel_shape": (2,)})
    g.set_outputs([g.apply("global_avg_pool", [_conv1d(g, y, 16, 3, 8)])])
    out = check_pass(g, lift_conv1d)
    assert ops(out).count("reshape") == 2  # in and out: everything between is 2-D
    pool = next(n for n in out.nodes if n.op == "max_pool")
    assert pool.attrs["kernel_shape"] == (1, 3) and pool.attrs["pads"] == (0, 1, 0, 1)
    assert next(n for n in out.nodes if n.op == "mul").inputs[1].type.shape == (24, 1, 1)
    opt = _llvm_matches(g)
    assert Counter(ops(opt))["to_blocked"] == 1


def test_rule7_other_consumers_read_the_logical_value():
    g = Graph("t")
    x = g.add_input("x", (1, 8, 20))
    y = _conv1d(g, x, 16, 3, 1)
    g.set_outputs([g.apply("softmax", [y], {"axis": 2}), g.apply("relu", [y])])
    out = check_pass(g, lift_conv1d)
    soft = next(n for n in out.nodes if n.op == "softmax")
    assert soft.inputs[0].type.rank == 3 and soft.inputs[0].producer.op == "reshape"
    _llvm_matches(g)


@pytest.mark.parametrize("case", ["no-conv1d", "runtime-weight", "conv2d"])
def test_noop(case):
    g = Graph("t")
    if case == "conv2d":
        x = g.add_input("x", (1, 4, 8, 8))
        g.set_outputs([g.apply("conv", [x, const(g, (8, 4, 3, 3), 1)], {})])
    elif case == "runtime-weight":
        x, w = g.add_input("x", (1, 4, 9)), g.add_input("w", (8, 4, 3))
        g.set_outputs([g.apply("conv", [x, w], {})])
    else:
        x = g.add_input("x", (1, 4, 9))
        g.set_outputs([g.apply("global_max_pool", [g.apply("relu", [x])])])
    check_pass(g, lift_conv1d, changed=False)


def test_on_the_llvm_pipeline_only():
    assert "lift-conv1d" in gc.passes.pass_names(2, "llvm")
    assert "lift-conv1d" not in gc.passes.pass_names(2)
