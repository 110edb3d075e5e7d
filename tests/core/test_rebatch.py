"""graphcnn/rebatch.py: a batch-wise graph rebuilt for n samples computes each sample as the
original does (reference interpreter, sample by sample), the shape attributes follow (rule 2),
and a graph that mixes samples is a CompileError naming the node."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.reference import interpret

import graphcnn as gc
from graphcnn.errors import CompileError
from graphcnn.rebatch import graph_batch, rebatch

RNG = np.random.default_rng(9)


def shaped_graph() -> gc.Graph:
    """Each op whose attributes spell the batch: reshape, slice, expand, resize."""
    b = gc.GraphBuilder("shaped")
    x = b.input("x", (1, 2, 4, 4))
    y = b.op("resize", [x], name="up", sizes=(1, 2, 8, 8), mode="nearest")
    y = b.op("slice", [y], name="crop", starts=(0, 0, 1, 1), ends=(1, 2, 7, 7))
    y = b.op("reshape", [y], name="rows", shape=(1, 2, 36))
    y = b.op("expand", [b.op("unsqueeze", [y], axes=(1,))], name="wide", shape=(1, 3, 2, 36))
    return b.build(y)


def test_rebatched_graph_computes_each_sample_alone():
    graph = shaped_graph()
    new = rebatch(graph, 5)
    assert new.inputs[0].shape == (5, 2, 4, 4) and new.outputs[0].shape == (5, 3, 2, 36)
    assert {n.name: n.attrs.get("shape", n.attrs.get("sizes"))[0] for n in new.nodes
            if n.name in ("up", "crop", "rows", "wide")} == dict.fromkeys(
        ("up", "crop", "rows", "wide"), 5)
    assert [n.name for n in new.nodes] == [n.name for n in graph.nodes]
    x = RNG.standard_normal((5, 2, 4, 4)).astype(np.float32)
    want = np.concatenate([interpret(graph, [x[i:i + 1]])[0] for i in range(5)])
    np.testing.assert_array_equal(interpret(new, [x])[0], want)
    assert str(rebatch(new, 1)) == str(graph)  # and back


def test_graph_batch_and_refusals():
    assert graph_batch(shaped_graph()) == 1
    b = gc.GraphBuilder("mix")
    x = b.input("x", (2, 6))
    mixed = b.build(b.op("reduce_sum", [x], name="total", axes=(0,), keepdims=1))
    with pytest.raises(CompileError, match=r"'total' \(reduce_sum\)"):
        rebatch(mixed, 4)
    b = gc.GraphBuilder("two")
    two = b.build(gc.add(b.input("a", (2, 3)), b.input("c", (1, 3))))
    with pytest.raises(CompileError, match="first dims"):
        graph_batch(two)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(CompileError, match="positive int"):
            rebatch(shaped_graph(), bad)
