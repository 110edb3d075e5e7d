"""Constant folding: evaluate nodes whose inputs are all constants with the op's own compute.

1. A node whose inputs are all constants becomes a constant (the reference op's `compute`, so
   folding cannot change semantics), unless its output is larger than
   max(FOLD_LIMIT_BYTES, the bytes of its inputs): folding never grows the model by more than
   the limit (a broadcast of a scalar to a huge tensor stays a node).
2. Graph outputs are folded too (a constant output is legal in the IR).
Nodes are visited in topological order, so chains fold in one sweep.
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph
from graphcnn.ops import get_op

from .util import all_constant, replace_node

FOLD_LIMIT_BYTES = 1 << 20


def fold_constants(graph: Graph, limit_bytes: int = FOLD_LIMIT_BYTES) -> bool:
    changed = False
    for node in list(graph.nodes):
        if not node.inputs or not all_constant(node.inputs) or len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        if out.type.nbytes > max(limit_bytes, sum(v.type.nbytes for v in node.inputs)):
            continue  # Rule 1: size limit
        with np.errstate(all="ignore"):
            (data,) = get_op(node.op, node.name).run(node.attrs, *(v.data for v in node.inputs))
        data = np.asarray(data, dtype=out.type.dtype).reshape(out.type.shape)
        replace_node(graph, node, graph.add_constant(data, name=f"{node.name}.folded"))  # Rule 1, 2
        changed = True
    return changed
