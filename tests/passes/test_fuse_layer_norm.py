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


def _convnext_norm_model() -> bytes:
    """conv -> Transpose(0,2,3,1) -> LayerNormalization(axis=-1) -> Transpose(0,3,1,2) -> conv,
    as both exporters write torchvision ConvNeXt's LayerNorm2d (20 channels: the last block of
    16 has padding lanes)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(2)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
    inits = [init("w1", 20, 3, 3, 3), init("b1", 20), init("g", 20), init("beta", 20),
             init("w2", 8, 20, 1, 1), init("b2", 8)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c1"], ["t1"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t1", "g", "beta"], ["ln"], axis=-1,
                              epsilon=1e-6),
             helper.make_node("Transpose", ["ln"], ["t2"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t2", "w2", "b2"], ["y"])]
    g = helper.make_graph(nodes, "convnext_norm", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 9, 11])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 8, 9, 11])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_rule4_channels_last_layer_norm_is_a_channel_norm():
    import graphcnn as gc
    graph = gc.from_onnx(_convnext_norm_model())
    out = check_pass(graph, fuse_layer_norm)
    assert ops(out) == ["conv", "channel_norm", "conv"]


@pytest.mark.parametrize("opt_level", [0, 1, 2, 3])
def test_convnext_norm_runs_blocked_between_convs(opt_level):
    from graphcnn.backends.reference import interpret

    import graphcnn as gc
    graph = gc.from_onnx(_convnext_norm_model())
    if opt_level >= 2:
        opt = gc.optimize(graph, opt_level=opt_level, target="llvm")
        names = ops(opt)
        norm = next(n for n in opt.nodes if n.op == "channel_norm")
        assert norm.attrs["layout"] == "NCHWc"
        convs = [i for i, n in enumerate(opt.nodes) if n.op == "conv"]
        assert not {"to_blocked", "from_blocked"} & set(names[convs[0]:convs[-1]]), names
    x = np.random.default_rng(3).standard_normal((1, 3, 9, 11)).astype(np.float32)
    want = interpret(graph, [x])[0]
    for target in ("llvm", "onnxruntime"):
        got = gc.compile(graph, target=target, opt_level=opt_level)(x)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
