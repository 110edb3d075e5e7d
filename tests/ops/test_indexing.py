"""The indexing and dtype ops (graphcnn/ops/indexing.py) differentially: llvm at every opt level
and onnxruntime (through ONNX export) against the reference, exactly (these ops only move or
convert values), on drawn shapes, attributes and dtypes; bounds-checked gathers; bad attributes
as typed errors."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from indexing_cases import EMBEDDING, GENERATORS, one

import graphcnn as gc
from graphcnn.errors import InputError, ShapeError
from graphcnn.ir import Graph
from graphcnn.ops.indexing import slice_bounds

DRAWS = [(op, i) for op, (_, count) in GENERATORS.items() for i in range(count)]
DRAWS += [("embedding", i) for i in range(EMBEDDING[1])]


def _draw(op: str, i: int):
    make = EMBEDDING[0] if op == "embedding" else GENERATORS[op][0]
    return make(np.random.default_rng(7919 * (sorted([*GENERATORS, "embedding"]).index(op))
                                      + i))


def _outputs(result) -> list[np.ndarray]:
    return list(result) if isinstance(result, tuple) else [result]


def _same(got: list[np.ndarray], want: list[np.ndarray], what: str) -> None:
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, (what, g.dtype, w.dtype, g.shape)
        np.testing.assert_array_equal(g, w, err_msg=what)


@pytest.mark.parametrize("op,draw", DRAWS, ids=[f"{op}-{i}" for op, i in DRAWS])
def test_llvm_and_onnxruntime_match_the_reference(op, draw):
    graph, inputs = _draw(op, draw)
    want = _outputs(gc.compile(graph, target="reference")(*inputs))
    onnx.checker.check_model(gc.to_onnx(graph), full_check=True)
    _same(_outputs(gc.compile(graph, target="onnxruntime", opt_level=0)(*inputs)), want,
          f"onnxruntime\n{graph}")
    for level in (0, 1, 2, 3):
        cm = gc.compile(graph, target="llvm", opt_level=level, cache=False, threads=2)
        _same(_outputs(cm(*inputs)), want, f"llvm -O{level}\n{graph}")


def test_cast_truncates_toward_zero_and_nonzero_is_true():
    x = np.array([[2.7, -2.7, 0.5, -0.5, 0.0, -0.0, 1e6, -3.0]], np.float32)
    for to, want in (("int64", [2, -2, 0, 0, 0, 0, 1000000, -3]),
                     ("int32", [2, -2, 0, 0, 0, 0, 1000000, -3]),
                     ("bool", [1, 1, 1, 1, 0, 0, 1, 1])):
        graph, _ = one("cast", None, [x], {"to": to}, wrap_bool=False)
        for target in ("reference", "llvm", "onnxruntime"):
            got = gc.compile(graph, target=target)(x)
            assert got.dtype == np.dtype(to)
            np.testing.assert_array_equal(got.astype(np.int64)[0], want, err_msg=target)


def _embedding(ids_dtype: str = "int64") -> Graph:
    g = Graph("embed")
    ids = g.add_input("ids", (2, 5), ids_dtype)
    table = g.add_constant(np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32),
                           "table")
    y = g.add_node("gather", [table, ids], {"axis": 0}, name="embed").outputs[0]
    g.set_outputs([g.apply("relu", [y])])
    return g


@pytest.mark.parametrize("ids_dtype", ["int64", "int32"])
@pytest.mark.parametrize("bad", [7, -8, 2**31 - 1, -2**31])
@pytest.mark.parametrize("target", ["reference", "llvm"])
def test_an_id_outside_the_table_is_an_input_error_naming_the_node(target, bad, ids_dtype):
    cm = gc.compile(_embedding(ids_dtype), target=target, threads=2) if target == "llvm" else \
        gc.compile(_embedding(ids_dtype), target=target)
    ids = np.random.default_rng(1).integers(-7, 7, (2, 5)).astype(ids_dtype)
    good = cm(ids)
    ids[1, 3] = bad
    with pytest.raises(InputError, match=r"node 'embed' \(gather\).*outside"):
        cm(ids)
    with pytest.raises(InputError, match="embed"):
        cm.run({"ids": ids})
    ids[1, 3] = 0  # the model is fine afterwards
    assert cm(ids).shape == good.shape


def test_wrong_input_dtype_is_an_input_error_naming_the_input():
    cm = gc.compile(_embedding("int64"), target="llvm")
    with pytest.raises(InputError, match="'ids'.*int32"):
        cm(np.zeros((2, 5), np.int32))
    with pytest.raises(InputError, match="'ids'.*float32"):
        cm(np.zeros((2, 5), np.float32))
    with pytest.raises(InputError, match="'ids': float values"):  # not truncated to ids
        cm([[0.5] * 5] * 2)
    np.testing.assert_array_equal(cm([[1] * 5] * 2), cm(np.ones((2, 5), np.int64)))


def _node(op: str, shape, attrs: dict, dtype: str = "float32", more=()) -> None:
    g = Graph("bad")
    g.add_node(op, [g.add_input("x", shape, dtype), *(g.add_constant(m, f"c{i}")
                                                      for i, m in enumerate(more))], attrs,
               name="bad")


@pytest.mark.parametrize("op,shape,attrs,match", [
    ("split", (4, 6), {"axis": 1, "split": [2, 3]}, "sum to 5"),
    ("split", (4, 6), {"axis": 1, "num_outputs": 7}, "num_outputs 7"),
    ("split", (4, 6), {"axis": 2, "num_outputs": 2}, "axis 2 out of range"),
    ("split", (4, 6), {"axis": 0, "split": [4, 0]}, ">= 1"),
    ("slice", (4, 6), {"starts": [0], "ends": [3], "steps": [0]}, "non-zero"),
    ("slice", (4, 6), {"starts": [0], "ends": [3], "axes": [2]}, "out of range"),
    ("slice", (4, 6), {"starts": [3], "ends": [1]}, "empty"),
    ("cast", (4, 6), {"to": "float64"}, "not supported"),
    ("cast", (4, 6), {"to": "int8"}, "not supported"),
    ("tile", (4, 6), {"repeats": [1, -1]}, ">= 1"),
    ("tile", (4, 6), {"repeats": [2]}, "one entry per dim"),
    ("expand", (4, 6), {"shape": [3, 6]}, "cannot expand"),
    ("gather", (4, 6), {"axis": -3}, "out of range"),
    ("argmax", (4, 6), {"axis": 2}, "out of range"),
])
def test_bad_attributes_are_shape_errors_naming_the_node(op, shape, attrs, match):
    more = [np.array([0], np.int64)] if op == "gather" else []
    with pytest.raises(ShapeError, match=rf"node 'bad' \({op}\).*{match}"):
        _node(op, shape, attrs, more=more)


def test_bad_operand_dtypes_are_shape_errors():
    with pytest.raises(ShapeError, match="indices"):
        _node("gather", (4, 6), {"axis": 0}, more=[np.array([0.5], np.float32)])
    g = Graph("bad")
    x = g.add_input("x", (3,))
    with pytest.raises(ShapeError, match="condition"):
        g.add_node("where", [x, x, x], {})


def test_plan_refuses_non_float_values_into_float_kernels():
    g = Graph("mix")
    x = g.add_input("x", (3, 4), "int64")
    g.set_outputs([g.apply("relu", [x])])
    with pytest.raises(gc.CompileError, match="float32 only"):
        gc.compile(g, target="llvm")


def _split_graph(source: str) -> Graph:
    """x (1, 4, 8, 8) -> split into channels 1 and 3 (views: 256-byte offsets) -> consumers;
    x a graph input, a relu's result (workspace) or a constant."""
    g = Graph(f"split_{source}")
    x = g.add_input("x", (1, 4, 8, 8))
    data = {"input": x, "workspace": g.apply("relu", [x]),
            "constant": g.add_constant(np.random.default_rng(3).standard_normal(
                (1, 4, 8, 8)).astype(np.float32), "k")}[source]
    a, b = g.add_node("split", [data], {"axis": 1, "split": [1, 3]}).outputs
    rows = g.apply("slice", [b], {"starts": [1], "ends": [3], "axes": [1]})  # a view of a view
    g.set_outputs([g.apply("relu", [a]), g.apply("add", [rows, a]), b])
    return g


@pytest.mark.parametrize("source", ["input", "workspace", "constant"])
def test_contiguous_split_and_slice_are_views(source):
    """A split with outer dims of 1 and a slice of whole rows emit no kernel: their outputs
    live in the input's buffer at their offsets; the results are the reference's."""
    g = _split_graph(source)
    x = np.random.default_rng(4).standard_normal((1, 4, 8, 8)).astype(np.float32)
    want = gc.compile(g, target="reference")(x)
    for level in (0, 2):
        cm = gc.compile(g, target="llvm", opt_level=level, cache=False)
        assert not {"split", "slice"} & {k["op"] for k in cm.kernels}
        _same(list(cm(x)), list(want), f"-O{level}")


def test_unaligned_or_strided_parts_are_copied():
    g = Graph("copies")
    x = g.add_input("x", (2, 5, 3))
    parts = g.add_node("split", [x], {"axis": 1, "split": [2, 3]}).outputs  # outer dim 2
    tail = g.apply("slice", [x], {"starts": [1], "ends": [2], "axes": [0]})  # 60-byte offset
    g.set_outputs([*parts, tail])
    cm = gc.compile(g, target="llvm", cache=False)
    assert {"split", "slice"} <= {k["op"] for k in cm.kernels}
    x_ = np.random.default_rng(5).standard_normal((2, 5, 3)).astype(np.float32)
    _same(list(cm(x_)), list(gc.compile(g, target="reference")(x_)), "copies")


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_ops_pick_nan_as_numpy_does(op, last):
    x = np.random.default_rng(6).standard_normal((4, 9, 20)).astype(np.float32)
    x[0, 3, :] = np.nan
    x[1, [2, 7], 5:] = np.nan
    x[2, 0, ::2] = np.nan
    for axis in (1, 2):
        graph, _ = one(op, None, [x], {"axis": axis, "select_last_index": last})
        want = gc.compile(graph, target="reference")(x)
        np.testing.assert_array_equal(gc.compile(graph, target="llvm")(x), want)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(dim=st.integers(1, 12), start=st.integers(-20, 20), end=st.integers(-20, 20),
       step=st.integers(-4, 4).filter(bool))
def test_slice_bounds_match_python_slicing(dim, start, end, step):
    """ONNX Slice's clamping (slice_bounds) is Python's slice of range(dim), ends included."""
    first, count = slice_bounds(dim, start, end, step)
    want = range(dim)[slice(start, end, step)]
    assert count == len(want)
    if count:
        assert first == want[0]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.data())
def test_strided_copies_match_the_reference(data):
    """Slice, expand and tile on llvm over drawn shapes, attributes and dtypes."""
    op = data.draw(st.sampled_from(["slice", "expand", "tile"]))
    seed = data.draw(st.integers(0, 2**31 - 1))
    graph, inputs = GENERATORS[op][0](np.random.default_rng(seed))
    want = _outputs(gc.compile(graph, target="reference")(*inputs))
    _same(_outputs(gc.compile(graph, target="llvm", opt_level=0, cache=False)(*inputs)), want,
          str(graph))


def test_normalised_slice_without_steps_is_a_shape_error():
    g = Graph("s")
    x = g.add_input("x", (2, 3))
    with pytest.raises(ShapeError, match="needs `steps`"):
        g.apply("slice", [x], {"starts": [0, 0], "shape": [1, 1]})
