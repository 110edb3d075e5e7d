"""Identity and dropout removal (both are y = x at inference).

1. identity(x) -> x
2. dropout(x) -> x
Graph output names are restored by the pass manager at the end of the pipeline.
"""
from __future__ import annotations

from graphcnn.ir import Graph
from graphcnn.ops import NO_OPS

from .util import replace_node


def remove_identity(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op in NO_OPS:  # Rules 1, 2
            replace_node(graph, node, node.inputs[0])
            changed = True
    return changed
