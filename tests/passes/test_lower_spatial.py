"""passes/lower_spatial.py: each rule keeps the numbers (check_pass: reference before/after,
idempotence) and produces the ops it promises."""
from __future__ import annotations

import pytest
from graphcnn.passes.lower_spatial import lower_spatial
from pass_cases import check_pass, const, ops

from graphcnn.ir import Graph


def _graph(op, x_shape, attrs, w_shape=None, bias=False, runtime_weight=False):
    g = Graph("t")
    ins = [g.add_input("x", x_shape)]
    if w_shape is not None:
        ins.append(g.add_input("w", w_shape) if runtime_weight else const(g, w_shape, 2))
        if bias:
            ins.append(const(g, (w_shape[1] * attrs.get("groups", 1),), 3))
    g.set_outputs([g.apply(op, ins, attrs)])
    return g


@pytest.mark.parametrize("op,mode", [("depth_to_space", "DCR"), ("depth_to_space", "CRD"),
                                     ("space_to_depth", "DCR"), ("space_to_depth", "CRD")])
def test_rule1_block_rearrangements_are_views_and_a_transpose(op, mode):
    shape = (2, 12, 3, 4) if op == "depth_to_space" else (2, 3, 6, 4)
    out = check_pass(_graph(op, shape, {"blocksize": 2, "mode": mode}), lower_spatial)
    assert ops(out) == ["reshape", "transpose", "reshape"]


def test_rule2_kernel_equal_to_stride_is_one_gemm():
    g = _graph("conv_transpose", (1, 8, 4, 5), {"strides": (2, 2), "groups": 2}, (8, 3, 2, 2),
               bias=True)
    out = check_pass(g, lower_spatial)
    assert ops(out) == ["conv", "reshape", "transpose", "reshape"]
    assert out.nodes[0].inputs[1].shape == (24, 4, 1, 1)


@pytest.mark.parametrize("x,w,attrs,phases", [
    ((1, 3, 5, 6), (3, 4, 3, 3), {"strides": (2, 2), "pads": (1, 1, 1, 1),
                                  "output_padding": (1, 1)}, 4),
    ((1, 4, 4, 5), (4, 3, 2, 3), {"strides": (3, 1), "groups": 2}, 3),  # kernel < stride
    ((2, 3, 9), (3, 5, 4), {"strides": (3,), "pads": (1, 2)}, 3),
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"strides": (2, 1, 2), "pads": (0, 1, 0, 1, 0, 0)}, 4),
], ids=["stride2-outpad", "kernel-below-stride", "1d", "3d"])
def test_rule3_strided_transposed_conv_splits_into_phases(x, w, attrs, phases):
    out = check_pass(_graph("conv_transpose", x, attrs, w, bias=True), lower_spatial)
    assert ops(out).count("conv") == phases and "concat" in ops(out)
    assert all(n.attrs["strides"] == (1,) * (len(x) - 2) for n in out.nodes if n.op == "conv")


@pytest.mark.parametrize("attrs,runtime", [
    ({"strides": (2, 2), "dilations": (2, 1)}, False),
    ({"strides": (3, 2), "pads": (0, 0, -1, -1)}, False),
    ({"strides": (2, 2), "pads": (1, 0, 0, 1)}, True),
    ({"pads": (1, 1, 0, 2)}, False),
], ids=["dilated", "extended", "runtime-weight", "stride1"])
def test_rule4_zero_insertion_and_one_conv(attrs, runtime):
    g = _graph("conv_transpose", (1, 2, 4, 5), attrs, (2, 3, 3, 3), runtime_weight=runtime)
    out = check_pass(g, lower_spatial)
    assert ops(out).count("conv") == 1 and "conv_transpose" not in ops(out)


def test_noop_without_spatial_ops():
    g = _graph("relu", (1, 2, 3, 4), {})
    check_pass(g, lower_spatial, changed=False)
