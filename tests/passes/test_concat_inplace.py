from __future__ import annotations

from graphcnn.passes.concat_inplace import mark_concat_inplace
from graphcnn.passes.util import annotations
from pass_cases import check_pass, conv_graph

from graphcnn.ir import Graph


def _two_branches(batch: int = 1):
    g = Graph("t")
    x = g.add_input("x", (batch, 4, 5, 5))
    a = g.apply("relu", [x], name="a")
    b = g.apply("sigmoid", [x], name="b")
    return g, x, a, b


def test_rules_1_2_marks_concat_and_producers():
    g, _, a, b = _two_branches()
    g.set_outputs([g.apply("relu", [g.apply("concat", [a, b], {"axis": 1}, name="cat")])])
    out = check_pass(g, mark_concat_inplace)
    assert annotations(out) == {"cat": {"concat_inplace": True},
                                "a": {"write_into": ("cat", 0)}, "b": {"write_into": ("cat", 4)}}
    assert "concat(%a, %b)" in str(out)  # the graph itself is unchanged


def test_rule1_batch_2_slices_not_contiguous():
    g, _, a, b = _two_branches(batch=2)
    g.set_outputs([g.apply("concat", [a, b], {"axis": 1})])
    out = check_pass(g, mark_concat_inplace, changed=False)
    assert annotations(out) == {}


def test_rule2_input_with_other_use_or_graph_input():
    g, x, a, b = _two_branches()
    g.set_outputs([g.apply("concat", [a, b], {"axis": 1}), a])
    check_pass(g, mark_concat_inplace, changed=False)
    g, x, a, b = _two_branches()
    g.set_outputs([g.apply("concat", [a, x], {"axis": 1})])
    check_pass(g, mark_concat_inplace, changed=False)


def test_rule3_marks_are_rederived():
    g, y = conv_graph(pads=(1, 1, 1, 1))
    z = g.apply("relu", [g.inputs[0]], name="r")
    cat = g.apply("concat", [y, z], {"axis": 1}, name="cat")
    g.set_outputs([cat])
    assert mark_concat_inplace(g)
    g.set_outputs([cat, z])  # z becomes an output: the concat no longer qualifies
    assert mark_concat_inplace(g) and annotations(g) == {}


def test_rule2_chain_with_other_readers():
    """concat(concat(a, b), c) where the inner result is also read by c's producer: both
    concats are marked, the inner one writes into the outer at offset 0."""
    g, _, a, b = _two_branches()
    inner = g.apply("concat", [a, b], {"axis": 1}, name="inner")
    c = g.apply("relu", [inner], name="c")
    g.set_outputs([g.apply("concat", [inner, c], {"axis": 1}, name="outer")])
    out = check_pass(g, mark_concat_inplace)
    notes = annotations(out)
    assert notes["inner"] == {"concat_inplace": True, "write_into": ("outer", 0)}
    assert notes["outer"] == {"concat_inplace": True}
    assert notes["c"] == {"write_into": ("outer", inner.shape[1])}
