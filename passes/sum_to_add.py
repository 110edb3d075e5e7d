"""n-ary sum of two inputs as the binary add, so the add rules apply to it.

Exporters write a residual connection as Sum(a, b) as often as Add(a, b) (the onnx wheel's
light ResNet-50 has 16 Sum + Relu); the residual and bias fusions look for add.
1. sum(a, b) -> add(a, b)   (same inputs, same order; the add takes the sum's name)
A sum of one or of three or more inputs is left alone.
"""
from __future__ import annotations

from graphcnn.ir import Graph

from .util import adopt_name, replace_node


def sum_to_add(graph: Graph) -> bool:
    changed = False
    for node in [n for n in graph.nodes if n.op == "sum" and len(n.inputs) == 2]:  # Rule 1
        y = graph.apply("add", list(node.inputs), name=node.name, before=node)
        replace_node(graph, node, y)
        adopt_name(y, node)
        changed = True
    return changed
