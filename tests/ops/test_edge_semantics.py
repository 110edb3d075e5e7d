"""Edge semantics against onnxruntime itself (not the reference): a max-pool window entirely in
padding, LeakyRelu with alpha=NaN, BatchNormalization with a negative epsilon."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import graphcnn as gc
from graphcnn.errors import GraphcnnError, ModelLoadError

TARGETS = ("reference", "llvm")


def model(nodes, x_shape, inits=(), opset: int = 13) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "edge", [h.make_tensor_value_info("x", T.FLOAT, list(x_shape))],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=list(inits))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def onnxruntime_says(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def randn(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ----- max pool: a window entirely in padding ---------------------------------------------------
# (x shape, attrs): dilation 3 with pads 1 puts some windows' taps only on padding
POOLS = {
    "all_windows_in_padding": ((1, 2, 2, 2), {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1],
                                              "dilations": [3, 3]}),
    "some_windows_in_padding": ((1, 3, 2, 7), {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1],
                                               "dilations": [3, 3]}),
    "blocked_channels": ((1, 32, 2, 6), {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1],
                                         "dilations": [3, 3]}),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", sorted(POOLS))
def test_max_pool_over_pure_padding_is_lowest_float(case, target):
    shape, attrs = POOLS[case]
    proto = model([h.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)], shape)
    x = randn(shape)
    want = onnxruntime_says(proto, x)
    assert (want == np.finfo(np.float32).min).any()  # the case does hit a pure-padding window
    got = gc.compile(gc.from_onnx(proto), target=target)(x)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", [(1, 2, 8), (1, 2, 4, 4, 4)])
def test_max_pool_of_minus_infinity_is_lowest_float(shape, target):
    """onnxruntime's 1-D and 3-D max starts from the lowest float: -inf inputs never win."""
    nd = len(shape) - 2
    proto = model([h.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2] * nd,
                               strides=[2] * nd)], shape)
    x = randn(shape)
    x[(0, 0) + (slice(0, 2),) * nd] = -np.inf
    want = onnxruntime_says(proto, x)
    assert want[(0, 0) + (0,) * nd] == np.finfo(np.float32).min
    np.testing.assert_array_equal(gc.compile(gc.from_onnx(proto), target=target)(x), want)


# ----- LeakyRelu with alpha = NaN -------------------------------------------------------------
def _with_zeros(shape, seed: int = 3) -> np.ndarray:
    x = randn(shape, seed)
    x.reshape(-1)[::5] = 0.0
    x.reshape(-1)[1::7] = -0.0
    return x


@pytest.mark.parametrize("target", TARGETS + ("onnxruntime",))
def test_leaky_relu_nan_alpha_matches_onnxruntime(target):
    shape = (2, 3, 5, 7)  # 210 elements: a vector body and a scalar tail on llvm
    proto = model([h.make_node("LeakyRelu", ["x"], ["y"], name="lrelu", alpha=float("nan"))],
                  shape)
    x = _with_zeros(shape)
    want = onnxruntime_says(proto, x)
    assert np.isnan(want).any() and (want[x == 0] == 0).all()
    got = gc.compile(gc.from_onnx(proto), target=target)(x)
    np.testing.assert_array_equal(got, want)  # NaN where onnxruntime has NaN, zeros at zero


@pytest.mark.parametrize("target", TARGETS)
def test_leaky_relu_nan_alpha_fused_into_conv(target):
    """The same activation as a conv epilogue: output channel 0 has zero weights and bias, so
    its outputs are exactly 0."""
    w = randn((8, 3, 3, 3), 4)
    w[0] = 0.0
    b = randn((8,), 5)
    b[0] = 0.0
    inits = [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             h.make_node("LeakyRelu", ["c"], ["y"], name="lrelu", alpha=float("nan"))]
    proto = model(nodes, (1, 3, 6, 6), inits)
    x = randn((1, 3, 6, 6), 6)
    want = onnxruntime_says(proto, x)
    assert (want[0, 0] == 0).all()
    graph = gc.from_onnx(proto)
    got = gc.compile(graph, target=target)(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[0, 0], want[0, 0])
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)


# ----- BatchNormalization with a negative epsilon: refused ------------------------------------
def _batch_norm(epsilon: float) -> tuple[onnx.ModelProto, np.ndarray]:
    var = np.array([0.5, 1.0, 2.0, 0.0], np.float32)
    params = [randn((4,), 7), randn((4,), 8), randn((4,), 9), var]
    inits = [onnx.numpy_helper.from_array(p, n) for p, n in zip(params, "sbmv")]
    node = h.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn0",
                       epsilon=epsilon)
    return model([node], (1, 4, 3, 3), inits, opset=15), randn((1, 4, 3, 3), 10)


@pytest.mark.parametrize("epsilon", [-1.0, -0.25, float("nan")])
def test_batch_norm_negative_epsilon_is_refused(epsilon):
    """onnxruntime gives NaN in every channel whose var + epsilon <= 0 (and for a NaN epsilon
    everywhere): the model has no meaningful output there, so the import refuses it."""
    proto, x = _batch_norm(epsilon)
    assert np.isnan(onnxruntime_says(proto, x)).any()
    with pytest.raises(ModelLoadError, match="node 'bn0' \\(BatchNormalization\\): attribute "
                                             "'epsilon'"):
        gc.from_onnx(proto)


def test_batch_norm_negative_epsilon_is_refused_in_the_ir():
    g = gc.Graph("bn")
    x = g.add_input("x", (1, 2, 3, 3))
    params = [g.add_constant(np.ones(2, np.float32), n) for n in ("s", "b", "m", "v")]
    with pytest.raises(GraphcnnError, match="epsilon"):
        g.apply("batch_norm", [x] + params, {"epsilon": -1.0})


def test_batch_norm_zero_epsilon_still_imports():
    proto, x = _batch_norm(0.0)
    proto.graph.initializer[3].CopyFrom(onnx.numpy_helper.from_array(
        np.array([0.5, 1.0, 2.0, 0.3], np.float32), "v"))
    got = gc.compile(gc.from_onnx(proto), target="reference")(x)
    np.testing.assert_allclose(got, onnxruntime_says(proto, x), rtol=1e-5, atol=1e-6)
