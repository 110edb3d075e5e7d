from __future__ import annotations

import math

import pytest
from graphcnn.passes.fold_pad import fold_pad
from pass_cases import check_pass, const, ops

from graphcnn.ir import Graph


def _padded(pads=(0, 0, 1, 2, 0, 0, 2, 1), value=0.0):
    g = Graph("t")
    x = g.add_input("x", (1, 4, 6, 6))
    return g, g.apply("pad", [x], {"pads": pads, "value": value})


def test_rule1_conv():
    g, p = _padded()
    g.set_outputs([g.apply("conv", [p, const(g, (8, 4, 3, 3), 1)], {"pads": (1, 0, 0, 1)})])
    out = check_pass(g, fold_pad)
    assert ops(out) == ["conv"] and out.nodes[0].attrs["pads"] == (2, 2, 2, 2)


def test_rule2_max_pool_only_with_minus_inf():
    g, p = _padded((0, 0, 1, 1, 0, 0, 1, 1), -math.inf)
    g.set_outputs([g.apply("max_pool", [p], {"kernel_shape": (3, 3)})])
    assert ops(check_pass(g, fold_pad)) == ["max_pool"]
    g, p = _padded((0, 0, 1, 1, 0, 0, 1, 1), 0.0)  # a zero pad can win a max over negatives
    g.set_outputs([g.apply("max_pool", [p], {"kernel_shape": (3, 3)})])
    check_pass(g, fold_pad, changed=False)


@pytest.mark.parametrize("op,attrs,changed", [
    ("sum_pool", {}, True),                                                  # rule 3
    ("avg_pool", {}, True),                                                  # rule 4, no pads
    ("avg_pool", {"pads": (1, 1, 1, 1), "count_include_pad": True}, True),    # rule 4
    ("avg_pool", {"pads": (1, 1, 1, 1)}, False),       # pool pads not counted, explicit ones were
    ("avg_pool", {"ceil_mode": True, "strides": (2, 2)}, False),
])
def test_rules_3_4_sum_and_avg_pool(op, attrs, changed):
    g, p = _padded((0, 0, 1, 1, 0, 0, 1, 1))
    g.set_outputs([g.apply(op, [p], {"kernel_shape": (3, 3), **attrs})])
    check_pass(g, fold_pad, changed=changed)


def test_rule5_and_noop():
    g, p = _padded((0, 0, 3, 3, 0, 0, 3, 3))  # pool pads must be < kernel: not folded
    g.set_outputs([g.apply("sum_pool", [p], {"kernel_shape": (2, 2)})])
    check_pass(g, fold_pad, changed=False)
    g, p = _padded((0, 1, 0, 0, 0, 0, 0, 0))  # channel padding is not a conv pad
    g.set_outputs([g.apply("conv", [p, const(g, (2, 5, 1, 1), 1)])])
    check_pass(g, fold_pad, changed=False)
    g, p = _padded(value=1.0)
    g.set_outputs([g.apply("conv", [p, const(g, (2, 4, 1, 1), 1)])])
    check_pass(g, fold_pad, changed=False)


def test_only_constant_pads_fold():
    """A reflect / edge / wrap pad is not a conv's zero padding: it stays."""
    for mode in ("reflect", "edge", "wrap"):
        g = Graph("t")
        x = g.add_input("x", (1, 3, 8, 8))
        p = g.apply("pad", [x], {"pads": (0, 0, 1, 1, 0, 0, 1, 1), "mode": mode})
        g.set_outputs([g.apply("conv", [p, const(g, (4, 3, 3, 3), 1)])])
        assert fold_pad(g) is False and [n.op for n in g.nodes] == ["pad", "conv"]
