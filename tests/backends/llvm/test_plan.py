"""The plan stage builds exactly the kernel the passes chose: the predicates of
passes/conv_kernels.py and passes/kernel_family.py (which restate the kernels' bounds) agree
with the kernels' own plan constructors, on random convs and gemms through the llvm pipeline
at every vector width; and lowering never rewrites the graph it is given."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.llvm import plan as plan_stage
from graphcnn.backends.llvm.kernels.winograd import WinogradConv2dNCHWcPlan
from graphcnn.backends.llvm.lower import lower
from graphcnn.passes.conv_kernels import (
    POOLED,
    lane_groups_takes,
    row_conv_takes,
    winograd_takes,
)
from graphcnn.passes.kernel_family import gemm_takes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llvm_cases import rel_l2, rnd

import graphcnn as gc
from graphcnn.errors import CompileError
from graphcnn.ir import Graph, Node

WIDTHS = (4, 8, 16)


def _accepts(create, *args, **kwargs) -> bool:
    """Whether a plan constructor takes these arguments."""
    try:
        create(*args, **kwargs)
    except ValueError:
        return False
    return True


@st.composite
def conv_graphs(draw) -> Graph:
    """conv (+ relu, + a 2x2 max pool sometimes) with random channels, kernel, stride, pads,
    dilation and groups on a small map."""
    groups = draw(st.sampled_from((1, 1, 1, 2, 4)))
    channels = st.sampled_from((1, 2, 3, 6, 8, 16, 32, 40))
    c_in, c_out = groups * draw(channels), groups * draw(channels)
    if draw(st.integers(0, 3)) == 0:  # depthwise
        groups = c_out = c_in
    elif draw(st.integers(0, 2)) == 0:  # as many channels per group in as out (lane groups)
        c_out = c_in
    k = draw(st.sampled_from((1, 3, 3, 5)))
    stride, dilation = draw(st.sampled_from((1, 1, 2))), draw(st.sampled_from((1, 1, 2)))
    pad = draw(st.integers(0, k // 2 * dilation))
    size = draw(st.integers((k - 1) * dilation + 1, 40))
    layers = [gc.Conv2d(c_in, c_out, k, stride=stride, padding=pad, dilation=dilation,
                        groups=groups, seed=1), gc.ReLU()]
    out = (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    if out >= 2 and draw(st.booleans()):
        layers.append(gc.MaxPool2d(2))
    return gc.Sequential(*layers).build((draw(st.integers(1, 2)), c_in, size, size))


def check_conv_predicates(opt: Graph, width: int) -> None:
    for node in (n for n in opt.nodes if n.op == "conv"):
        if node.attrs["layout"] != "NCHWc":
            continue
        assert row_conv_takes(node, width) == _accepts(plan_stage._row, node, width)
        if node.attrs["pool"]:
            continue  # only the row kernel pools
        assert winograd_takes(node) == _accepts(
            WinogradConv2dNCHWcPlan.create, **plan_stage._conv_args(node), m=4)
        if lane_groups_takes(node):
            assert _accepts(plan_stage._lane_groups, node, width)
        # as if fuse-conv-pool gave it a pool
        pooled = Node("pooled", "conv", list(node.inputs), {**node.attrs, "pool": POOLED})
        pooled.outputs = node.outputs
        assert row_conv_takes(node, width, pool=POOLED) == _accepts(
            plan_stage._row, pooled, width)
    steps = plan_stage.plan(opt, width)  # every chosen family's plan builds
    assert all(s.plan is not None for s in steps
               if s.node.op == "conv" and s.node.attrs["layout"] == "NCHWc")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_graphs(), st.sampled_from(WIDTHS))
def test_conv_predicates_agree_with_the_kernels(graph, width):
    check_conv_predicates(gc.optimize(graph, target="llvm", block=width), width)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("c_in,c_out", [(1, 4), (1, 6), (3, 8), (3, 16), (2, 3)])
def test_row_kernel_predicates_at_its_bounds(width, c_in, c_out):
    """The row kernel's bounds (planar input, few outputs, rows of 1 to 8 pixel vectors, the
    fused pool) on the map widths around them."""
    for size in (3, 4, 5, 8, 9, 16, 17, 33, 64, 65, 129, 130):
        for k, pool in ((3, False), (3, True), (5, True), (1, True)):
            if size < k + 1:
                continue
            layers = [gc.Conv2d(c_in, c_out, k, seed=1), gc.ReLU()]
            layers += [gc.MaxPool2d(2)] if pool else []
            graph = gc.Sequential(*layers).build((1, c_in, size, size))
            check_conv_predicates(gc.optimize(graph, target="llvm", block=width), width)


@st.composite
def gemm_graphs(draw) -> Graph:
    m, n, k = draw(st.integers(1, 9)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    trans_a, trans_b = draw(st.booleans()), draw(st.booleans())
    c_shape = draw(st.sampled_from(((), (1,), (n,), (1, n), (m, 1), (m, n), (1, 1), None)))
    g = Graph("gemm")
    a = g.add_input("a", ((k, m) if trans_a else (m, k)))
    b = g.add_constant(rnd(*((n, k) if trans_b else (k, n))), "b")
    ins = [a, b] + ([] if c_shape is None else [g.add_constant(rnd(*c_shape), "c")])
    y = g.apply("gemm", ins, {"transA": int(trans_a), "transB": int(trans_b),
                              "alpha": draw(st.sampled_from((1.0, 0.5))),
                              "beta": draw(st.sampled_from((1.0, 2.0)))})
    g.set_outputs([y])
    return g


@settings(max_examples=80, deadline=None)
@given(gemm_graphs(), st.sampled_from(WIDTHS))
def test_gemm_predicate_agrees_with_the_kernel(graph, width):
    opt = gc.optimize(graph, target="llvm", block=width)
    (node,) = [n for n in opt.nodes if n.op == "gemm"]
    assert gemm_takes(node) == _accepts(plan_stage._gemm, node, width)
    assert opt.annotations[node.name]["kernel"] == ("gemm" if gemm_takes(node) else "generic")
    plan_stage.plan(opt, width)


def test_lowering_does_not_change_the_graph():
    graph = gc.optimize(gc.Sequential(gc.Conv2d(3, 16, 3, padding=1, seed=2), gc.ReLU(),
                                      gc.MaxPool2d(2), gc.Conv2d(16, 16, 3, padding=1, seed=3),
                                      gc.ReLU()).build((1, 3, 16, 16)), target="llvm")
    before, notes = str(graph), repr(graph.annotations)
    lower(graph, 16, "graphcnn_weights_t")
    assert (str(graph), repr(graph.annotations)) == (before, notes)


def test_a_graph_without_the_lowering_passes_is_refused_by_name():
    graph = gc.optimize(gc.Sequential(gc.Conv2d(3, 8, 3, seed=2)).build((1, 3, 8, 8)))
    with pytest.raises(CompileError, match=r"node 'conv\w*' \(conv\).*kernel family"):
        lower(graph, 16, "graphcnn_weights_t")


@pytest.mark.parametrize("opt_level", [0, 1, 2, 3])
@pytest.mark.parametrize("rewrites", [True, False])
def test_every_level_compiles_and_matches_reference(opt_level, rewrites):
    """Every level ends with the lowering passes, so every level lowers; `rewrites` lifts the
    level to 2 (the blocked layout), without it levels 0 and 1 stay NCHW on the generic
    kernels."""
    graph = gc.Sequential(gc.Conv2d(3, 8, 3, padding=1, seed=2), gc.BatchNorm2d(8),
                          gc.ReLU(), gc.MaxPool2d(2), gc.Conv2d(8, 16, 3, padding=1, seed=3),
                          gc.ReLU(), gc.Flatten(), gc.Linear(16 * 8 * 8, 10, seed=4)
                          ).build((2, 3, 16, 16))
    x = rnd(2, 3, 16, 16)
    want = gc.compile(graph, target="reference")(x)
    cm = gc.compile(graph, target="llvm", opt_level=opt_level, rewrites=rewrites, cache=False)
    assert rel_l2(cm(x), want) < 1e-5
    blocked = any(n.attrs.get("layout") == "NCHWc" for n in cm.graph.nodes)
    assert blocked == (rewrites or opt_level >= 2)
    families = {cm.graph.annotations[n.name]["kernel"] for n in cm.graph.nodes
                if n.op in ("conv", "gemm")}
    assert families <= set(plan_stage.PLANS) | plan_stage.LOOPS
    assert np.isfinite(cm(x)).all()


def test_any_graph_name_lowers():
    """The graph name becomes the LLVM module's id, a line of IR text."""
    graph = gc.Sequential(gc.Conv2d(3, 8, 3, seed=2), gc.ReLU()).build((1, 3, 8, 8))
    graph.name = 'net"\n; injected\x00 é'
    x = rnd(1, 3, 8, 8)
    cm = gc.compile(graph, target="llvm", cache=False)
    assert rel_l2(cm(x), gc.compile(graph, target="reference")(x)) < 1e-5
