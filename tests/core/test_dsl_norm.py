"""The DSL's normalisation and adaptive pooling layers: numerics as PyTorch defines them (numpy
formulas here), on every target, and typed errors for bad arguments."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc
from graphcnn.errors import ShapeError

RNG = np.random.default_rng(11)
TARGETS = ("reference", "llvm", "onnxruntime")


def _run_all(graph, x, want, tol=1e-5):
    for target in TARGETS:
        got = gc.compile(graph, target=target)(x)
        err = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert got.shape == want.shape and err < tol, f"{target}: rel L2 {err:.2e}"


def _std(x, axes, eps=1e-5):
    x = x.astype(np.float64)
    m = x.mean(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(((x - m) ** 2).mean(axis=axes, keepdims=True) + eps)


@pytest.mark.parametrize("shape", [(4, 6), (2, 6, 9)])
def test_batch_norm_1d(shape):
    c = shape[1]
    w, b, m, v = (RNG.standard_normal(c).astype(np.float32) for _ in range(4))
    v = np.abs(v) + 0.5
    layer = gc.BatchNorm1d(c, weight=w, bias=b, running_mean=m, running_var=v)
    x = RNG.standard_normal(shape).astype(np.float32)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    want = (x - m.reshape(bshape)) / np.sqrt(v.reshape(bshape) + 1e-5) * w.reshape(bshape) \
        + b.reshape(bshape)
    _run_all(gc.Sequential(layer).build(shape), x, want)


def test_batch_norm_1d_rejects_4d():
    with pytest.raises(ShapeError, match="BatchNorm1d"):
        gc.Sequential(gc.BatchNorm1d(3)).build((1, 3, 4, 4))


@pytest.mark.parametrize("normalized", [(16,), (5, 16)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(normalized, affine):
    w = RNG.standard_normal(normalized).astype(np.float32)
    b = RNG.standard_normal(normalized).astype(np.float32)
    layer = gc.LayerNorm(normalized, eps=1e-4, elementwise_affine=affine,
                         **({"weight": w, "bias": b} if affine else {}))
    x = RNG.standard_normal((3, 5, 16)).astype(np.float32)
    want = _std(x, tuple(range(3 - len(normalized), 3)), 1e-4)
    want = want * w + b if affine else want
    _run_all(gc.Sequential(layer).build(x.shape), x, want)


def test_group_and_instance_norm():
    x = RNG.standard_normal((2, 6, 7, 5)).astype(np.float32)
    w, b = RNG.standard_normal(6).astype(np.float32), RNG.standard_normal(6).astype(np.float32)
    want = _std(x.reshape(2, 3, -1), (2,)).reshape(x.shape) * w.reshape(6, 1, 1) \
        + b.reshape(6, 1, 1)
    _run_all(gc.Sequential(gc.GroupNorm(3, 6, weight=w, bias=b)).build(x.shape), x, want)
    _run_all(gc.Sequential(gc.InstanceNorm2d(6)).build(x.shape), x, _std(x, (2, 3)))


def _adaptive(x, out):
    n, c, h, w = x.shape
    y = np.zeros((n, c) + out)
    for i in range(out[0]):
        for j in range(out[1]):
            h0, h1 = i * h // out[0], -(-(i + 1) * h // out[0])
            w0, w1 = j * w // out[1], -(-(j + 1) * w // out[1])
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].astype(np.float64).mean(axis=(2, 3))
    return y


@pytest.mark.parametrize("size,op", [(1, "global_avg_pool"), ((2, 3), "avg_pool"),
                                     (3, "adaptive_avg_pool"), ((5, 4), "adaptive_avg_pool"),
                                     ((None, 2), "avg_pool")])
def test_adaptive_avg_pool(size, op):
    x = RNG.standard_normal((2, 3, 8, 6)).astype(np.float32)
    graph = gc.Sequential(gc.AdaptiveAvgPool2d(size)).build(x.shape)
    assert [n.op for n in graph.nodes] == [op]
    out = (size, size) if isinstance(size, int) else tuple(
        d if s is None else s for s, d in zip(size, x.shape[2:]))
    _run_all(graph, x, _adaptive(x, out))


def test_adaptive_avg_pool_runs_blocked_after_a_conv():
    model = gc.Sequential(gc.Conv2d(3, 20, 3, padding=1, seed=0), gc.ReLU(),
                          gc.AdaptiveAvgPool2d((3, 5)), gc.Flatten(), gc.Dense(300, 4, seed=1))
    graph = model.build((1, 3, 11, 13))
    opt = gc.optimize(graph, target="llvm")
    pool = next(n for n in opt.nodes if n.op == "adaptive_avg_pool")
    assert pool.attrs["layout"] == "NCHWc"
    x = RNG.standard_normal((1, 3, 11, 13)).astype(np.float32)
    from graphcnn.backends.reference import interpret
    _run_all(graph, x, interpret(graph, [x])[0])


@pytest.mark.parametrize("make,match", [
    (lambda: gc.GroupNorm(4, 6), "divide"),
    (lambda: gc.GroupNorm(0, 6), "divide"),
    (lambda: gc.LayerNorm(8, eps=-1.0), "eps"),
    (lambda: gc.GroupNorm(2, 6, eps=-1e-3), "eps"),
    (lambda: gc.AdaptiveAvgPool2d(0), "output_size"),
    (lambda: gc.AdaptiveAvgPool2d((1, 2, 3)), "output_size"),
])
def test_bad_arguments_are_shape_errors(make, match):
    with pytest.raises(ShapeError, match=match):
        make()


def test_wrong_input_shapes_are_shape_errors():
    with pytest.raises(ShapeError, match="LayerNorm"):
        gc.Sequential(gc.LayerNorm(7)).build((2, 8))
    with pytest.raises(ShapeError, match="GroupNorm"):
        gc.Sequential(gc.GroupNorm(2, 4)).build((2, 6, 3, 3))


def test_log_softmax():
    x = RNG.standard_normal((3, 7)).astype(np.float32) * 3
    m = x.max(axis=1, keepdims=True)
    want = x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    _run_all(gc.Sequential(gc.LogSoftmax(dim=1)).build(x.shape), x, want)
