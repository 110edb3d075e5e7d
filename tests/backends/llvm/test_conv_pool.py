"""A conv's fused max pool (`pool` attr): the op's meaning, its ONNX export, and the llvm
backend fusing conv -> 2x2/2 max pool into the row kernel (or splitting a pool it cannot take)."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from llvm_cases import rel_l2, rnd

import graphcnn as gc
from graphcnn.errors import ShapeError
from graphcnn.ir import Graph


def _conv_graph(shape, c_out: int, k: int, pool=(), activation="relu", then_pool=None,
                extra_use: bool = False, seed: int = 3) -> Graph:
    """x -> conv (pool attr) [-> max_pool(then_pool) [, relu of the conv]]."""
    rng = np.random.default_rng(seed)
    g = Graph("t")
    x = g.add_input("x", shape)
    nd = len(shape) - 2
    w = g.add_constant(rng.standard_normal((c_out, shape[1]) + (k,) * nd).astype(np.float32))
    b = g.add_constant(rng.standard_normal(c_out).astype(np.float32))
    y = g.apply("conv", [x, w, b], {"pads": (k // 2,) * (2 * nd), "activation": activation,
                                    "pool": pool})
    outs = [y]
    if then_pool is not None:
        window, stride = then_pool
        outs = [g.apply("max_pool", [y], {"kernel_shape": window, "strides": stride})]
        if extra_use:
            outs.append(g.apply("sigmoid", [y]))
    g.set_outputs(outs)
    return g


@pytest.mark.parametrize("shape,pool", [((2, 3, 9, 8), (2, 2)), ((1, 2, 11), (3,)),
                                        ((1, 2, 5, 6, 7), (2, 1, 3))])
def test_pool_attr_is_conv_then_max_pool(shape, pool):
    fused = _conv_graph(shape, 4, 3, pool=pool)
    plain = _conv_graph(shape, 4, 3, then_pool=(pool, pool))
    x = rnd(*shape)
    got, want = interpret(fused, [x])[0], interpret(plain, [x])[0]
    assert got.shape == fused.outputs[0].type.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("pool,match", [((2,), "one size"), ((0, 2), "one size"),
                                        ((9, 9), "larger than")])
def test_bad_pool_attr_is_a_shape_error(pool, match):
    with pytest.raises(ShapeError, match=match):
        _conv_graph((1, 3, 8, 8), 4, 3, pool=pool)


def test_fused_pool_exports_to_onnx_and_runs_in_onnxruntime():
    graph = _conv_graph((2, 3, 10, 9), 5, 3, pool=(2, 2), activation="sigmoid")
    x = rnd(2, 3, 10, 9)
    got = gc.compile(graph, target="onnxruntime")(x)
    assert rel_l2(got, interpret(graph, [x])[0]) < 1e-6


def _kernels(cm) -> list[str]:
    return [k["op"] for k in cm.kernels]


def test_lenet_first_layer_pools_in_the_row_kernel():
    graph = gc.Sequential(gc.Conv2d(1, 6, 5, padding=2, seed=1), gc.ReLU(), gc.MaxPool2d(2),
                          gc.Conv2d(6, 16, 5, seed=2), gc.ReLU()).build((3, 1, 28, 28))
    x = rnd(3, 1, 28, 28)
    cm = gc.compile(graph, target="llvm", cache=False)
    assert "max_pool" not in _kernels(cm)
    assert cm.kernels[0]["node"].endswith(".pooled")
    assert rel_l2(cm(x), interpret(graph, [x])[0]) < 1e-5


@pytest.mark.parametrize("then_pool,extra_use", [(((2, 2), (2, 2)), True),   # conv used twice
                                                 (((3, 3), (2, 2)), False),  # overlapping pool
                                                 (((2, 2), (1, 1)), False)])
def test_pools_the_row_kernel_does_not_fuse_stay_separate(then_pool, extra_use):
    graph = _conv_graph((2, 1, 20, 20), 6, 5, then_pool=then_pool, extra_use=extra_use)
    x = rnd(2, 1, 20, 20)
    cm = gc.compile(graph, target="llvm", cache=False)
    assert "max_pool" in _kernels(cm)
    for got, want in zip(cm(x) if extra_use else [cm(x)], interpret(graph, [x])):
        assert rel_l2(got, want) < 1e-5


@pytest.mark.parametrize("c_out,opt_level", [(16, 2), (6, 0), (16, 0)])
def test_a_pool_attr_no_kernel_takes_is_split_back(c_out, opt_level):
    """16 output channels (the NCHWc kernel) or an unoptimised NCHW conv: conv + max_pool."""
    graph = _conv_graph((2, 1, 18, 18), c_out, 3, pool=(2, 2))
    x = rnd(2, 1, 18, 18)
    cm = gc.compile(graph, target="llvm", cache=False, opt_level=opt_level,
                    rewrites=opt_level > 0)
    assert rel_l2(cm(x), interpret(graph, [x])[0]) < 1e-5
