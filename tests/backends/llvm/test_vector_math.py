"""The llvm math library (backends/llvm/builder.py: vexp, vlog, vlog1p, vtanh, verf, vpow)
against numpy's float32 functions over dense grids and the special values, in ulp; and the
pointwise ops after a blocked conv (the layout pass keeps them blocked when op(0) == 0)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import graphcnn as gc
from graphcnn.ir import Graph
from graphcnn.ops import ACTIVATIONS, BINARY_OPS, preserves_zero

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, 3.4e38, -3.4e38]


def _run(op: str, *xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = Graph(op)
    ins = [g.add_input(f"x{i}", x.shape) for i, x in enumerate(xs)]
    g.set_outputs([g.apply(op, ins)])
    return gc.compile(g, target="llvm", cache=False)(*xs), gc.compile(g, target="reference")(*xs)


def _ulps(got: np.ndarray, want: np.ndarray) -> float:
    """Max distance in units of the last place; NaN, inf and 0 must match exactly."""
    exact = ~np.isfinite(want) | (want == 0)
    np.testing.assert_array_equal(got[exact], want[exact])
    g, w = got[~exact].astype(np.float64), want[~exact]
    return float(np.max(np.abs(g - w) / np.spacing(np.abs(w).astype(np.float32))))


GRIDS = {
    "exp": (np.linspace(-110, 90, 400_001), 3),
    "log": (np.concatenate([np.logspace(-45, 38, 200_000), np.linspace(0, 4, 200_000)]), 3),
    "tanh": (np.concatenate([np.linspace(-12, 12, 400_001), np.logspace(-12, 0, 20_000)]), 3),
    "erf": (np.concatenate([np.linspace(-6, 6, 400_001), np.logspace(-12, 0, 20_000)]), 8),
    "softplus": (np.linspace(-100, 100, 400_001), 4),
    "sqrt": (np.logspace(-45, 38, 100_000), 0),
    "round": (np.arange(-64, 64, 0.25), 0),  # halves to even
    "floor": (np.linspace(-50, 50, 10_001), 0),
    "ceil": (np.linspace(-50, 50, 10_001), 0),
}


@pytest.mark.parametrize("op", sorted(GRIDS))
def test_within_a_few_ulp_of_numpy(op):
    grid, ulps = GRIDS[op]
    x = np.concatenate([grid, SPECIAL]).astype(np.float32)
    with np.errstate(all="ignore"):
        got, want = _run(op, x)
    assert _ulps(got, want) <= ulps


def test_exp_overflow_underflow_and_subnormals():
    x = np.array([88.7, 88.72, 88.73, 100, -87.3, -90, -100, -103.9, -104, -200], np.float32)
    got, want = _run("exp", x)
    np.testing.assert_allclose(got, want, rtol=3e-7, atol=0)


def test_pow_signs_and_special_cases():
    base = np.array([-2, -2, -2, -0.0, -0.0, 0, 0, 1, np.nan, 2, 3, -1.5, 4], np.float32)
    expo = np.array([3, 2, 0.5, 3, -1, -2, 0, np.nan, 0, -1, 2.5, 2, 0.5], np.float32)
    got, want = _run("pow", base, expo)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-6)
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))


def test_pow_relative_error_on_a_grid():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 10, 200_000).astype(np.float32)
    expo = rng.uniform(-6, 6, 200_000).astype(np.float32)
    got, want = _run("pow", base, expo)
    assert float(np.max(np.abs(got / want - 1))) <= 5e-6  # exp(y log x): |y log x| * eps


def test_erf_matches_math_erf():
    x = np.linspace(-5, 5, 10_001).astype(np.float32)
    got, _ = _run("erf", x)
    want = np.array([math.erf(float(v)) for v in x])
    assert float(np.max(np.abs(got - want))) <= 4e-7


NEW_UNARY = ["silu", "tanh", "erf", "gelu", "gelu_tanh", "mish", "softplus", "softsign", "elu",
             "selu", "celu", "thresholded_relu", "sqrt", "exp", "abs", "neg", "floor", "ceil",
             "round", "sign"]


def _blocked_chain(op: str, n_in: int, seed: int) -> Graph:
    """conv(20 -> 20 channels: the last block of 16 has padding lanes) -> add(y, y) -> op."""
    rng = np.random.default_rng(seed)
    g = Graph(op)
    x = g.add_input("x", (2, 6, 5, 7))
    ys = []
    for _ in range(n_in):
        w = g.add_constant(rng.standard_normal((20, 6, 3, 3)).astype(np.float32) * 0.3)
        y = g.apply("conv", [x, w], {"pads": [1, 1, 1, 1]})
        y = g.apply("add", [y, y])
        ys.append(g.apply("abs", [y]) if op == "sqrt" else y)
    g.set_outputs([g.apply("conv", [g.apply(op, ys), g.add_constant(
        rng.standard_normal((4, 20, 1, 1)).astype(np.float32))])])
    return g


@pytest.mark.parametrize("op,n_in", [(op, 1) for op in NEW_UNARY] +
                         [(op, 2) for op in ("sub", "max", "min", "mean")])
def test_after_a_blocked_conv(op, n_in):
    graph = _blocked_chain(op, n_in, seed=len(op))
    opt = gc.optimize(graph, target="llvm")
    (node,) = [n for n in opt.nodes if n.op == op]
    zero = preserves_zero(op, ()) if op in ACTIVATIONS else BINARY_OPS[op].zero_preserving
    assert (node.inputs[0].type.rank == 5) == zero  # runs blocked exactly when op(0) == 0
    x = np.random.default_rng(3).standard_normal((2, 6, 5, 7)).astype(np.float32)
    want = gc.compile(graph, target="reference")(x)
    got = gc.compile(graph, target="llvm", cache=False)(x)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-4
