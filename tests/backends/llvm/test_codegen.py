"""Kernel sharing and the split compile: layers with the same plan share one kernel function,
kernels/ plans live in their own modules, compiled (in forked children) and linked back."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from llvm_cases import rel_l2, rnd

import graphcnn as gc
from graphcnn.ir import Graph

lower_mod = importlib.import_module("graphcnn.backends.llvm.lower")
codegen = importlib.import_module("graphcnn.backends.llvm.codegen")


def twin_convs() -> gc.Graph:
    gc.manual_seed(3)
    return gc.Sequential(gc.Conv2d(16, 16, 3, padding=1), gc.ReLU(),
                         gc.Conv2d(16, 16, 3, padding=1), gc.ReLU(),
                         gc.Conv2d(16, 32, 1)).build((1, 16, 12, 12))


def test_same_shape_layers_share_one_kernel():
    graph = gc.optimize(twin_convs())
    lowered = lower_mod.lower(graph.copy(), 16, "graphcnn_weights_t", True, False)
    kernels = [f for m in lowered.kernel_modules for f in m.functions
               if not f.is_declaration and f.linkage != "internal"]
    assert len(kernels) == 2  # the two 16->16 3x3 convs share one, the 1x1 has its own
    assert len(lowered.modules) >= 2


def test_split_modules_link_and_match_reference():
    graph = twin_convs()
    x = rnd(1, 16, 12, 12)
    want = interpret(graph, [x])[0]
    for threads in (1, 2):
        got = gc.compile(graph, target="llvm", cache=False, threads=threads)(x)
        assert rel_l2(got, want) < 1e-5


def test_compile_objects_without_fork_matches(monkeypatch):
    graph = gc.optimize(twin_convs())
    lowered = lower_mod.lower(graph.copy(), 16, "graphcnn_weights_t", True, False)
    forked = codegen.compile_objects(lowered.modules, "host")
    monkeypatch.setattr(codegen, "_fork_compile", lambda *a: None)
    lowered = lower_mod.lower(graph.copy(), 16, "graphcnn_weights_t", True, False)
    serial = codegen.compile_objects(lowered.modules, "host")
    assert len(forked) == len(serial) == len(lowered.modules)
    assert all(isinstance(o, bytes) and o for o in forked)


def test_cache_round_trip_with_several_objects(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    graph = twin_convs()
    x = rnd(1, 16, 12, 12)
    first = gc.compile(graph, target="llvm", cache=True)
    second = gc.compile(graph, target="llvm", cache=True)
    assert second.from_cache and not first.from_cache
    np.testing.assert_array_equal(first(x), second(x))


@pytest.mark.parametrize("n, c, oc, groups, hw, residual, act", [
    (1, 60, 60, 3, (7, 7), False, "relu"),      # ShuffleNet's grouped 1x1, scalar tail
    (2, 12, 18, 3, (9, 11), True, "none"),      # residual, ocg=6 -> tiles of 2 channels
    (1, 8, 5, 1, (20, 20), False, "sigmoid"),   # odd out channels -> tiles of 1
    (1, 16, 32, 2, (16, 17), True, "relu"),     # several full 64-pixel blocks + tails
])
def test_pointwise_conv_matches_reference(n, c, oc, groups, hw, residual, act):
    g = Graph("pw")
    x = g.add_input("x", (n, c, *hw))
    ins = [x, g.add_constant(rnd(oc, c // groups, 1, 1), "w"), g.add_constant(rnd(oc), "b")]
    if residual:
        ins.append(g.add_input("r", (n, oc, *hw)))
    g.set_outputs([g.apply("conv", ins, {"groups": groups, "residual": residual,
                                          "activation": act})])
    feeds = [rnd(*v.type.shape) for v in g.inputs]
    want = interpret(g, feeds)[0]
    for threads in (1, 2):
        cm = gc.compile(g, target="llvm", cache=False, threads=threads, rewrites=False,
                        opt_level=0)
        assert any(k["op"] == "conv" for k in cm.kernels)
        assert rel_l2(cm(*feeds), want) < 1e-5


def test_silent_child_is_killed_and_module_compiled_here(monkeypatch):
    monkeypatch.setattr(codegen, "CHILD_TIMEOUT_S", 0.0)  # every child counts as hung
    graph = twin_convs()
    x = rnd(1, 16, 12, 12)
    got = gc.compile(graph, target="llvm", cache=False)(x)
    assert rel_l2(got, interpret(graph, [x])[0]) < 1e-5
