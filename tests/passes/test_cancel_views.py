from __future__ import annotations

from graphcnn.passes.cancel_views import cancel_views
from pass_cases import check_pass, ops

from graphcnn.ir import Graph


def _g(shape=(2, 3, 4)):
    g = Graph("t")
    return g, g.add_input("x", shape)


def test_rule1_transposes_compose():
    g, x = _g()
    y = g.apply("transpose", [g.apply("transpose", [x], {"perm": (1, 2, 0)})], {"perm": (0, 2, 1)})
    g.set_outputs([g.apply("relu", [y])])
    out = check_pass(g, cancel_views)
    assert ops(out) == ["transpose", "relu"]
    assert out.nodes[0].attrs["perm"] == (1, 0, 2)


def test_rules_1_2_inverse_transposes_cancel():
    g, x = _g()
    y = g.apply("transpose", [g.apply("transpose", [x], {"perm": (2, 0, 1)})], {"perm": (1, 2, 0)})
    g.set_outputs([g.apply("relu", [y])])
    out = check_pass(g, cancel_views)
    assert ops(out) == ["relu"] and out.nodes[0].inputs[0] is out.inputs[0]


def test_rule3_reshape_chain_and_flatten():
    g, x = _g((2, 3, 4, 5))
    y = g.apply("flatten", [g.apply("reshape", [x], {"shape": (2, 12, 5)})], {"axis": 1})
    y = g.apply("unsqueeze", [g.apply("reshape", [y], {"shape": (6, 20)})], {"axes": (0,)})
    g.set_outputs([g.apply("relu", [y])])
    out = check_pass(g, cancel_views)
    assert ops(out) == ["reshape", "relu"]
    assert out.nodes[0].inputs[0] is out.inputs[0] and out.nodes[0].attrs["shape"] == (1, 6, 20)


def test_rule4_reshape_to_same_shape_and_shared_inner():
    g, x = _g()
    r = g.apply("reshape", [x], {"shape": (6, 4)})
    back = g.apply("reshape", [r], {"shape": (2, 3, 4)})
    g.set_outputs([g.apply("add", [back, x]), r])  # r has another user: it stays
    out = check_pass(g, cancel_views)
    assert ops(out) == ["reshape", "add"]


def test_noop():
    g, x = _g()
    g.set_outputs([g.apply("transpose", [g.apply("relu", [x])], {"perm": (2, 1, 0)})])
    check_pass(g, cancel_views, changed=False)
