from __future__ import annotations

import pytest
from graphcnn.passes.fuse_activation import fuse_conv_activation
from pass_cases import check_pass, const, conv_graph, ops

from graphcnn.ir import Graph

ACTIVATIONS = [("relu", {}, "relu", ()), ("clip", {"min": 0.0, "max": 6.0}, "clip", (0.0, 6.0)),
               ("leaky_relu", {"alpha": 0.2}, "leaky_relu", (0.2,)), ("sigmoid", {}, "sigmoid", ())]


@pytest.mark.parametrize("op,attrs,kind,params", ACTIVATIONS)
def test_rule2_activation_into_conv(op, attrs, kind, params):
    g, y = conv_graph(pads=(1, 1, 1, 1))
    g.set_outputs([g.apply(op, [y], attrs)])
    out = check_pass(g, fuse_conv_activation)
    assert ops(out) == ["conv"]
    assert (out.nodes[0].attrs["activation"], out.nodes[0].attrs["activation_params"]) == (
        kind, params)


def test_rule1_bias_add_then_activation():
    for shape in ((8, 1, 1), (1, 8, 1, 1)):
        for bias in (True, False):
            g, y = conv_graph(bias=bias)
            g.set_outputs([g.apply("relu", [g.apply("add", [const(g, shape, 7), y])])])
            out = check_pass(g, fuse_conv_activation)
            assert ops(out) == ["conv"] and len(out.nodes[0].inputs) == 3


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(8, 1, 1), (1, 8, 1, 1)])
def test_rule1b_per_channel_scale_into_conv_weights(shape, bias):
    g, y = conv_graph(bias=bias)
    scaled = g.apply("mul", [const(g, shape, 7), y])
    g.set_outputs([g.apply("relu", [g.apply("add", [scaled, const(g, (8, 1, 1), 8)])])])
    out = check_pass(g, fuse_conv_activation)
    assert ops(out) == ["conv"] and out.nodes[0].attrs["activation"] == "relu"


def test_rule1b_noop_for_a_scale_that_is_not_per_channel():
    g, y = conv_graph()
    g.set_outputs([g.apply("mul", [y, const(g, (1, 1, 4), 7)])])
    check_pass(g, fuse_conv_activation, changed=False)


def test_rule3_gemm_activation():
    g = Graph("t")
    x = g.add_input("x", (2, 5))
    y = g.apply("gemm", [x, const(g, (4, 5), 1), const(g, (4,), 2)], {"transB": 1})
    g.set_outputs([g.apply("relu", [y])])
    out = check_pass(g, fuse_conv_activation)
    assert ops(out) == ["gemm"] and out.nodes[0].attrs["activation"] == "relu"


def test_noop_cases():
    # a second activation cannot fuse into an epilogue that is taken; shared outputs stay
    g, y = conv_graph(activation="relu")
    g.set_outputs([g.apply("sigmoid", [y])])
    check_pass(g, fuse_conv_activation, changed=False)
    g, y = conv_graph()
    g.set_outputs([g.apply("relu", [y]), y])
    check_pass(g, fuse_conv_activation, changed=False)
    g, y = conv_graph()  # a non per-channel add is not a bias
    g.set_outputs([g.apply("add", [y, const(g, (1, 1, 4, 4), 5)])])
    check_pass(g, fuse_conv_activation, changed=False)


EXPECTED_RELU6 = """\
graph t(%x: f32[1,2,2,2]) {
  const %c: f32[3,2,1,1]
  const %c_1: f32[3]
  %conv = conv(%x, %c, %c_1) {activation="clip", activation_params=[0.0,6.0], dilations=[1,1], \
groups=1, layout="NCHW", out_block=0, out_dtype="", pads=[0,0,0,0], pool=[], residual=False, strides=[1,1]} \
: f32[1,3,2,2]  # 0 uses
  return %conv
}"""


def test_rule2_relu6_expected_ir_text():
    g, y = conv_graph(c_in=2, c_out=3, k=1, size=2)
    g.set_outputs([g.apply("clip", [y], {"min": 0.0, "max": 6.0}, name="relu6")])
    assert str(check_pass(g, fuse_conv_activation)) == EXPECTED_RELU6


def _bn(g: Graph, x, c: int, **attrs):
    return g.apply("batch_norm", [x, const(g, (c,), 1), const(g, (c,), 2), const(g, (c,), 3),
                                  const(g, (c,), 4, 0.5, 2.0)], attrs)


@pytest.mark.parametrize("op, attrs, kind", [("relu", {}, "relu"),
                                             ("clip", {"min": 0.0, "max": 6.0}, "clip"),
                                             ("sigmoid", {}, "sigmoid")])
def test_rule4_activation_into_batch_norm(op, attrs, kind):
    g = Graph("t")
    x = g.add_input("x", (1, 6, 5, 5))
    g.set_outputs([g.apply(op, [_bn(g, x, 6)], attrs)])
    out = check_pass(g, fuse_conv_activation)
    assert ops(out) == ["batch_norm"] and out.nodes[0].attrs["activation"] == kind


def test_rule4_blocked_batch_norm_takes_only_zero_preserving_activations():
    """sigmoid(0) = 0.5 would fill a blocked tensor's padding lanes; relu keeps them zero."""
    for op, fused in (("relu", True), ("sigmoid", False)):
        g = Graph("t")
        x = g.add_input("x", (1, 1, 5, 5, 8))
        bn = g.apply("batch_norm", [x] + [const(g, (8,), k) for k in range(3)]
                     + [const(g, (8,), 3, 0.5, 2.0)], {"layout": "NCHWc"})
        g.set_outputs([g.apply(op, [bn])])
        check_pass(g, fuse_conv_activation, changed=fused)
