"""Semantics preserved: small networks and random graphs, after every pass and every pipeline."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.passes import OPT_LEVELS, optimize, pipeline
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from pass_cases import NETWORKS, assert_same, ops, rand

from graphcnn.ir import Graph
from graphcnn.verify import verify

TARGETS = (None, "llvm")


def _each_pass(graph: Graph, level: int, target: str | None) -> Graph:
    work = graph.copy()
    for p in pipeline(level, target):
        p.fn(work)
        verify(work)
        assert_same(graph, work)
    return work


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("level", OPT_LEVELS)
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_networks_every_pass_every_level(name, level, target):
    graph = NETWORKS[name]()
    _each_pass(graph, level, target)
    out = optimize(graph.copy(), level, target)
    assert_same(graph, out)
    again = optimize(out.copy(), level, target)  # the pipeline is idempotent as a whole
    assert str(again) == str(out)


EXPECTED_OPS = {  # level 2: what fusion leaves of each network
    ("lenet5", None): ["conv", "max_pool", "conv", "avg_pool", "flatten", "gemm", "gemm", "gemm",
                       "softmax"],
    ("resnet_block", None): ["conv", "conv", "conv"],
    ("resnet_block", "llvm"): ["to_blocked", "conv", "conv", "max_pool", "conv", "from_blocked"],
    ("depthwise_block", None): ["conv", "conv", "conv"],
}


@pytest.mark.parametrize("name,target", sorted(EXPECTED_OPS, key=str))
def test_level2_structure(name, target):
    assert ops(optimize(NETWORKS[name](), 2, target)) == EXPECTED_OPS[(name, target)]


# ----- random graphs ------------------------------------------------------------------------
@st.composite
def random_graphs(draw) -> Graph:
    """A random DAG of conv-net ops on (N, C, H, W) tensors, every op the passes rewrite."""
    g = Graph("random")
    seed = iter(range(1000))
    c, size = draw(st.sampled_from([3, 8, 16])), draw(st.sampled_from([5, 8]))
    batch = draw(st.sampled_from([1, 1, 2]))
    values = [g.add_input("x", (batch, c, size, size))]

    def const(shape, low=-1.0, high=1.0):
        return g.add_constant(rand(shape, next(seed), low, high))

    for _ in range(draw(st.integers(2, 9))):
        x = draw(st.sampled_from(values[-3:]))
        ch = x.type.shape[1]
        kind = draw(st.sampled_from(["conv", "conv", "bn", "act", "act", "add", "concat", "pool",
                                     "pad", "noop", "views", "bias"]))
        if kind == "conv":
            k = draw(st.sampled_from([1, 3]))
            dw = draw(st.booleans()) and ch > 3
            out = ch if dw else draw(st.sampled_from([4, 8, 16, 20]))
            ins = [x, const((out, 1 if dw else ch, k, k))]
            if draw(st.booleans()):
                ins.append(const((out,)))
            stride = draw(st.sampled_from([1, 1, 2])) if x.type.shape[2] >= 4 else 1
            y = g.apply("conv", ins, {"pads": (k // 2,) * 4, "strides": (stride,) * 2,
                                      "groups": ch if dw else 1})
        elif kind == "bn":
            y = g.apply("batch_norm", [x, const((ch,)), const((ch,)), const((ch,)),
                                       const((ch,), 0.5, 1.5)])
        elif kind == "act":
            op, attrs = draw(st.sampled_from([("relu", {}), ("sigmoid", {}),
                                              ("clip", {"min": 0.0, "max": 0.5}),
                                              ("clip", {"min": 0.1, "max": 0.5}),
                                              ("leaky_relu", {"alpha": 0.1})]))
            y = g.apply(op, [x], attrs)
        elif kind == "bias":
            y = g.apply("add", [x, const((ch, 1, 1))])
        elif kind in ("add", "concat"):
            same = [v for v in values if v.type.shape[2:] == x.type.shape[2:]]
            other = draw(st.sampled_from(same))
            if kind == "add" and other.type.shape == x.type.shape:
                y = g.apply("add", [x, other])
            else:
                y = g.apply("concat", [x, other], {"axis": 1})
        elif kind == "pool":
            op = draw(st.sampled_from(["max_pool", "avg_pool", "sum_pool", "global_avg_pool"]))
            op = op if x.type.shape[2] >= 2 else "global_avg_pool"
            attrs = {} if op.startswith("global") else {"kernel_shape": (2, 2)}
            y = g.apply(op, [x], attrs)
        elif kind == "pad":
            nxt = draw(st.sampled_from(["conv", "max_pool", "avg_pool", "none"]))
            # -inf only before a max_pool: anywhere else it makes NaNs (-inf * 0)
            value = draw(st.sampled_from([0.0, 0.5] + ([-np.inf] if nxt == "max_pool" else [])))
            p = draw(st.sampled_from([(0, 0, 1, 1, 0, 0, 1, 1), (0, 0, 0, 1, 0, 0, 1, 0)]))
            p = p if x.type.shape[2] >= 2 else (0, 0, 1, 1, 0, 0, 1, 1)
            y = g.apply("pad", [x], {"pads": p, "value": value})
            if nxt == "conv":
                y = g.apply("conv", [y, const((8, ch, 3, 3))])
            elif nxt != "none":
                y = g.apply(nxt, [y], {"kernel_shape": (2, 2)})
        elif kind == "noop":
            y = g.apply(draw(st.sampled_from(["identity", "dropout"])), [x])
        else:
            n, ch_, h, w = x.type.shape
            t = g.apply("transpose", [x], {"perm": (0, 2, 3, 1)})
            t = g.apply("transpose", [t], {"perm": (0, 3, 1, 2)})
            y = g.apply("reshape", [g.apply("reshape", [t], {"shape": (n, ch_ * h, w)})],
                        {"shape": (n, ch_, h, w)})
        values.append(y)
    outs = [values[-1]] + ([values[-2]] if draw(st.booleans()) and len(values) > 2 else [])
    g.set_outputs(outs)
    verify(g)
    return g


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs(), level=st.sampled_from(OPT_LEVELS), target=st.sampled_from(TARGETS))
def test_random_graphs_every_pass(graph, level, target):
    note(str(graph))
    _each_pass(graph, level, target)
    out = optimize(graph.copy(), level, target)
    assert_same(graph, out)
    assert [v.name for v in out.outputs] == [v.name for v in graph.outputs]
