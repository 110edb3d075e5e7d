from __future__ import annotations

from graphcnn.passes.concat_prefix import reuse_concat_prefixes
from pass_cases import check_pass, ops

from graphcnn.ir import Graph


def _features(n: int):
    g = Graph("t")
    x = g.add_input("x", (1, 4, 5, 5))
    return g, [g.apply("relu", [x])] + [g.apply("sigmoid", [g.apply("relu", [x])])
                                         for _ in range(n - 1)]


def test_rule1_dense_block_becomes_a_chain():
    """concat(f0, f1), concat(f0, f1, f2), concat(f0, f1, f2, f3) -> each reads the last."""
    g, f = _features(4)
    cats = [g.apply("concat", f[:k], {"axis": 1}) for k in (2, 3, 4)]
    g.set_outputs([g.apply("add", [cats[0], cats[0]]), cats[1], cats[2]])
    out = check_pass(g, reuse_concat_prefixes)
    concats = [n for n in out.nodes if n.op == "concat"]
    assert [len(c.inputs) for c in concats] == [2, 2, 2]
    assert concats[1].inputs[0] is concats[0].outputs[0]
    assert concats[2].inputs[0] is concats[1].outputs[0]


def test_rule2_other_axis_or_no_prefix_left_alone():
    g, f = _features(3)
    a = g.apply("concat", f[:2], {"axis": 1})
    b = g.apply("concat", f, {"axis": 2})          # other axis
    c = g.apply("concat", [f[1], f[0], f[2]], {"axis": 1})  # not a prefix
    g.set_outputs([a, b, c])
    out = check_pass(g, reuse_concat_prefixes, changed=False)
    assert ops(out).count("concat") == 3
