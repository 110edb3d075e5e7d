"""ONNX nodes without a graphcnn op: kept as onnx_nodes (`from_onnx(..., unsupported="keep")`),
run by the reference on onnxruntime, refused by llvm with every op listed, or run on
onnxruntime inside an llvm model with `fallback="onnxruntime"`, checked against onnxruntime
running the original file."""
from __future__ import annotations

import pickle

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphcnn as gc
from graphcnn.errors import InputError, InvalidOptionError, ShapeError, UnsupportedOpError

RNG = np.random.default_rng(7)


def _conv(name: str, x: str, cin: int, cout: int, inits: list) -> onnx.NodeProto:
    w = RNG.standard_normal((cout, cin, 3, 3)).astype(np.float32) * 0.2
    inits.append(numpy_helper.from_array(w, f"{name}.w"))
    return helper.make_node("Conv", [x, f"{name}.w"], [name], pads=[1, 1, 1, 1], name=name)


def branchy_model() -> onnx.ModelProto:
    """conv -> relu, then two branches: CumSum (axis as a constant input) and Hardmax (neither
    has a graphcnn op) beside a native conv; concatenated; a native conv after."""
    inits: list = [numpy_helper.from_array(np.array(3, np.int64), "axis")]
    nodes = [
        _conv("c1", "x", 3, 4, inits),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("CumSum", ["r1", "axis"], ["cs"], name="cumsum"),
        helper.make_node("Hardmax", ["cs"], ["hm"], axis=1, name="hardmax"),
        _conv("c2", "r1", 4, 4, inits),
        helper.make_node("Concat", ["hm", "c2"], ["cat"], axis=1, name="cat"),
        _conv("c3", "cat", 8, 2, inits),
    ]
    graph = helper.make_graph(
        nodes, "branchy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("c3", TensorProto.FLOAT, [1, 2, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _ort(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_default_import_lists_every_unsupported_op():
    with pytest.raises(UnsupportedOpError) as info:
        gc.from_onnx(branchy_model())
    assert set(info.value.ops) == {"CumSum", "Hardmax"}


def test_keep_imports_onnx_nodes_and_the_reference_runs_them():
    model = branchy_model()
    graph = gc.from_onnx(model, unsupported="keep")
    kept = {n.name: n.attrs["op_type"] for n in graph.nodes if n.op == "onnx_node"}
    assert kept == {"cumsum": "CumSum", "hardmax": "Hardmax"}
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    want = _ort(model, {"x": x})[0]
    got = gc.compile(graph, target="reference")(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_llvm_without_fallback_names_every_kept_op():
    graph = gc.from_onnx(branchy_model(), unsupported="keep")
    with pytest.raises(UnsupportedOpError) as info:
        gc.compile(graph, target="llvm")
    assert info.value.ops == {"CumSum": ["cumsum"], "Hardmax": ["hardmax"]}
    assert "fallback='onnxruntime'" in str(info.value)


@pytest.mark.parametrize("opt_level", [0, 2, 3])
def test_llvm_with_fallback_matches_onnxruntime(opt_level):
    model = branchy_model()
    graph = gc.from_onnx(model, unsupported="keep")
    cm = gc.compile(graph, target="llvm", fallback="onnxruntime", opt_level=opt_level)
    for _ in range(3):
        x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
        np.testing.assert_allclose(cm(x), _ort(model, {"x": x})[0], rtol=1e-5, atol=1e-5)
    assert cm.placement == {n.name: "onnxruntime" if n.op == "onnx_node" else "llvm"
                            for n in graph.nodes}
    assert cm.placement["cumsum"] == cm.placement["hardmax"] == "onnxruntime"
    # the native conv c2 beside the onnxruntime branch shares the first native segment
    assert [s.kind for s in cm.segments] == ["llvm", "onnxruntime", "llvm"]


def test_a_fallback_model_pickles():
    """Native segments travel as saved models, onnxruntime segments restart their session."""
    model = branchy_model()
    cm = gc.compile(gc.from_onnx(model, unsupported="keep"), target="llvm",
                    fallback="onnxruntime")
    again = pickle.loads(pickle.dumps(cm))
    assert again.placement == cm.placement
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(again(x), _ort(model, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_fallback_is_checked():
    graph = gc.from_onnx(branchy_model(), unsupported="keep")
    with pytest.raises(InvalidOptionError):
        gc.compile(graph, target="llvm", fallback="tvm")
    with pytest.raises(InputError):
        gc.from_onnx(branchy_model(), unsupported="ignore")


def test_graph_without_kept_nodes_compiles_natively_with_fallback():
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    graph = gc.Sequential(gc.Conv2d(3, 4, 3, padding=1), gc.ReLU()).build((1, 3, 8, 8))
    cm = gc.compile(graph, target="llvm", fallback="onnxruntime")
    assert type(cm).__name__ == "LLVMModel"
    np.testing.assert_allclose(cm(x), gc.compile(graph, target="reference")(x), rtol=1e-5,
                               atol=1e-5)


def test_kept_runtime_int64_input():
    """An int64 graph input feeding a kept node (Gather of a table by runtime ids)."""
    table = RNG.standard_normal((10, 4)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0, name="gather"),
             helper.make_node("Relu", ["emb"], ["y"], name="relu")]
    graph = helper.make_graph(
        nodes, "emb", [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])],
        [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ids = RNG.integers(0, 10, (2, 3)).astype(np.int64)
    g = gc.from_onnx(model, unsupported="keep")
    cm = gc.compile(g, target="llvm", fallback="onnxruntime")
    np.testing.assert_array_equal(cm(ids), np.maximum(table[ids], 0))


def test_kept_node_whose_shape_onnx_cannot_infer_stays_unsupported():
    """A custom-domain op: shape inference knows nothing of it, so no static type: refused."""
    nodes = [helper.make_node("Mystery", ["x"], ["y"], domain="com.example", name="mystery")]
    graph = helper.make_graph(
        nodes, "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    with pytest.raises(UnsupportedOpError) as info:
        gc.from_onnx(model, unsupported="keep", strict=False)
    assert list(info.value.ops) == ["com.example.Mystery"]
    assert "shape" in str(info.value)


def test_kept_node_with_data_dependent_shape_is_a_shape_error_naming_it():
    """NonZero's output length depends on the data: no static shape, named in the error."""
    nodes = [helper.make_node("NonZero", ["x"], ["y"], name="nz")]
    graph = helper.make_graph(
        nodes, "nz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises((UnsupportedOpError, ShapeError)) as info:
        gc.from_onnx(model, unsupported="keep")
    assert "nz" in str(info.value)


def test_onnxruntime_target_exports_kept_nodes_at_its_opset():
    """to_onnx converts a kept node from the file's opset 17 to the export opset."""
    model = branchy_model()
    graph = gc.from_onnx(model, unsupported="keep")
    exported = gc.to_onnx(graph)
    onnx.checker.check_model(exported, full_check=True)
    assert {n.op_type for n in exported.graph.node} >= {"CumSum", "Hardmax"}
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    got = gc.compile(graph, target="onnxruntime")(x)
    np.testing.assert_allclose(got, _ort(model, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_kept_node_that_cannot_go_to_the_export_opset_is_refused_by_name():
    """AffineGrid exists from opset 20 only: a kept AffineGrid-20 has no opset-19 form."""
    nodes = [helper.make_node("AffineGrid", ["theta", "size"], ["grid"], name="grid")]
    graph = helper.make_graph(
        nodes, "grid", [helper.make_tensor_value_info("theta", TensorProto.FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 4, 5, 2])],
        [numpy_helper.from_array(np.array([1, 1, 4, 5], np.int64), "size")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    g = gc.from_onnx(model, unsupported="keep")
    theta = RNG.standard_normal((1, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(gc.compile(g, target="reference")(theta),
                               _ort(model, {"theta": theta})[0], rtol=1e-6, atol=1e-6)
    kept = [n.name for n in g.nodes if n.op == "onnx_node"]
    with pytest.raises(UnsupportedOpError) as info:
        gc.to_onnx(g)
    assert f"{kept[0]!r}" in str(info.value) and info.value.ops == {"AffineGrid": kept}
