from __future__ import annotations

from graphcnn.passes.fuse_activation import fuse_conv_activation
from graphcnn.passes.fuse_residual import fuse_residual_add
from pass_cases import check_pass, conv_graph, ops


def test_rule1_residual_then_relu():
    g, y = conv_graph(c_in=8, c_out=8, pads=(1, 1, 1, 1))
    g.set_outputs([g.apply("relu", [g.apply("add", [g.inputs[0], y])])])
    out = check_pass(g, fuse_residual_add)
    assert ops(out) == ["conv", "relu"] and out.nodes[0].attrs["residual"]
    assert out.nodes[0].inputs[3] is out.inputs[0]
    out = check_pass(out, fuse_conv_activation)
    assert ops(out) == ["conv"] and out.nodes[0].attrs["activation"] == "relu"


def test_rule2_zero_bias_added():
    g, y = conv_graph(c_in=8, c_out=8, pads=(1, 1, 1, 1), bias=False)
    g.set_outputs([g.apply("add", [y, g.inputs[0]])])
    out = check_pass(g, fuse_residual_add)
    assert len(out.nodes[0].inputs) == 4 and not out.nodes[0].inputs[2].data.any()


def test_rule1_two_convs_fuses_later_one():
    g, y = conv_graph(c_in=8, c_out=8, pads=(1, 1, 1, 1))
    w = g.nodes[0].inputs[1]
    z = g.apply("conv", [g.inputs[0], w], {"pads": (1, 1, 1, 1)}, name="second")
    g.set_outputs([g.apply("add", [y, z])])
    out = check_pass(g, fuse_residual_add)
    assert [n.name for n in out.nodes] == ["conv", "second"] and out.nodes[1].attrs["residual"]


def test_noop_cases():
    g, y = conv_graph(c_in=8, c_out=8, pads=(1, 1, 1, 1), activation="relu")
    g.set_outputs([g.apply("add", [y, g.inputs[0]])])  # activation comes before the add here
    check_pass(g, fuse_residual_add, changed=False)
    g, y = conv_graph(c_in=8, c_out=8, pads=(1, 1, 1, 1))
    g.set_outputs([g.apply("add", [y, y])])  # x + x: the conv output has two uses
    check_pass(g, fuse_residual_add, changed=False)
