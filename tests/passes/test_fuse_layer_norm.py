"""fuse-layer-norm: the TorchScript exporter's spelled-out LayerNorm (opset < 17) as one
layer_norm node; one test per rule, the no-op cases, numerics before/after.

The pattern's sub / div / pow / sqrt are the pointwise ops of the elementwise tables; where
this checkout's tables lack them the test registers minimal numpy definitions of them."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.passes.fuse_layer_norm import fuse_layer_norm
from pass_cases import check_pass, ops

from graphcnn.ir import Graph
from graphcnn.ops import OPS, OpDef
from graphcnn.ops.registry import same
from graphcnn.tensor_type import TensorType

_FALLBACK = {"sub": np.subtract, "div": np.divide, "pow": np.power}


@pytest.fixture(autouse=True)
def pointwise_ops(monkeypatch):
    def binary(a, t):
        return [TensorType(np.broadcast_shapes(t[0].shape, t[1].shape), t[0].dtype)]
    for name, fn in _FALLBACK.items():
        if name not in OPS:
            monkeypatch.setitem(OPS, name, OpDef(name, {}, binary,
                                                 lambda a, x, y, f=fn: f(x, y).astype(x.dtype),
                                                 inputs=(2, 2)))
    if "sqrt" not in OPS:
        monkeypatch.setitem(OPS, "sqrt", OpDef("sqrt", {}, lambda a, t: same(t[0]),
                                               lambda a, x: np.sqrt(x)))


def _layer_norm_graph(shape=(2, 5, 16), k=2, eps=1e-5, weight=True, bias=True,
                      swap=False, power=2.0) -> Graph:
    g = Graph("ln")
    x = g.add_input("x", shape)
    rng = np.random.default_rng(0)
    axes = tuple(range(k, len(shape)))
    mean = g.apply("reduce_mean", [x], {"axes": axes, "keepdims": 1})
    d = g.apply("sub", [x, mean])
    p = g.apply("pow", [d, g.add_constant(np.array(power, np.float32), "two")])
    var = g.apply("reduce_mean", [p], {"axes": axes, "keepdims": 1})
    e = g.add_constant(np.array(eps, np.float32), "eps")
    ve = g.apply("add", [e, var] if swap else [var, e])
    y = g.apply("div", [d, g.apply("sqrt", [ve])])
    if weight:
        w = g.add_constant(rng.standard_normal(shape[k:]).astype(np.float32), "w")
        y = g.apply("mul", [w, y] if swap else [y, w])
        if bias:
            b = g.add_constant(rng.standard_normal(shape[-1:]).astype(np.float32), "b")
            y = g.apply("add", [y, b])
    g.set_outputs([g.apply("relu", [y])])
    return g


@pytest.mark.parametrize("k", [2, 1])
@pytest.mark.parametrize("swap", [False, True])
def test_rules_1_2_3_weight_and_bias(k, swap):
    out = check_pass(_layer_norm_graph(k=k, swap=swap), fuse_layer_norm)
    assert ops(out) == ["layer_norm", "relu"]
    node = out.nodes[0]
    assert node.attrs["axis"] == k and len(node.inputs) == 3
    assert node.attrs["epsilon"] == pytest.approx(1e-5)


def test_rule1_without_affine():
    out = check_pass(_layer_norm_graph(weight=False), fuse_layer_norm)
    assert ops(out) == ["layer_norm", "relu"]
    assert len(out.nodes[0].inputs) == 2 and np.all(out.nodes[0].inputs[1].data == 1)


def test_rule2_weight_without_bias():
    out = check_pass(_layer_norm_graph(bias=False), fuse_layer_norm)
    assert ops(out) == ["layer_norm", "relu"] and len(out.nodes[0].inputs) == 2


def test_noop_when_the_mean_is_not_over_trailing_axes():
    g = Graph("not_trailing")
    x = g.add_input("x", (2, 5, 16))
    mean = g.apply("reduce_mean", [x], {"axes": (1,), "keepdims": 1})
    d = g.apply("sub", [x, mean])
    var = g.apply("reduce_mean", [g.apply("pow", [d, g.add_constant(
        np.array(2.0, np.float32), "two")])], {"axes": (1,), "keepdims": 1})
    ve = g.apply("add", [var, g.add_constant(np.array(1e-5, np.float32), "eps")])
    # normalised over axis 1 (not trailing): not a layer norm
    g.set_outputs([g.apply("div", [d, g.apply("sqrt", [ve])])])
    check_pass(g, fuse_layer_norm, changed=False)


def test_noop_when_the_centered_value_is_read_elsewhere():
    g = _layer_norm_graph(weight=False)
    d = next(n for n in g.nodes if n.op == "sub").outputs[0]
    g.set_outputs(list(g.outputs) + [d])
    check_pass(g, fuse_layer_norm, changed=False)


def test_noop_with_a_fourth_power_instead_of_a_square():
    check_pass(_layer_norm_graph(power=4.0), fuse_layer_norm, changed=False)
