"""graphcnn as an onnx.backend.base.Backend: prepare / run_model / run_node / supports_device."""
from __future__ import annotations

import numpy as np
import onnx_backend_api as onnx_backend
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx_backend_api import GraphcnnBackend

from graphcnn.errors import InputError


def conv_relu_model():
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 2, 3, 3))
                                .astype(np.float32), "w")
    graph = h.make_graph([h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                          h.make_node("Relu", ["c"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [1, 2, 5, 5])],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=[w])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])


def targets():
    return ["reference", "llvm"]


@pytest.mark.parametrize("target", targets())
def test_prepare_and_run(target):
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    rep = GraphcnnBackend.prepare(conv_relu_model(), "CPU", target=target)
    (y,) = rep.run([x])
    ref = onnx_backend.run_model(conv_relu_model(), {"x": x})
    assert y.shape == (1, 4, 5, 5) and (y >= 0).all()
    np.testing.assert_allclose(y, ref.y, rtol=1e-5, atol=1e-5)


def test_run_node():
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    (y,) = GraphcnnBackend.run_node(h.make_node("LeakyRelu", ["x"], ["y"], alpha=0.2), [x])
    np.testing.assert_allclose(y, np.where(x >= 0, x, 0.2 * x), rtol=1e-6)


def test_devices_and_bad_options():
    assert GraphcnnBackend.supports_device("CPU")
    assert not GraphcnnBackend.supports_device("CUDA")
    with pytest.raises(InputError):
        GraphcnnBackend.prepare(conv_relu_model(), "CUDA")
    with pytest.raises(InputError):
        GraphcnnBackend.prepare(conv_relu_model(), "CPU", target="gpu")
    rep = GraphcnnBackend.prepare(conv_relu_model())
    with pytest.raises(InputError):
        rep.run([])
