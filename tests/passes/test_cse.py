from __future__ import annotations

import numpy as np
from graphcnn.passes.cse import eliminate_common_subexpressions
from pass_cases import check_pass, ops

from graphcnn.ir import Graph


def test_rule1_equal_constants_merge_then_rule2_nodes():
    g = Graph("t")
    x = g.add_input("x", (2, 3))
    c = np.arange(3, dtype=np.float32) + 0.5
    a = g.apply("add", [x, g.add_constant(c, "c1")])
    b = g.apply("add", [x, g.add_constant(c.copy(), "c2")])  # same content, another Value
    g.set_outputs([g.apply("mul", [g.apply("relu", [a]), g.apply("relu", [b])])])
    out = check_pass(g, eliminate_common_subexpressions)
    assert ops(out) == ["add", "relu", "mul"]
    assert out.nodes[2].inputs[0] is out.nodes[2].inputs[1]


def test_rule2_needs_same_attrs():
    g = Graph("t")
    x = g.add_input("x", (2, 3))
    a = g.apply("leaky_relu", [x], {"alpha": 0.1})
    b = g.apply("leaky_relu", [x], {"alpha": 0.2})
    g.set_outputs([g.apply("add", [a, b])])
    check_pass(g, eliminate_common_subexpressions, changed=False)


def test_different_constants_kept():
    g = Graph("t")
    x = g.add_input("x", (3,))
    a = g.apply("add", [x, g.add_constant(np.ones(3, np.float32))])
    b = g.apply("add", [x, g.add_constant(np.full(3, 2, np.float32))])
    g.set_outputs([g.apply("add", [a, b])])
    assert ops(check_pass(g, eliminate_common_subexpressions, changed=False)) == ["add"] * 3


def test_rule1_same_bytes_other_shape_kept():
    # the content key covers dtype and shape, not only the bytes
    g = Graph("t")
    x = g.add_input("x", (6,))
    c = np.arange(6, dtype=np.float32)
    a = g.apply("add", [x, g.add_constant(c, "c1")])
    r = g.apply("reshape", [a], {"shape": (2, 3)})
    y = g.apply("add", [r, g.add_constant(c.reshape(2, 3), "c2")])
    g.set_outputs([y])
    out = check_pass(g, eliminate_common_subexpressions, changed=False)
    assert len(out.constants) == 2
