"""Every op of the op table, compiled alone (no passes) by the llvm backend, vs the reference."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.llvm import threads
from graphcnn.backends.reference import interpret
from llvm_cases import CASES, rel_l2, rnd

import graphcnn as gc
from graphcnn.ops import OPS

PARAMS = [pytest.param(op, build, tol, id=f"{op}-{cid}")
          for op, cases in CASES.items() for cid, build, tol in cases]


def test_every_op_has_a_case():
    # onnx_node has no llvm kernel by design: it runs on onnxruntime (tests/backends/test_fallback.py)
    assert sorted(set(OPS) - set(CASES) - {"onnx_node"}) == []


@pytest.mark.parametrize("rewrites", [False, True], ids=["plain", "rewrites"])
@pytest.mark.parametrize("op, build, tol", PARAMS)
def test_op_matches_reference(op, build, tol, rewrites):
    """plain: the op's own emitter; rewrites: after the level-2 llvm pass pipeline."""
    graph = build()
    assert any(n.op == op for n in graph.nodes)
    inputs = [rnd(*v.type.shape) for v in graph.inputs]
    want = interpret(graph, inputs)
    cm = gc.compile(graph, target="llvm", opt_level=0, cache=False, threads=2,
                    rewrites=rewrites)
    got = cm(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        assert rel_l2(g, w) <= tol


@pytest.mark.parametrize("op, build, tol", PARAMS)
def test_op_split_across_the_pool_matches_one_thread(op, build, tol, monkeypatch):
    """Every kernel in the thread pool, however little work it has (the thresholds that keep
    small kernels on the calling thread set to zero): bit-identical to one thread."""
    monkeypatch.setattr(threads, "PARALLEL_FLOPS", 0)
    monkeypatch.setattr(threads, "PARALLEL_ELEMENTS", 0)
    graph = build()
    inputs = [rnd(*v.type.shape) for v in graph.inputs]
    one, pooled = (gc.compile(graph, target="llvm", cache=False, threads=t) for t in (1, 3))
    got, want = pooled(*inputs), one(*inputs)
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        np.testing.assert_array_equal(g, w)
