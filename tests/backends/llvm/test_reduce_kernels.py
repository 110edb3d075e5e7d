"""The reduction and normalisation kernels against the reference on hypothesis-drawn shapes,
axes and keepdims (every reduction of the table), and at every opt level behind a blocked conv
(the global pools the reduce-to-global-pool pass makes of spatial reductions)."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llvm_cases import rel_l2

import graphcnn as gc
from graphcnn.ir import Graph
from graphcnn.ops import REDUCTIONS


@st.composite
def reductions(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 19), min_size=rank, max_size=rank)))
    axes = draw(st.lists(st.integers(-rank, rank - 1), unique_by=lambda a: a % rank,
                         max_size=rank))
    op = draw(st.sampled_from(sorted(REDUCTIONS)))
    return op, shape, axes, draw(st.integers(0, 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reductions(), st.integers(0, 2 ** 31 - 1))
def test_reduction_matches_reference(case, seed):
    op, shape, axes, keepdims = case
    g = Graph("r")
    x = g.add_input("x", shape)
    src = g.apply("sigmoid", [x]) if op == "reduce_log_sum" else x  # a positive sum
    g.set_outputs([g.apply(op, [src], {"axes": axes, "keepdims": keepdims})])
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    want = interpret(g, [data])[0]
    got = gc.compile(g, target="llvm", opt_level=0, cache=False)(data)
    assert got.shape == want.shape and rel_l2(got, want) <= 1e-4


@pytest.mark.parametrize("opt_level", [0, 1, 2, 3])
@pytest.mark.parametrize("op", ["reduce_mean", "reduce_max", "reduce_l2", "reduce_log_sum_exp"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_spatial_reduction_behind_a_conv(opt_level, op, keepdims):
    rng = np.random.default_rng(5)
    g = Graph("head")
    x = g.add_input("x", (2, 3, 10, 9))
    w = g.add_constant(rng.standard_normal((24, 3, 3, 3)).astype(np.float32) * 0.3, "w")
    y = g.apply("relu", [g.apply("conv", [x, w], {"pads": (1, 1, 1, 1)})])
    g.set_outputs([g.apply(op, [y], {"axes": (-1, -2), "keepdims": keepdims})])
    data = rng.standard_normal((2, 3, 10, 9)).astype(np.float32)
    want = interpret(g, [data])[0]
    got = gc.compile(g, target="llvm", opt_level=opt_level)(data)
    assert got.shape == want.shape and rel_l2(got, want) <= 1e-5
