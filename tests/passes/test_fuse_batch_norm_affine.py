"""fuse-batch-norm-affine: per-channel Mul / Add after a batch norm folded into it; one test
per rule, the no-op cases, and the Caffe2-style DenseNet chain (BN -> Mul -> Add -> Relu
between concat and conv) running blocked afterwards."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from graphcnn.passes.fuse_batch_norm_affine import fuse_batch_norm_affine
from pass_cases import check_pass, ops

import graphcnn as gc
from graphcnn.ir import Graph

RNG = np.random.default_rng(4)


def _bn(g: Graph, x, c: int, name: str = "bn"):
    params = [RNG.standard_normal(c), RNG.standard_normal(c), RNG.standard_normal(c),
              np.abs(RNG.standard_normal(c)) + 0.5]
    consts = [g.add_constant(p.astype(np.float32), f"{name}.{i}") for i, p in enumerate(params)]
    return g.apply("batch_norm", [x] + consts, {"epsilon": 1e-3}, name=name)


@pytest.mark.parametrize("shape", [(8, 1, 1), (1, 8, 1, 1), (), (1,)])
@pytest.mark.parametrize("first", [True, False])
def test_rule1_mul(shape, first):
    g = Graph("g")
    x = g.add_input("x", (2, 8, 5, 5))
    y = _bn(g, x, 8)
    c = g.add_constant(RNG.standard_normal(shape).astype(np.float32), "c")
    g.set_outputs([g.apply("relu", [g.apply("mul", [c, y] if first else [y, c])])])
    out = check_pass(g, fuse_batch_norm_affine)
    assert ops(out) == ["batch_norm", "relu"]


def test_rules_1_and_2_chain():
    g = Graph("g")
    x = g.add_input("x", (1, 6, 4, 7))
    y = _bn(g, x, 6)
    y = g.apply("mul", [y, g.add_constant(RNG.standard_normal((6, 1, 1)).astype(np.float32),
                                         "s")])
    y = g.apply("add", [g.add_constant(RNG.standard_normal((1, 6, 1, 1)).astype(np.float32),
                                       "t"), y])
    g.set_outputs([g.apply("relu", [y])])
    out = check_pass(g, fuse_batch_norm_affine)
    assert ops(out) == ["batch_norm", "relu"]


@pytest.mark.parametrize("case", ["spatial-constant", "runtime-operand", "two-uses"])
def test_noop_cases(case):
    g = Graph("g")
    x = g.add_input("x", (1, 6, 4, 7))
    y = _bn(g, x, 6)
    if case == "spatial-constant":  # varies along W: not per channel
        other = g.add_constant(RNG.standard_normal((1, 1, 7)).astype(np.float32), "c")
    elif case == "runtime-operand":
        other = x
    else:
        other = y
    outs = [g.apply("add", [y, other])]
    g.set_outputs(outs + ([y] if case == "two-uses" else []))
    check_pass(g, fuse_batch_norm_affine, changed=False)


def test_caffe2_densenet_chain_runs_blocked():
    """conv -> concat -> BN -> Mul -> Add -> Relu -> conv, as the onnx zoo's DenseNet-121."""
    g = Graph("dense")
    x = g.add_input("x", (1, 3, 12, 12))
    w1 = g.add_constant(RNG.standard_normal((32, 3, 3, 3)).astype(np.float32) * 0.3, "w1")
    w2 = g.add_constant(RNG.standard_normal((16, 32, 3, 3)).astype(np.float32) * 0.3, "w2")
    w3 = g.add_constant(RNG.standard_normal((8, 48, 1, 1)).astype(np.float32) * 0.3, "w3")
    a = g.apply("relu", [g.apply("conv", [x, w1], {"pads": (1, 1, 1, 1)})])
    b = g.apply("conv", [a, w2], {"pads": (1, 1, 1, 1)})
    y = _bn(g, g.apply("concat", [a, b], {"axis": 1}), 48)
    y = g.apply("mul", [y, g.add_constant(RNG.standard_normal((48, 1, 1)).astype(np.float32),
                                         "s")])
    y = g.apply("add", [y, g.add_constant(RNG.standard_normal((48, 1, 1)).astype(np.float32),
                                         "t")])
    g.set_outputs([g.apply("conv", [g.apply("relu", [y]), w3])])
    opt = gc.optimize(g, opt_level=2, target="llvm")
    names = ops(opt)
    assert names.count("to_blocked") == 1 and names.count("from_blocked") == 1, names
    bn = next(n for n in opt.nodes if n.op == "batch_norm")
    assert bn.attrs["layout"] == "NCHWc" and bn.attrs["activation"] == "relu"
    data = RNG.standard_normal((1, 3, 12, 12)).astype(np.float32)
    want = interpret(g, [data])[0]
    for level in (0, 1, 2, 3):
        got = gc.compile(g, target="llvm", opt_level=level)(data)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
