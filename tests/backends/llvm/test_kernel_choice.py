"""The pass pipeline's kernel-family choice reaches the llvm backend, and every family agrees
with the reference on the same convs."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.llvm.kernels.winograd import WinogradConv2dNCHWcPlan
from llvm_cases import record_plans

import graphcnn as gc


@pytest.mark.parametrize("size,family", [(16, "winograd"), (9, "direct"),
                                         (12, "winograd"),  # 9 tiles an image, 18 in all
                                         (7, "winograd_f2")])  # 16 2x2 tiles an image
def test_winograd_choice_and_numerics(size, family, monkeypatch):
    graph = gc.Sequential(gc.Conv2d(64, 64, 3, padding=1, seed=3), gc.ReLU(),
                          gc.Conv2d(64, 80, 3, padding=1, seed=4)).build((2, 64, size, size))
    opt = gc.optimize(graph, opt_level=2, target="llvm")
    convs = [n for n in opt.nodes if n.op == "conv"]
    assert [opt.annotations[n.name]["kernel"] for n in convs] == [family, family]

    plans = record_plans(monkeypatch, WinogradConv2dNCHWcPlan)
    x = np.random.default_rng(0).standard_normal((2, 64, size, size)).astype(np.float32)
    ref = gc.compile(graph, target="reference")(x)
    y = gc.compile(graph, target="llvm", cache=False)(x)
    assert len(plans) == (0 if family == "direct" else 2)
    assert all(p.m == (2 if family == "winograd_f2" else 4) for p in plans)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) <= 1e-4
