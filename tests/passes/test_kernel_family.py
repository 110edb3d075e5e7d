from __future__ import annotations

import pytest
from graphcnn.passes.kernel_family import WEIGHTS_IN_CACHE, choose_kernel_family, weights_stream
from graphcnn.passes.layout import choose_layout
from graphcnn.passes.util import annotation
from pass_cases import check_pass, const, conv_graph

from graphcnn.ir import Graph, Node


def blocked(g: Graph) -> Graph:
    """The graph in the blocked layout the kernel families are chosen on (16 lanes)."""
    choose_layout(g, block=16)
    return g


def conv_family(g: Graph) -> str:
    out = check_pass(blocked(g), choose_kernel_family)
    conv: Node = next(n for n in out.nodes if n.op == "conv")
    return annotation(out, conv, "kernel")


@pytest.mark.parametrize("kwargs,family", [
    ({"c_in": 16, "c_out": 16, "k": 1}, "direct"),                   # 1x1: a GEMM over pixels
    ({"c_in": 32, "c_out": 32, "k": 3, "size": 16, "pads": (1, 1, 1, 1)}, "winograd"),  # rule 3
    ({"c_in": 32, "c_out": 32, "k": 3, "size": 14, "pads": (1, 1, 1, 1)}, "direct"),   # 196 px
    ({"c_in": 256, "c_out": 256, "k": 3, "size": 16, "pads": (1, 1, 1, 1)}, "winograd"),
    ({"c_in": 256, "c_out": 512, "k": 3, "size": 16, "pads": (1, 1, 1, 1)}, "direct"),  # big U
    ({"c_in": 16, "c_out": 32, "k": 3, "size": 16, "pads": (1, 1, 1, 1)}, "direct"),   # few channels
    ({"c_in": 32, "c_out": 32, "k": 3, "size": 14, "strides": (2, 2)}, "direct"),      # strided
    ({"c_in": 32, "c_out": 32, "k": 3, "size": 14, "groups": 32}, "depthwise"),
    ({"c_in": 32, "c_out": 64, "k": 3, "size": 14, "groups": 2}, "grouped"),
    ({"c_in": 128, "c_out": 128, "k": 3, "size": 8, "groups": 32}, "lane_groups"),  # ResNeXt
    ({"c_in": 48, "c_out": 48, "k": 3, "size": 8, "groups": 6}, "lane_groups"),     # RegNet
    ({"c_in": 64, "c_out": 64, "k": 3, "size": 8, "groups": 4}, "grouped"),  # a block a group
    ({"c_in": 1, "c_out": 6, "k": 5, "size": 28}, "row"),                      # planar, few outs
    ({"c_in": 32, "c_out": 32, "k": 3, "size": 9, "pads": (1, 1, 1, 1)}, "direct"),    # 9 tiles
    ({"c_in": 128, "c_out": 32, "k": 3, "size": 8, "pads": (1, 1, 1, 1)}, "direct"),   # 3b: few
    ({"c_in": 512, "c_out": 512, "k": 3, "size": 8, "pads": (1, 1, 1, 1)}, "direct"),  # 3b: big U
    ({"c_in": 4, "c_out": 8, "k": 5, "size": 10}, "direct"),                           # rule 4
])
def test_conv_rules(kwargs, family):
    g, y = conv_graph(**kwargs)
    g.set_outputs([y])
    assert conv_family(g) == family


@pytest.mark.parametrize("size,batch,family", [(14, 1, "direct"), (14, 2, "winograd"),
                                               (8, 1, "winograd_f2"), (8, 4, "winograd"),
                                               (8, 16, "winograd"), (7, 1, "winograd_f2"),
                                               (9, 1, "direct"), (4, 1, "direct"),
                                               (4, 4, "winograd_f2")])
def test_rule3_pixels_and_tiles_count_over_the_batch(size, batch, family):
    """14x14 at batch 1 streams the transformed weights for too little work; batch 2 does not
    (the weights are read once for both images). An 8x8 map has 4 tiles, but the kernel's
    chunks of tiles span images: CIFAR VGG's 8x8 layers at batch 16 take Winograd. Rule 3b:
    maps of at most 8x8 that rule 3 leaves take F(2x2) given 16 2x2 tiles over the batch (a
    4x4 map has 4, 16 at batch 4); 9x9 is above its bound."""
    g = Graph("t")
    x = g.add_input("x", (batch, 64, size, size))
    g.set_outputs([g.apply("conv", [x, const(g, (64, 64, 3, 3), 1)], {"pads": (1, 1, 1, 1)})])
    assert conv_family(g) == family


def _conv_and_big_gemm(c_in: int, c_out: int, size: int, gemm_floats: int) -> Graph:
    """A 3x3 conv and, beside it, a gemm whose weights bring the model to ~gemm_floats."""
    g = Graph("t")
    x = g.add_input("x", (1, c_in, size, size))
    y = g.apply("conv", [x, const(g, (c_out, c_in, 3, 3), 1)], {"pads": (1, 1, 1, 1)})
    z = g.add_input("z", (1, 1024))
    g.set_outputs([y, g.apply("gemm", [z, const(g, (1024, gemm_floats // 1024), 2)])])
    return g


@pytest.mark.parametrize("c_in,size,streams,family", [
    (128, 28, True, "direct"),      # ResNet-50's 28x28 layers: weights 2.9x the activations
    (128, 28, False, "winograd"),   # the same layer in a model whose weights stay in cache
    (32, 27, True, "winograd"),     # SqueezeNet's expand convs: 1.3x
])
def test_rule3_weight_ratio_when_weights_stream(c_in, size, streams, family):
    g = _conv_and_big_gemm(c_in, 128, size, (WEIGHTS_IN_CACHE // 4 + 4096) if streams else 4096)
    assert weights_stream(g) is streams
    assert conv_family(g) == family


def test_rule1_gemm():
    g = Graph("t")
    y = g.apply("gemm", [g.add_input("x", (2, 5)), const(g, (5, 3), 1)])
    g.set_outputs([y])
    out = check_pass(g, choose_kernel_family)
    assert annotation(out, out.nodes[0], "kernel") == "gemm"


def test_nchw_conv_runs_the_generic_loops():
    g, y = conv_graph(c_in=16, c_out=16, k=3)
    g.set_outputs([y])
    out = check_pass(g, choose_kernel_family)
    assert annotation(out, out.nodes[0], "kernel") == "generic"


@pytest.mark.parametrize("b_shape,c_shape,family", [
    ((5, 3), (3,), "gemm"), ((5, 3), (2, 3), "gemm"), ((5, 3), (2, 1), "gemm"),
    ((5, 3), (1, 1), "gemm"), ((5, 3), None, "gemm")])
def test_rule1_gemm_with_c(b_shape, c_shape, family):
    g = Graph("t")
    ins = [g.add_input("x", (2, 5)), const(g, b_shape, 1)]
    ins += [] if c_shape is None else [const(g, c_shape, 2)]
    g.set_outputs([g.apply("gemm", ins)])
    out = check_pass(g, choose_kernel_family)
    assert annotation(out, out.nodes[0], "kernel") == family


def test_rule1_gemm_with_b_at_run_time_is_generic():
    g = Graph("t")
    y = g.apply("gemm", [g.add_input("x", (2, 5)), g.add_input("w", (5, 3))])
    g.set_outputs([y])
    out = check_pass(g, choose_kernel_family)
    assert annotation(out, out.nodes[0], "kernel") == "generic"


def test_noop_without_conv():
    g = Graph("t")
    g.set_outputs([g.apply("relu", [g.add_input("x", (2, 5))])])
    check_pass(g, choose_kernel_family, changed=False)
