"""Real architectures as ONNX files (tests/zoo_onnx.py): imported, then the reference
interpreter compared with onnxruntime on the same file, and the llvm target with the reference."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import zoo_onnx

import graphcnn as gc


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def onnxruntime_run(model, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.fixture(scope="module", params=sorted(zoo_onnx.SMALL))
def zoo_case(request):
    model = zoo_onnx.SMALL[request.param]()
    graph = gc.from_onnx(model)
    shape = graph.inputs[0].type.shape
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return request.param, model, graph, x, gc.compile(graph, target="reference")(x)


def test_reference_matches_onnxruntime(zoo_case):
    name, model, _, x, ref = zoo_case
    expected = onnxruntime_run(model, x)
    assert ref.shape == expected.shape
    assert rel_err(ref, expected) <= 1e-4, name


def test_llvm_matches_reference(zoo_case):
    name, _, graph, x, ref = zoo_case
    assert rel_err(gc.compile(graph, target="llvm")(x), ref) <= 1e-4, name


def test_imports_fold_the_helper_ops(zoo_case):
    """No exporter helper (Shape, Gather, ...) survives import: only graphcnn compute ops."""
    _, _, graph, _, _ = zoo_case
    assert {n.op for n in graph.nodes} <= {
        "conv", "relu", "clip", "max_pool", "avg_pool", "global_avg_pool", "lrn", "batch_norm",
        "add", "concat", "flatten", "reshape", "transpose", "gemm", "softmax", "dropout"}


def test_symbolic_batch_defaults_to_one_with_a_warning():
    model = zoo_onnx.vgg(size=32, width=0.125, classes=10, config="vgg11", batch="N")
    with pytest.warns(UserWarning, match="symbolic batch"):
        graph = gc.from_onnx(model)
    assert graph.inputs[0].type.shape == (1, 3, 32, 32)


def test_symbolic_batch_from_input_shapes():
    model = zoo_onnx.vgg(size=32, width=0.125, classes=10, config="vgg11", batch="N")
    graph = gc.from_onnx(model, input_shapes={"input": (3, 3, 32, 32)})
    x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    ref = gc.compile(graph, target="reference")(x)
    assert ref.shape == (3, 10)
    assert rel_err(ref, onnxruntime_run(model, x)) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(zoo_onnx.MODELS))
def test_full_size_imagenet_versions_import(name):
    graph = gc.from_onnx(zoo_onnx.MODELS[name](size=224, width=1.0))
    assert graph.inputs[0].type.shape == (1, 3, 224, 224)
    assert graph.outputs[0].type.shape == (1, 1000)
