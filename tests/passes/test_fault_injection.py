"""passes/fault_injection.py: the test-only faulty pass is off unless asked for, goes where the
variable says, scales one weight, and turns the llvm compile cache off."""
from __future__ import annotations

import numpy as np
from graphcnn.backends.llvm import cache
from graphcnn.passes import pass_names, pipeline
from graphcnn.passes.fault_injection import FAULT_PASS, SCALE, scale_weight

import graphcnn as gc


def test_off_by_default(monkeypatch):
    monkeypatch.delenv("GRAPHCNN_TEST_FAULT", raising=False)
    assert FAULT_PASS not in pass_names(2, "llvm")


def test_placed_after_the_named_pass_or_first(monkeypatch):
    monkeypatch.setenv("GRAPHCNN_TEST_FAULT", "conv@fold-batch-norm")
    names = pass_names(2, None)
    assert names[names.index(FAULT_PASS) - 1] == "fold-batch-norm"
    monkeypatch.setenv("GRAPHCNN_TEST_FAULT", "conv")
    assert pass_names(2, None)[3:5] == ["cse", FAULT_PASS]
    assert pass_names(0, "llvm")[0] == FAULT_PASS  # no cse at level 0: at the front
    assert [p.name for p in pipeline(0, None)] == [FAULT_PASS]
    assert not cache.enabled()


def test_scales_the_first_weight_of_the_named_node():
    gc.manual_seed(0)
    graph = gc.Sequential(gc.Conv2d(2, 3, 3), gc.ReLU()).build((1, 2, 5, 5))
    before = graph.nodes[0].inputs[1].data
    assert scale_weight(graph, "conv")
    np.testing.assert_array_equal(graph.nodes[0].inputs[1].data, before * SCALE)
    assert not scale_weight(graph, "nothing_by_this_name")
    assert not scale_weight(graph, "conv", fused_only=True)  # no fused activation: untouched
    fused = gc.optimize(graph, opt_level=2)
    assert fused.nodes[0].attrs["activation"] == "relu"
    assert scale_weight(fused, "conv", fused_only=True)
