"""IR core: construction, rewiring, copying, printing, and the verifier's rejections."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc
from graphcnn.ir import Graph, TensorType, Value


def small_graph() -> Graph:
    g = Graph("small")
    x = g.add_input("x", (1, 2, 6, 6))
    w = g.add_constant(np.random.default_rng(0).standard_normal((3, 2, 3, 3)), "w")
    y = g.apply("conv", [x, w], {"pads": (1, 1, 1, 1)}, name="conv")
    r = g.apply("relu", [y], name="relu")
    g.set_outputs([r])
    return g


def test_add_node_links_uses_both_ways_and_infers_types():
    g = small_graph()
    conv, relu = g.nodes
    assert conv.outputs[0].uses == [(relu, 0)]
    assert relu.inputs[0] is conv.outputs[0]
    assert conv.outputs[0].type == TensorType((1, 3, 6, 6))
    assert conv.attrs["strides"] == (1, 1) and conv.attrs["dilations"] == (1, 1)
    gc.verify(g)


def test_attrs_are_frozen_dicts():
    conv = small_graph().nodes[0]
    assert isinstance(conv.attrs, dict)
    with pytest.raises(TypeError):
        conv.attrs["groups"] = 2


def test_replace_all_uses_with_and_remove():
    g = small_graph()
    conv, relu = g.nodes
    g.replace_all_uses_with(relu.outputs[0], conv.outputs[0])
    assert g.outputs == [conv.outputs[0]]
    g.remove(relu)
    assert conv.outputs[0].uses == []
    gc.verify(g)
    with pytest.raises(gc.GraphError):
        g.remove(conv)  # still a graph output


def test_unique_names():
    g = Graph()
    x = g.add_input("x", (1, 4))
    a = g.apply("relu", [x], name="r")
    b = g.apply("relu", [a], name="r")
    assert a.name != b.name
    with pytest.raises(gc.GraphError):
        g.add_input("x", (1, 4))


def test_copy_is_deep_and_prints_the_same():
    g = small_graph()
    c = g.copy()
    assert str(c) == str(g)
    c.remove(c.nodes[1], safe=False)
    assert len(g.nodes) == 2 and len(g.nodes[0].outputs[0].uses) == 1
    assert c.constants[0].data is g.constants[0].data  # read-only arrays are shared


def test_printer_one_line_per_node():
    text = str(small_graph())
    lines = text.splitlines()
    assert lines[0] == "graph small(%x: f32[1,2,6,6]) {"
    assert lines[1] == "  const %w: f32[3,2,3,3]"
    assert lines[2].startswith("  %conv = conv(%x, %w) {") and lines[2].endswith(": f32[1,3,6,6]  # 1 use")
    assert lines[3] == "  %relu = relu(%conv) : f32[1,3,6,6]  # 0 uses"
    assert lines[-2:] == ["  return %relu", "}"]


def test_unknown_op_raises_unsupported():
    g = Graph()
    x = g.add_input("x", (1, 4))
    with pytest.raises(gc.UnsupportedOpError, match="frobnicate"):
        g.apply("frobnicate", [x])


def test_shape_error_names_node_and_op():
    g = Graph()
    x = g.add_input("x", (1, 2, 6, 6))
    w = g.add_constant(np.ones((3, 5, 3, 3), np.float32), "w")
    with pytest.raises(gc.ShapeError, match=r"node 'c' \(conv\).*2 channels"):
        g.apply("conv", [x, w], name="c")


# ----- the verifier rejects malformed graphs --------------------------------------------------
def test_verifier_rejects_cycle():
    g = small_graph()
    conv, relu = g.nodes
    # feed relu's output back into conv: conv now depends on its own consumer
    conv.inputs = (relu.outputs[0],) + conv.inputs[1:]
    relu.outputs[0].uses.append((conv, 0))
    g.nodes[0].inputs  # noqa: B018
    with pytest.raises(gc.GraphError, match="conv.*before it is defined"):
        gc.verify(g)
    with pytest.raises(gc.GraphError, match="cycle"):
        g.toposort()


def test_verifier_rejects_dangling_input():
    g = small_graph()
    stray = Value("stray", TensorType((1, 3, 6, 6)))
    relu = g.nodes[1]
    g.replace_input(relu, 0, stray)
    with pytest.raises(gc.GraphError, match="relu.*dangling"):
        gc.verify(g)


def test_verifier_rejects_wrong_recorded_shape():
    g = small_graph()
    g.nodes[1].outputs[0].type = TensorType((1, 3, 5, 5))
    with pytest.raises(gc.GraphError, match=r"relu.*f32\[1,3,5,5\].*f32\[1,3,6,6\]"):
        gc.verify(g)


def test_verifier_rejects_stale_use_list():
    g = small_graph()
    g.nodes[0].outputs[0].uses.clear()
    with pytest.raises(gc.GraphError, match="does not list this node"):
        gc.verify(g)


def test_verifier_rejects_undefined_output():
    g = small_graph()
    g.outputs = [Value("ghost", TensorType((1,)))]
    with pytest.raises(gc.GraphError, match="ghost"):
        gc.verify(g)
