from __future__ import annotations

import numpy as np
from graphcnn.passes.fold_constants import fold_constants
from pass_cases import check_pass, const, ops

from graphcnn.ir import Graph


def test_rule1_chain_of_constant_nodes_folds():
    g = Graph("t")
    x = g.add_input("x", (4, 3))
    w = g.apply("transpose", [const(g, (3, 4), 1)], {"perm": (1, 0)})
    w = g.apply("relu", [w])
    g.set_outputs([g.apply("matmul", [x, g.apply("transpose", [w], {"perm": (1, 0)})])])
    out = check_pass(g, fold_constants)
    assert ops(out) == ["matmul"]
    folded = out.nodes[0].inputs[1]
    assert folded.is_constant and folded.type.shape == (3, 4)


def test_rule1_size_limit_keeps_big_broadcast():
    g = Graph("t")
    x = g.add_input("x", (1, 64, 64, 64))
    big = g.apply("add", [const(g, (1, 1, 1, 1), 1), g.add_constant(np.zeros((1, 64, 64, 64), np.float32) + 1)])
    g.set_outputs([g.apply("add", [x, big])])
    check_pass(g, lambda gr: fold_constants(gr, limit_bytes=1024), changed=True)  # out == inputs' size
    g2 = Graph("t")
    x = g2.add_input("x", (1, 64, 64))
    grow = g2.apply("add", [const(g2, (1, 64, 1), 1), const(g2, (1, 1, 64), 2)])  # 64x growth
    g2.set_outputs([g2.apply("add", [x, grow])])
    out = check_pass(g2, lambda gr: fold_constants(gr, limit_bytes=1024), changed=False)
    assert ops(out) == ["add", "add"]


def test_rule2_constant_output():
    g = Graph("t")
    g.add_input("x", (2,))
    g.set_outputs([g.apply("relu", [const(g, (2, 2), 3)])])
    out = check_pass(g, fold_constants)
    assert ops(out) == [] and out.outputs[0].is_constant


def test_noop():
    g = Graph("t")
    g.set_outputs([g.apply("relu", [g.add_input("x", (2, 3))])])
    check_pass(g, fold_constants, changed=False)
