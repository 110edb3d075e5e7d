"""gc.compile(graph, batch="dynamic") (graphcnn/dynamic_batch.py, graphcnn/rebatch.py): any
batch size on axis 0, each size compiled once and held (bounded), against the reference
interpreter sample by sample and onnxruntime on a file with a symbolic batch."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from graphcnn.backends.reference import interpret
from onnx import TensorProto, helper, numpy_helper

import graphcnn as gc
from graphcnn.errors import CompileError, InputError, InvalidOptionError
from graphcnn.rebatch import rebatch

RNG = np.random.default_rng(5)


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def cnn(batch: int = 2) -> gc.Graph:
    gc.manual_seed(7)
    return gc.Sequential(
        gc.Conv2d(3, 8, 3, padding=1), gc.ReLU(), gc.MaxPool2d(2),
        gc.Conv2d(8, 8, 3), gc.ReLU(), gc.AvgPool2d(2),
        gc.Flatten(), gc.Dense(8 * 2 * 2, 10), gc.Softmax(),
    ).build((batch, 3, 12, 12))


def x_of(n: int, shape=(3, 12, 12)) -> np.ndarray:
    return RNG.standard_normal((n, *shape)).astype(np.float32)


def per_pair(graph: gc.Graph, x: np.ndarray) -> np.ndarray:
    """The batch-2 graph run by the reference on x two samples at a time."""
    return np.concatenate([interpret(graph, [x[i:i + 2]])[0] for i in range(0, len(x), 2)])


@pytest.fixture(scope="module")
def llvm_model():
    return gc.compile(cnn(), target="llvm", batch="dynamic")


def test_dsl_cnn_at_any_batch_matches_the_reference(llvm_model):
    graph = cnn()
    for n in (1, 3, 8):
        x = x_of(n)
        got = llvm_model(x)
        assert got.shape == (n, 10)
        assert rel_l2(got, interpret(rebatch(graph, n), [x])[0]) <= 1e-5
        if n % 2 == 0:  # re-batching changes nothing per sample
            assert rel_l2(got, per_pair(graph, x)) <= 1e-5
    assert llvm_model.batch_sizes == (1, 3, 8)


def test_a_size_used_again_is_not_compiled_again(llvm_model):
    for n in (1, 3, 8):
        llvm_model(x_of(n))
    held = llvm_model.model_for(3)
    x = x_of(3)
    assert rel_l2(llvm_model.run({"input": x})[llvm_model.output_names[0]],
                  held(x)) == 0
    assert llvm_model.batch_sizes == (1, 8, 3)  # least recently used first, nothing new
    assert llvm_model.model_for(3) is held


def test_sizes_held_are_bounded():
    cm = gc.compile(cnn(), target="reference", batch="dynamic")
    models = {n: cm.model_for(n) for n in (1, 2, 3, 4)}
    cm(x_of(5))
    assert cm.batch_sizes == (2, 3, 4, 5)  # 1, least recently used, dropped
    assert cm.model_for(2) is models[2] and cm.model_for(1) is not models[1]


def test_onnxruntime_target_too():
    cm = gc.compile(cnn(), target="onnxruntime", batch="dynamic")
    x = x_of(3)
    assert rel_l2(cm(x), interpret(rebatch(cnn(), 3), [x])[0]) <= 1e-5


def symbolic_batch_file(path) -> str:
    """conv -> relu -> Flatten -> Gemm over an input (N, 3, 8, 8) with N symbolic."""
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    fw = RNG.standard_normal((6, 4 * 8 * 8)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "symbatch", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fw, "fw")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def test_onnx_file_with_a_symbolic_batch(tmp_path):
    path = symbolic_batch_file(tmp_path / "symbatch.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the symbolic batch imported as 1
        graph = gc.from_onnx(path)
    cm = gc.compile(graph, target="llvm", batch="dynamic")
    ref = gc.compile(graph, target="reference", batch="dynamic")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for n in (1, 3, 8):
        x = x_of(n, (3, 8, 8))
        got = cm(x)
        assert rel_l2(got, ref(x)) <= 1e-5
        assert rel_l2(got, session.run(None, {"x": x})[0]) <= 1e-5
    held = cm.model_for(3)
    cm(x_of(3, (3, 8, 8)))
    assert cm.batch_sizes == (1, 8, 3) and cm.model_for(3) is held


def test_a_graph_mixing_samples_is_refused_naming_the_node():
    b = gc.GraphBuilder("mix")
    x = b.input("input", (2, 3, 4, 4))
    graph = b.build(b.op("reshape", [gc.ReLU()(x)], name="fold", shape=(3, -1)))
    with pytest.raises(CompileError, match=r"'fold' \(reshape\)"):
        gc.compile(graph, target="llvm", batch="dynamic")


def test_bad_calls_and_options():
    graph = cnn()
    before = str(graph)
    cm = gc.compile(graph, target="reference", batch="dynamic")
    assert str(graph) == before
    for bad in (x_of(2, (3, 12, 11)), x_of(1, (12, 12)), np.zeros((0, 3, 12, 12), np.float32)):
        with pytest.raises(InputError, match="'input'"):
            cm(bad)
    with pytest.raises(InputError, match="float64"):
        cm(x_of(2).astype(np.float64))
    for bad in ("static", 8, True):
        with pytest.raises(InvalidOptionError, match="batch"):
            gc.compile(graph, target="llvm", batch=bad)
    with pytest.raises(CompileError, match="unknown target"):
        gc.compile(graph, target="tpu", batch="dynamic")
    with pytest.raises(CompileError, match="save the model of one size"):
        cm.save("m.gcm")


def test_inputs_must_share_the_batch():
    b = gc.GraphBuilder("two")
    a, c = b.input("a", (1, 4)), b.input("c", (1, 4))
    cm = gc.compile(b.build(gc.add(a, c)), target="reference", batch="dynamic")
    ones = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(cm(ones, 2 * ones), 3 * ones)
    with pytest.raises(InputError, match="batch sizes"):
        cm(ones, np.ones((2, 4), np.float32))
