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


# ----- constants read on first use (ir.Deferred) ------------------------------------------------
def deferred_graph(tmp_path, dtype=np.float32) -> tuple[Graph, np.ndarray, object]:
    """small_graph with its weight as a Deferred over a file holding it at offset 5."""
    want = np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(dtype)
    path = tmp_path / "weights.bin"
    path.write_bytes(b"head!" + want.astype(want.dtype.newbyteorder("<")).tobytes() + b"tail")
    from graphcnn.ir import Deferred, _hash_array, file_identity

    loader = Deferred(str(path), file_identity(path.stat()), 5, want.nbytes, want.dtype,
                      want.shape, _hash_array(want), "%w")
    g = Graph("deferred")
    x = g.add_input("x", (1, 2, 6, 6))
    w = Value(g.unique_name("w"), TensorType(want.shape, want.dtype.name), pending=loader)
    g.set_outputs([g.apply("conv", [x, w], {"pads": (1, 1, 1, 1)}, name="conv")])
    return g, want, loader


def test_deferred_constant_is_read_once_on_first_use(tmp_path):
    from graphcnn.ir import constant_digests

    g, want, loader = deferred_graph(tmp_path)
    c = g.copy()
    w = g.constants[0]
    assert w.is_constant and w.pending is loader and c.constants[0].pending is loader
    gc.verify(g)
    gc.verify(c)
    assert constant_digests(c.constants) == [loader.digest]
    assert not loader.loaded  # copies, verify and digests read nothing
    np.testing.assert_array_equal(c.constants[0].data, want)
    assert loader.loaded and w.pending is loader  # g's value still defers to the loader...
    assert w.data is c.constants[0].data  # ...which read the file once for both
    assert not w.data.flags.writeable and w.data.dtype == want.dtype
    assert constant_digests([w]) == [loader.digest]
    w.data = np.zeros_like(want)  # setting data drops the loader
    assert w.pending is None and not w.data.any()


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int8, np.uint16])
def test_deferred_constant_dtypes(tmp_path, dtype):
    from graphcnn.ir import constant_digests

    _, want, loader = deferred_graph(tmp_path, dtype)
    got = loader.load()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    v = Value("v", TensorType(want.shape, want.dtype.name), data=got)
    assert constant_digests([v]) == [loader.digest]


def test_deferred_constant_of_a_changed_file_is_a_model_load_error(tmp_path):
    g, _, loader = deferred_graph(tmp_path)
    path = tmp_path / "weights.bin"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + b"X")  # same size, new content
    with pytest.raises(gc.ModelLoadError, match=r"weights\.bin.*changed since it was imported.*%w"):
        g.constants[0].data  # noqa: B018
    assert g.constants[0].pending is loader  # still pending: a later access fails the same way


def test_deferred_constant_past_the_end_of_its_file_is_a_model_load_error(tmp_path):
    from graphcnn.ir import Deferred, file_identity

    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 10)
    loader = Deferred(str(path), file_identity(path.stat()), 4, 8, np.dtype(np.float32), (2,),
                      b"\0" * 32, "%c")
    with pytest.raises(gc.ModelLoadError, match="short.bin"):
        loader.load()
    path.unlink()
    with pytest.raises(gc.ModelLoadError, match="cannot read constant %c"):
        loader.load()


def test_verify_checks_a_deferred_constant_against_its_declared_shape(tmp_path):
    g, _, loader = deferred_graph(tmp_path)
    g.constants[0].type = TensorType((3, 2, 3, 4))
    with pytest.raises(gc.GraphError, match="differs from type"):
        gc.verify(g)
    assert not loader.loaded
