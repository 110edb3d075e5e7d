from __future__ import annotations

import numpy as np
from graphcnn.passes.fold_batch_norm import fold_batch_norm
from pass_cases import check_pass, const, conv_graph, ops

from graphcnn.ir import Graph


def _bn(g: Graph, x, c: int):
    params = [const(g, (c,), 10), const(g, (c,), 11), const(g, (c,), 12),
              const(g, (c,), 13, 0.5, 1.5)]
    return g.apply("batch_norm", [x] + params, {"epsilon": 1e-3})


def test_rule1_into_conv_with_and_without_bias():
    for bias in (True, False):
        g, y = conv_graph(bias=bias, pads=(1, 1, 1, 1))
        g.set_outputs([g.apply("relu", [_bn(g, y, 8)])])
        out = check_pass(g, fold_batch_norm)
        assert ops(out) == ["conv", "relu"] and len(out.nodes[0].inputs) == 3
        assert out.nodes[0].name == "conv"  # the rebuilt conv keeps its name


def test_rule2_into_gemm_both_transB():
    for trans_b in (0, 1):
        g = Graph("t")
        x = g.add_input("x", (3, 5))
        b = const(g, (4, 5) if trans_b else (5, 4), 1)
        y = g.apply("gemm", [x, b, const(g, (4,), 2)], {"transB": trans_b, "beta": 0.5})
        g.set_outputs([_bn(g, y, 4)])
        out = check_pass(g, fold_batch_norm)
        assert ops(out) == ["gemm"] and out.nodes[0].attrs["beta"] == 1.0


def test_rule3_left_alone():
    # conv output used twice; conv with an activation; batch_norm on a graph input
    g, y = conv_graph()
    g.set_outputs([_bn(g, y, 8), y])
    check_pass(g, fold_batch_norm, changed=False)
    g, y = conv_graph(activation="relu")
    g.set_outputs([_bn(g, y, 8)])
    check_pass(g, fold_batch_norm, changed=False)
    g = Graph("t")
    g.set_outputs([_bn(g, g.add_input("x", (1, 8, 2, 2)), 8)])
    assert ops(check_pass(g, fold_batch_norm, changed=False)) == ["batch_norm"]


def test_rule1_weights_as_float64_product_rounded_once():
    # the folded weights are w * inv computed in float64 and rounded once to float32, bit for
    # bit (the pass multiplies in small cast buffers, several convs at once on two threads);
    # every conv gets its own weights, read-only like every constant
    g, y = conv_graph(bias=True, pads=(1, 1, 1, 1))
    wants = []
    for c_in, c_out in ((8, 8), (8, 16), (16, 4)):
        assert y.type.shape[1] == c_in
        if wants:
            y = g.apply("conv", [y, const(g, (c_out, c_in, 3, 3), c_out), const(g, (c_out,), 5)],
                        {"pads": (1, 1, 1, 1)})
        bn = _bn(g, y, c_out)
        scale, _, _, var = (v.data.astype(np.float64) for v in bn.producer.inputs[1:])
        inv = scale / np.sqrt(var + 1e-3)
        w = y.producer.inputs[1].data.astype(np.float64)
        wants.append((w * inv[:, None, None, None]).astype(np.float32))
        y = g.apply("relu", [bn])
    g.set_outputs([y])
    out = check_pass(g, fold_batch_norm)
    got = [n.inputs[1].data for n in out.nodes if n.op == "conv"]
    assert len(got) == 3
    for a, b in zip(got, wants):
        assert a.dtype == np.float32 and not a.flags.writeable
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_rule1_chained_batch_norms_fold_in_rounds():
    """bn(bn(conv)): the second becomes foldable once the first is folded (a second round)."""
    g, y = conv_graph(bias=True, pads=(1, 1, 1, 1))
    g.set_outputs([g.apply("relu", [_bn(g, _bn(g, y, 8), 8)])])
    out = check_pass(g, fold_batch_norm)
    assert ops(out) == ["conv", "relu"]
