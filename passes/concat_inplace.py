"""Concat without copies: mark concats whose inputs can be written straight into the output.

Nothing in the graph changes (the reference semantics cannot); the pass writes annotations
(passes/util.py side table, `graph.annotations[node name]`) the llvm backend reads:
  concat node:    {"concat_inplace": True}
  each producer:  {"write_into": (concat node name, offset along the concat axis)}
The offset counts along the concat axis of the tensors as they are: channels for NCHW, channel
blocks for a blocked (N, Cb, H, W, b) concat. A backend that honours the marks allocates the
concat's buffer, gives each producer the view `out[(:,)*axis, offset:offset + size]` as its
output buffer, and skips the concat's copy; one that ignores them still computes the same.
1. The slices must be contiguous: every dim before the concat axis is 1 (axis 1 with batch 1 in
   NCHW; also axis 1 of a blocked (N, Cb, H, W, b) tensor with N = 1).
2. Each input is produced by a node (not a graph input or constant), by a different node, is
   used by this concat once and by no view (flatten, reshape, ...: a view aliases its own
   input's buffer), is not a graph output, and is not itself a view. Other nodes may read it:
   it stays in its slice, which nothing overwrites while the concat's buffer lives. An input
   may be another (marked) concat's output: DenseNet's concat(concat(x0, y1), y2) ... chain
   then shares the last concat's buffer, each intermediate result a prefix of it.
3. A producer writes into at most one concat (a later concat that would also claim it is left
   unmarked).
A concat that does not qualify is left to copy. Re-running clears and re-derives the marks.
"""
from __future__ import annotations

import math

from graphcnn.ir import Graph, Node
from graphcnn.ops import VIEWS

from .util import annotate, annotations, is_output


def _qualifies(graph: Graph, concat: Node, claimed: set[str]) -> bool:
    axis, shape = concat.attrs["axis"], concat.outputs[0].type.shape
    if math.prod(shape[:axis]) != 1:  # Rule 1
        return False
    producers = [v.producer for v in concat.inputs]
    return (all(p is not None and p.op not in VIEWS and len(p.outputs) == 1 for p in producers)
            and len({id(p) for p in producers}) == len(producers)
            and all(_writable_slice(graph, concat, v) for v in concat.inputs)
            and not any(p.name in claimed for p in producers))  # Rules 2, 3


def _writable_slice(graph: Graph, concat: Node, v) -> bool:
    uses = [n for n, _ in v.uses]
    return (sum(n is concat for n in uses) == 1 and not is_output(graph, v)
            and not any(n.op in VIEWS for n in uses))


def mark_concat_inplace(graph: Graph) -> bool:
    table = annotations(graph)
    before = {k: dict(v) for k, v in table.items()}
    for entry in table.values():
        entry.pop("concat_inplace", None)
        entry.pop("write_into", None)
    claimed: set[str] = set()
    for concat in [n for n in graph.nodes if n.op == "concat"]:
        if not _qualifies(graph, concat, claimed):
            continue
        annotate(graph, concat, concat_inplace=True)
        offset, axis = 0, concat.attrs["axis"]
        for v in concat.inputs:
            annotate(graph, v.producer, write_into=(concat.name, offset))
            claimed.add(v.producer.name)
            offset += v.type.shape[axis]
    for name in [k for k, v in table.items() if not v]:
        del table[name]
    return table != before
