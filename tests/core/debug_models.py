"""Small models for the debugging tests (taps, `graphcnn debug`, profiles): a DSL CNN whose
conv + batch norm + relu fusion removes the bn values, and an ONNX model with named tensors."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import graphcnn as gc


def batch_norm(c: int, rng: np.random.Generator) -> gc.BatchNorm2d:
    """Statistics far from the identity, so the bn output differs from the conv's."""
    return gc.BatchNorm2d(c, weight=rng.uniform(0.5, 2, c), bias=rng.standard_normal(c),
                          running_mean=rng.standard_normal(c), running_var=rng.uniform(0.5, 2, c))


def conv_bn_relu() -> gc.Graph:
    gc.manual_seed(3)
    rng = np.random.default_rng(3)
    model = gc.Sequential(gc.Conv2d(3, 8, 3, padding=1), batch_norm(8, rng), gc.ReLU(),
                          gc.MaxPool2d(2), gc.Conv2d(8, 16, 3), batch_norm(16, rng), gc.ReLU(),
                          gc.Flatten(), gc.Dense(16 * 6 * 6, 10))
    return model.build((1, 3, 16, 16))


def onnx_model() -> onnx.ModelProto:
    rng = np.random.default_rng(1)

    def init(name, *shape, positive=False):
        a = rng.standard_normal(shape).astype(np.float32)
        return numpy_helper.from_array(np.abs(a) + 0.5 if positive else a, name)

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv_out"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["conv_out", "s", "o", "m", "v"], ["bn_out"]),
             helper.make_node("Relu", ["bn_out"], ["relu_out"]),
             helper.make_node("GlobalAveragePool", ["relu_out"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["y"])]
    graph = helper.make_graph(
        nodes, "tapped", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
        [init("w", 6, 4, 3, 3), init("b", 6), init("s", 6), init("o", 6), init("m", 6),
         init("v", 6, positive=True)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def fallback_model() -> onnx.ModelProto:
    """conv -> Hardmax (no graphcnn op: onnxruntime runs it in a fallback model) -> conv."""
    rng = np.random.default_rng(2)
    w1, w2 = (numpy_helper.from_array(rng.standard_normal((4, c, 3, 3)).astype(np.float32), n)
              for n, c in (("w1", 3), ("w2", 4)))
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="c1"),
             helper.make_node("Hardmax", ["c1"], ["hm"], axis=1, name="hardmax"),
             helper.make_node("Conv", ["hm", "w2"], ["y"], pads=[1, 1, 1, 1], name="c2")]
    return helper.make_model(helper.make_graph(
        nodes, "fb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [w1, w2]),
        opset_imports=[helper.make_opsetid("", 17)])
