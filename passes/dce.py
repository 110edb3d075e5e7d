"""Dead-code elimination.

1. A node none of whose outputs is used by a node or is a graph output is removed.
Nodes are visited last to first, so a dead chain goes in one sweep.
"""
from __future__ import annotations

from graphcnn.ir import Graph

from .util import is_output


def eliminate_dead_code(graph: Graph) -> bool:
    changed = False
    for node in reversed(list(graph.nodes)):
        if not any(out.uses or is_output(graph, out) for out in node.outputs):  # Rule 1
            graph.remove(node)
            changed = True
    return changed
