from __future__ import annotations

from graphcnn.passes.dce import eliminate_dead_code
from pass_cases import check_pass, const, ops

from graphcnn.ir import Graph


def _graph() -> tuple[Graph, object]:
    g = Graph("t")
    x = g.add_input("x", (2, 3))
    return g, g.apply("relu", [x])


def test_rule1_dead_chain_removed():
    g, y = _graph()
    dead = g.apply("sigmoid", [g.apply("add", [y, const(g, (2, 3), 1)])])
    assert dead.uses == []
    g.set_outputs([y])
    out = check_pass(g, eliminate_dead_code)
    assert ops(out) == ["relu"]


def test_noop_and_outputs_kept():
    g, y = _graph()
    z = g.apply("sigmoid", [y])
    g.set_outputs([y, z])  # y is an output and used: both stay
    assert ops(check_pass(g, eliminate_dead_code, changed=False)) == ["relu", "sigmoid"]
