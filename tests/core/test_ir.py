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


def test_verifier_rejects_wrong_recorded_shape_of_a_node_it_verified_before():
    """The verifier memoises shape rules by (op, attrs, input types): a node it has passed once
    is still checked against its recorded types afterwards."""
    g = small_graph()
    gc.verify(g)
    g.nodes[1].outputs[0].type = TensorType((1, 3, 5, 5))
    with pytest.raises(gc.GraphError, match=r"relu.*f32\[1,3,5,5\].*f32\[1,3,6,6\]"):
        gc.verify(g)
    g.nodes[1].outputs[0].type = TensorType((1, 3, 6, 6))
    gc.verify(g)
    g.nodes[0].outputs[0].type = TensorType((1, 3, 3, 3))
    with pytest.raises(gc.GraphError, match=r"conv.*f32\[1,3,3,3\].*f32\[1,3,6,6\]"):
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


# ----- lazily loaded constants (the ir.LazyData hook) -------------------------------------------
class Lazy:
    """The smallest LazyData: an array made on first load, counted."""

    def __init__(self, array: np.ndarray):
        self.shape, self.dtype, self._array, self.loads = array.shape, array.dtype, array, 0

    def load(self) -> np.ndarray:
        self.loads += 1
        self._array.setflags(write=False)
        return self._array


def lazy_graph() -> tuple[Graph, Lazy]:
    want = np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(np.float32)
    source = Lazy(want)
    g = Graph("lazy")
    x = g.add_input("x", (1, 2, 6, 6))
    w = g.restore_constant("w", TensorType(want.shape), source)
    g.set_outputs([g.apply("conv", [x, w], {"pads": (1, 1, 1, 1)}, name="conv")])
    return g, source


def test_lazy_constant_is_loaded_once_on_first_use():
    g, source = lazy_graph()
    c = g.copy()
    w = g.constants[0]
    assert w.is_constant and w.pending is source and c.constants[0].pending is source
    gc.verify(g)
    gc.verify(c)
    assert "const %w: f32[3,2,3,3]" in str(g)
    assert source.loads == 0  # copies, verify and printing load nothing
    assert c.constants[0].data is source._array and source.loads == 1
    assert c.constants[0].pending is None and w.pending is source  # per Value
    assert w.data is source._array
    w.data = np.zeros((3, 2, 3, 3), np.float32)  # setting data drops the source
    assert w.pending is None and not w.data.any()


def test_verify_checks_a_lazy_constant_against_its_declared_shape():
    g, _ = lazy_graph()
    g.constants[0].type = TensorType((3, 2, 3, 4))
    with pytest.raises(gc.GraphError, match="differs from type"):
        gc.verify(g)


def test_ir_core_keeps_no_loader_digest_or_thread():
    """File reading lives in graphcnn/frontends/file_data.py, digests in graphcnn/digests.py."""
    from graphcnn import ir

    for name in ("Deferred", "constant_digests", "file_identity", "_Digests"):
        assert not hasattr(ir, name), name


# ----- restoring a saved graph (restore_constant, restore_node, reserve_names) -------------------
def restored_copy(g: Graph) -> Graph:
    """`g` rebuilt through the restore methods, as a loader does."""
    new = Graph(g.name)
    vmap = {}
    for v in g.inputs:
        vmap[id(v)] = new.add_input(v.name, v.type.shape, v.type.dtype)
    for v in g.constants:
        vmap[id(v)] = new.restore_constant(v.name, v.type, v.data)
    for n in g.nodes:
        twin = new.restore_node(n.name, n.op, [vmap[id(v)] for v in n.inputs], dict(n.attrs),
                                [(o.name, o.type) for o in n.outputs])
        vmap.update((id(o), t) for o, t in zip(n.outputs, twin.outputs))
    new.set_outputs([vmap[id(v)] for v in g.outputs])
    new.reserve_names(g.reserved_names())
    return new


def test_restore_rebuilds_the_same_graph_with_its_names():
    g = small_graph()
    g.unique_name("freed")  # a name a pass gave out and no longer uses
    new = restored_copy(g)
    gc.verify(new)
    assert str(new) == str(g) and new.reserved_names() == g.reserved_names()
    assert new.unique_name("freed") == "freed_1"
    conv, relu = new.nodes
    assert conv.outputs[0].uses == [(relu, 0)] and relu.inputs[0] is conv.outputs[0]
    assert new.constants[0].data is g.constants[0].data  # as given: no copy


def test_restore_node_takes_recorded_types_and_verify_checks_them():
    g = Graph("t")
    x = g.add_input("x", (1, 4))
    g.set_outputs(g.restore_node("r", "relu", [x], {}, [("r", TensorType((1, 5)))]).outputs)
    with pytest.raises(gc.GraphError, match="differ from the op's shape rule"):
        gc.verify(g)


RESTORE_REJECTS = {  # what add_node would never make -> the error's words
    "taken node name": (("x", "relu", ["x"], {}, [("y", "t")]), "name 'x' is taken"),
    "taken output name": (("r", "relu", ["x"], {}, [("x", "t")]), "name 'x' is taken"),
    "repeated outputs": (("r", "relu", ["x"], {}, [("a", "t"), ("a", "t")]), "repeat"),
    "attrs not normal": (("p", "max_pool", ["x"], {"kernel_shape": (2, 2)}, [("p", "t")]),
                         "not as the op's schema makes them"),
    "unknown attr": (("r", "relu", ["x"], {"alpha": 1}, [("r", "t")]), "unknown attribute"),
    "unknown op": (("u", "no_such_op", ["x"], {}, [("u", "t")]), "unknown op"),
    "not a value": (("r", "relu", ["nope"], {}, [("r", "t")]), "is not a Value"),
}


@pytest.mark.parametrize("case", RESTORE_REJECTS, ids=list(RESTORE_REJECTS))
def test_restore_node_rejects_what_add_node_would_never_make(case):
    g = Graph("t")
    x = g.add_input("x", (1, 2, 6, 6))
    (name, op, inputs, attrs, outputs), words = RESTORE_REJECTS[case]
    inputs = [x if i == "x" else i for i in inputs]
    outputs = [(o, TensorType((1, 2, 6, 6))) for o, _ in outputs]
    with pytest.raises(gc.GraphcnnError, match=words):
        g.restore_node(name, op, inputs, attrs, outputs)
    assert g.nodes == [] and g.reserved_names() == {"x"} and x.uses == []  # nothing half made


@pytest.mark.parametrize("data", [np.zeros((2, 3), np.float32),  # writeable: not shareable
                                  np.zeros((3, 2), np.float32), np.zeros((2, 3), np.float64)])
def test_restore_constant_takes_only_read_only_data_of_its_type(data):
    g = Graph("t")
    if data.dtype == np.float64 or data.shape != (2, 3):
        data.setflags(write=False)
    with pytest.raises(gc.GraphError, match="%c"):
        g.restore_constant("c", TensorType((2, 3)), data)
    assert g.reserved_names() == frozenset()
