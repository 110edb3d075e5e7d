"""Concat prefix reuse: concat(a, b, c) after concat(a, b) becomes concat(concat(a, b), c).

DenseNet as usually written (and as exported from PyTorch) concatenates *all* earlier features
for every layer: concat(x0, y1), concat(x0, y1, y2), ... Each repeats the copies of the one
before, O(L^2) bytes per block. Reading the earlier concat instead makes a chain, and a chain
needs no copies at all once the in-place marks let every result be a prefix of the last
concat's buffer (passes/concat_inplace.py).
1. For each concat C (in order), the earlier concat P on the same axis whose inputs are the
   longest proper prefix (at least 2 inputs) of C's inputs is found; C's prefix is replaced by
   P's output. Exact: concatenation is associative.
2. Nothing else changes; a concat with no such P is left alone.
"""
from __future__ import annotations

from graphcnn.ir import Graph, Node

from .util import adopt_name, replace_node


def reuse_concat_prefixes(graph: Graph) -> bool:
    # (axis, ids of the original inputs) -> the concat computing them (maybe already rewritten)
    seen: dict[tuple[int, tuple[int, ...]], Node] = {}
    changed = False
    for node in list(graph.nodes):
        if node.op != "concat":
            continue
        axis, ids = node.attrs["axis"], tuple(id(v) for v in node.inputs)
        k = next((k for k in range(len(ids) - 1, 1, -1) if (axis, ids[:k]) in seen), 0)
        if k:
            prefix = seen[axis, ids[:k]]
            y = graph.apply("concat", [prefix.outputs[0]] + list(node.inputs[k:]),
                            dict(node.attrs), name=node.name, before=node)
            replace_node(graph, node, y)
            adopt_name(y, node)
            node = y.producer
            changed = True
        seen[axis, ids] = node
    return changed
