from __future__ import annotations

from graphcnn.passes.remove_identity import remove_identity
from pass_cases import check_pass, ops

from graphcnn.ir import Graph


def test_rules_1_2_identity_and_dropout():
    g = Graph("t")
    x = g.add_input("x", (2, 3))
    y = g.apply("relu", [g.apply("dropout", [g.apply("identity", [x])], {"ratio": 0.3})])
    g.set_outputs([y])
    out = check_pass(g, remove_identity)
    assert ops(out) == ["relu"] and out.nodes[0].inputs[0] is out.inputs[0]


def test_noop():
    g = Graph("t")
    g.set_outputs([g.apply("relu", [g.add_input("x", (2, 3))])])
    check_pass(g, remove_identity, changed=False)
