"""ONNX import of the reductions and LogSoftmax: every version, attribute and input forms of
axes, typed errors for bad attributes, and onnx's node cases whose axes the case feeds as a graph
input (the conformance selection takes float32 inputs only): here the axes become initializers,
the form exporters write."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_conformance import node_cases

import graphcnn as gc
from graphcnn.errors import GraphcnnError, ShapeError, UnsupportedOpError
from graphcnn.frontends.onnx import IMPORTERS, from_onnx
from graphcnn.ops import REDUCTIONS

ONNX_REDUCE = {r.onnx: r for r in REDUCTIONS.values()}


def _with_constant_inputs(case) -> onnx.ModelProto | None:
    """The case's model with every non-float graph input (axes) an initializer from its first
    data set; None when it has no such input."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    g = model.graph
    inputs, _ = case.data_sets[0]
    keep, moved = [], False
    for vi, data in zip(list(g.input), inputs):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            keep.append(vi)
        else:
            g.initializer.append(numpy_helper.from_array(np.asarray(data), vi.name))
            moved = True
    if not moved:
        return None
    del g.input[:]
    g.input.extend(keep)
    return model


CASES = [c for c in node_cases()
         if c.name.startswith(("test_reduce_", "test_logsoftmax"))
         and all(n.op_type in IMPORTERS for n in c.model.graph.node)
         and _with_constant_inputs(c) is not None
         and "bool" not in c.name  # non-float data
         and "empty_set" not in c.name]  # zero-size inputs: refused at import (ShapeError)


def test_cases_found():
    assert len(CASES) >= 80


@pytest.mark.parametrize("target", ["reference", "llvm"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_node_case_with_constant_axes(case, target):
    model = _with_constant_inputs(case)
    cm = gc.compile(from_onnx(model), target=target)
    for inputs, expected in case.data_sets:
        floats = [x for x in inputs if x.dtype == np.float32]
        got = cm(*floats)
        np.testing.assert_allclose(got, expected[0], rtol=case.rtol, atol=case.atol)


def _model(op: str, opset: int, shape, attrs: dict, axes=None, axes_runtime: bool = False
           ) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))]
    inits, names = [], ["x"]
    if axes is not None:
        names.append("axes")
        if axes_runtime:
            inputs.append(helper.make_tensor_value_info("axes", TensorProto.INT64, [len(axes)]))
        else:
            inits.append(numpy_helper.from_array(np.asarray(axes, np.int64), "axes"))
    node = helper.make_node(op, names, ["y"], name="r", **attrs)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([node], "g", inputs, [out], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _reference(r, x, axes, keepdims):
    axes = tuple(range(x.ndim)) if not axes else tuple(a % x.ndim for a in axes)
    v = np.abs(x) if r.pre == "abs" else x * x if r.pre == "square" else x
    if r.combine == "logsumexp":
        m = x.max(axis=axes, keepdims=True)
        y = np.log(np.exp(x - m).sum(axis=axes, keepdims=True)) + m
        return y if keepdims else np.squeeze(y, axis=axes)
    fn = {"add": np.sum, "mul": np.prod, "max": np.max, "min": np.min}[r.combine]
    y = fn(v, axis=axes, keepdims=bool(keepdims))
    return {"mean": y / np.prod([x.shape[a] for a in axes]), "sqrt": np.sqrt(y),
            "log": np.log(y)}.get(r.post, y)


VERSIONS = [(op, v) for op, r in ONNX_REDUCE.items() for v in r.versions]


@pytest.mark.parametrize("op,version", VERSIONS, ids=[f"{o}-{v}" for o, v in VERSIONS])
def test_every_version_attribute_or_input_axes(op, version):
    r = ONNX_REDUCE[op]
    opset = max(version, 7)
    rng = np.random.default_rng(version)
    x = (np.abs(rng.standard_normal((2, 3, 4, 5))) + 0.1).astype(np.float32)
    for axes, keepdims in (([1, -1], 1), ([2], 0), ([], 1)):
        attrs = {"keepdims": keepdims}
        if opset < r.axes_input_since:
            if axes:
                attrs["axes"] = axes
            model = _model(op, opset, x.shape, attrs)
        else:
            model = _model(op, opset, x.shape, attrs, axes=axes)
        want = _reference(r, x.astype(np.float64), axes, keepdims)
        for target in ("reference", "llvm"):
            got = gc.compile(from_onnx(model), target=target)(x)
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_noop_with_empty_axes_is_an_identity():
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    model = _model("ReduceMean", 18, x.shape, {"noop_with_empty_axes": 1}, axes=[])
    np.testing.assert_array_equal(gc.compile(from_onnx(model), target="llvm")(x), x)
    model = _model("ReduceSum", 13, x.shape, {"noop_with_empty_axes": 1})
    np.testing.assert_array_equal(gc.compile(from_onnx(model), target="reference")(x), x)


def test_runtime_axes_input_is_unsupported():
    model = _model("ReduceMean", 18, (2, 3, 4), {}, axes=[1], axes_runtime=True)
    with pytest.raises(UnsupportedOpError, match="axes"):
        from_onnx(model)


@pytest.mark.parametrize("axes", [[3], [-4], [1, 1], [0, -3]],
                         ids=["too-big", "too-small", "repeated", "repeated-negative"])
def test_bad_axes_are_shape_errors_naming_the_node(axes):
    model = _model("ReduceMax", 13, (2, 3, 4), {"axes": axes})
    with pytest.raises(ShapeError, match=r"'r'.*ReduceMax|ReduceMax.*'r'"):
        from_onnx(model)


def test_bad_axes_input_is_a_shape_error():
    model = _model("ReduceSum", 13, (2, 3, 4), {}, axes=[5])
    with pytest.raises(ShapeError, match="out of range"):
        from_onnx(model)


def test_bad_keepdims_is_a_typed_error():
    model = _model("ReduceL2", 13, (2, 3, 4), {"axes": [1], "keepdims": 2})
    with pytest.raises(GraphcnnError, match="keepdims"):
        from_onnx(model)


@pytest.mark.parametrize("version", [1, 11, 13])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_log_softmax_every_version(version, axis):
    x = np.random.default_rng(axis + 5).standard_normal((2, 3, 5)).astype(np.float32) * 4
    model = _model("LogSoftmax", max(version, 7), x.shape, {"axis": axis})
    if version >= 13:
        ax = axis
        m = x.max(axis=ax, keepdims=True)
        want = x - m - np.log(np.exp(x - m).sum(axis=ax, keepdims=True))
    else:  # flattened to 2-D at axis
        flat = x.reshape(int(np.prod(x.shape[:axis % 3])), -1)
        m = flat.max(axis=1, keepdims=True)
        want = (flat - m - np.log(np.exp(flat - m).sum(axis=1, keepdims=True))).reshape(x.shape)
    for target in ("reference", "llvm", "onnxruntime"):
        got = gc.compile(from_onnx(model), target=target)(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_log_softmax_axis_out_of_range():
    with pytest.raises(ShapeError, match="axis"):
        from_onnx(_model("LogSoftmax", 13, (2, 3), {"axis": 2}))


def test_axes_from_a_constant_node_and_a_folded_shape():
    """Axes written as a Constant node, or computed from the static shape (Shape -> Gather ...
    folds at import): both are known at import time."""
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
                 np.array([-1], np.int64))),
             helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Size", ["s"], ["rank"]),
             helper.make_node("Sub", ["rank", "one"], ["last"]),
             helper.make_node("Reshape", ["last", "one_d"], ["axes2"]),
             helper.make_node("ReduceMean", ["x", "c"], ["y1"], keepdims=0),
             helper.make_node("ReduceMax", ["x", "axes2"], ["y2"], keepdims=0)]
    inits = [numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array([1], np.int64), "one_d")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [2, 3, 4])],
                          [helper.make_tensor_value_info("y1", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
                          initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    y1, y2 = gc.compile(from_onnx(model), target="llvm")(x)
    np.testing.assert_allclose(y1, x.mean(axis=-1), rtol=1e-6)
    np.testing.assert_allclose(y2, x.max(axis=-1))


def _lp_pool_reference(x, k, s, p):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = np.abs(x[:, :, i * s:i * s + k, j * s:j * s + k].astype(np.float64))
            out[:, :, i, j] = (win ** p).sum(axis=(2, 3)) ** (1 / p)
    return out


# LpPool-1 / GlobalLpPool-1 (a float p) are superseded before opset 7
@pytest.mark.parametrize("version", [2, 11, 18, 22])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool_every_version(version, p):
    x = np.random.default_rng(p).standard_normal((1, 5, 9, 8)).astype(np.float32)
    model = _model("LpPool", max(version, 7), x.shape,
                   {"kernel_shape": [3, 3], "strides": [2, 2], "p": p})
    want = _lp_pool_reference(x, 3, 2, p)
    for target in ("reference", "llvm", "onnxruntime"):
        got = gc.compile(from_onnx(model), target=target)(x)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("version", [2, 22])
def test_global_lp_pool(version):
    x = np.random.default_rng(9).standard_normal((2, 3, 7, 5)).astype(np.float32)
    model = _model("GlobalLpPool", max(version, 7), x.shape, {"p": 3})
    p = 3
    want = (np.abs(x.astype(np.float64)) ** p).sum(axis=(2, 3), keepdims=True) ** (1 / p)
    for target in ("reference", "llvm", "onnxruntime"):
        got = gc.compile(from_onnx(model), target=target)(x)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("op,version,p", [("LpPool", 11, 0), ("GlobalLpPool", 2, -1)])
def test_bad_lp_pool_p_is_a_shape_error(op, version, p):
    attrs = {"p": p} | ({"kernel_shape": [2, 2]} if op == "LpPool" else {})
    with pytest.raises(ShapeError, match="positive integer"):
        from_onnx(_model(op, max(version, 7), (1, 2, 4, 4), attrs))
