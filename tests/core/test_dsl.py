"""The DSL: PyTorch argument names and weight shapes, build-time shape errors, the functional builder."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc


def lenet() -> gc.Sequential:
    return gc.Sequential(
        gc.Conv2d(1, 6, kernel_size=5, stride=1, padding=2), gc.ReLU(), gc.MaxPool2d(2),
        gc.Conv2d(6, 16, 5), gc.ReLU(), gc.AvgPool2d(2),
        gc.Flatten(), gc.Dense(16 * 5 * 5, 10), gc.Softmax(),
    )


def test_lenet_builds_with_pytorch_shapes():
    g = lenet().build((2, 1, 28, 28))
    assert [n.op for n in g.nodes] == ["conv", "relu", "max_pool", "conv", "relu", "avg_pool",
                                       "flatten", "gemm", "softmax"]
    shapes = [c.type.shape for c in g.constants]
    assert shapes == [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (10, 400), (10,)]
    assert g.outputs[0].type.shape == (2, 10)


def test_explicit_weights_are_used_and_checked():
    w = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)
    conv = gc.Conv2d(3, 2, 3, bias=False, weight=w)
    g = gc.Sequential(conv).build((1, 3, 3, 3))
    x = np.random.default_rng(0).standard_normal((1, 3, 3, 3)).astype(np.float32)
    y = gc.compile(g, target="reference")(x)
    np.testing.assert_allclose(y.ravel(), [(x[0] * w[0]).sum(), (x[0] * w[1]).sum()], rtol=1e-5)
    with pytest.raises(gc.ShapeError, match="weight has shape"):
        gc.Conv2d(3, 2, 3, weight=np.zeros((2, 3, 5, 5)))


def test_seeded_init_is_deterministic_and_pytorch_bounded():
    a, b = gc.Conv2d(4, 8, 3, seed=7), gc.Conv2d(4, 8, 3, seed=7)
    np.testing.assert_array_equal(a.weight, b.weight)
    bound = 1 / np.sqrt(4 * 9)
    assert np.abs(a.weight).max() <= bound and np.abs(a.bias).max() <= bound
    assert np.abs(a.weight).max() > 0.5 * bound  # drawn, not zeros


def test_channel_mismatch_raises_shape_error_naming_layer_and_shapes():
    with pytest.raises(gc.ShapeError, match=r"layer 0 Conv2d\(3, 8.*\(1, 1, 8, 8\)"):
        gc.Sequential(gc.Conv2d(3, 8, 3)).build((1, 1, 8, 8))


def test_dense_mismatch_names_both_shapes():
    with pytest.raises(gc.ShapeError, match=r"Dense\(100, 10\).*\(1, 64\)"):
        gc.Sequential(gc.Flatten(), gc.Dense(100, 10)).build((1, 4, 4, 4))


def test_kernel_larger_than_input_is_a_shape_error():
    with pytest.raises(gc.ShapeError, match="larger than the padded input"):
        gc.Sequential(gc.Conv2d(1, 1, 7)).build((1, 1, 5, 5))


def test_functional_builder_residual_and_concat_with_two_outputs():
    b = gc.GraphBuilder("dag")
    x = b.input("x", (1, 8, 10, 10))
    y = gc.ReLU()(gc.Conv2d(8, 8, 3, padding=1, seed=1)(x) + x)
    z = gc.concat([gc.Conv2d(8, 4, 1, seed=2)(y), gc.MaxPool2d(3, stride=1, padding=1)(y)], axis=1)
    g = b.build(y, z)
    assert [o.type.shape for o in g.outputs] == [(1, 8, 10, 10), (1, 12, 10, 10)]
    outs = gc.compile(g, target="reference")(np.ones((1, 8, 10, 10), np.float32))
    assert isinstance(outs, tuple) and len(outs) == 2


@pytest.mark.parametrize("layer,shape,out", [
    (gc.Conv1d(2, 3, 3, padding=1), (1, 2, 9), (1, 3, 9)),
    (gc.Conv3d(2, 3, 3, stride=2), (1, 2, 7, 7, 7), (1, 3, 3, 3, 3)),
    (gc.Conv2d(4, 4, 3, groups=4, padding="same"), (1, 4, 6, 6), (1, 4, 6, 6)),
    (gc.MaxPool1d(2), (1, 2, 9), (1, 2, 4)),
    (gc.AvgPool2d(3, stride=2, ceil_mode=True), (1, 2, 8, 8), (1, 2, 4, 4)),
    (gc.SumPool1d(3, stride=1), (1, 2, 9), (1, 2, 7)),
    (gc.GlobalAvgPool2d(), (1, 2, 5, 5), (1, 2, 1, 1)),
    (gc.BatchNorm2d(2), (1, 2, 5, 5), (1, 2, 5, 5)),
    (gc.LeakyReLU(0.2), (1, 2), (1, 2)),
    (gc.ReLU6(), (1, 2), (1, 2)),
    (gc.Sigmoid(), (1, 2), (1, 2)),
    (gc.Dropout(0.3), (1, 2), (1, 2)),
    (gc.LocalResponseNorm(3), (1, 4, 2, 2), (1, 4, 2, 2)),
    (gc.ZeroPad2d((1, 2, 3, 4)), (1, 1, 2, 2), (1, 1, 9, 5)),
    (gc.Flatten(1, 2), (2, 3, 4, 5), (2, 12, 5)),
])
def test_layer_output_shapes(layer, shape, out):
    g = gc.Sequential(layer).build(shape)
    assert g.outputs[0].type.shape == out
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert gc.compile(g, target="reference")(x).shape == out
