from __future__ import annotations

from graphcnn.passes.split_strided_1x1 import split_strided_1x1
from pass_cases import check_pass, conv_graph, ops


def test_rule1_strided_1x1_becomes_subsample_and_conv():
    g, y = conv_graph(c_in=4, c_out=16, k=1, size=7, strides=(2, 2))
    g.set_outputs([y])
    out = check_pass(g, split_strided_1x1)
    assert ops(out) == ["max_pool", "conv"]
    assert out.nodes[0].attrs["kernel_shape"] == (1, 1) and out.nodes[0].attrs["strides"] == (2, 2)
    assert out.nodes[1].attrs["strides"] == (1, 1) and out.nodes[1].name == "conv"


def test_noop_cases():
    for k, attrs in [(3, {"strides": (2, 2)}), (1, {"strides": (1, 1)}),
                     (1, {"strides": (2, 2), "pads": (1, 1, 1, 1)})]:
        g, y = conv_graph(c_in=4, c_out=16, k=k, size=7, **attrs)
        g.set_outputs([y])
        check_pass(g, split_strided_1x1, changed=False)
    g, y = conv_graph(c_in=4, c_out=4, k=1, size=7, strides=(2, 2))  # too few output channels
    g.set_outputs([y])
    check_pass(g, split_strided_1x1, changed=False)
