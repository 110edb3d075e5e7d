"""Transpose and reshape cancellation.

1. transpose(transpose(x, p), q) -> transpose(x, [p[i] for i in q])   (composition)
2. transpose(x, identity perm) -> x
3. R2(R1(x)) -> reshape(x, shape of R2's output), for R1, R2 any of reshape, flatten, squeeze,
   unsqueeze (all only reinterpret a row-major buffer): flatten after reshape, reshape of reshape,
   unsqueeze after squeeze, ...
4. R(x) whose output shape equals x's shape -> x
5. The inner node is removed once nothing else uses it; a composition that ends at the identity
   (rules 1 + 2, 3 + 4) goes straight to x.
"""
from __future__ import annotations

from graphcnn.ir import Graph, Node

from .util import adopt_name, drop_if_dead, replace_node

RESHAPES = frozenset({"reshape", "flatten", "squeeze", "unsqueeze"})


def _transpose(graph: Graph, node: Node) -> bool:
    perm, src = node.attrs["perm"], node.inputs[0]
    if perm == tuple(range(len(perm))):  # Rule 2
        replace_node(graph, node, src)
        return True
    inner = src.producer
    if inner is None or inner.op != "transpose":
        return False
    p = inner.attrs["perm"]
    composed = tuple(p[i] for i in perm)  # Rule 1
    if composed == tuple(range(len(perm))):  # Rule 2
        replace_node(graph, node, inner.inputs[0])
    else:
        y = graph.apply("transpose", [inner.inputs[0]], {"perm": composed}, name=node.name,
                        before=node)
        replace_node(graph, node, y)
        adopt_name(y, node)
    drop_if_dead(graph, inner)  # Rule 5
    return True


def _reshape(graph: Graph, node: Node) -> bool:
    src, shape = node.inputs[0], node.outputs[0].type.shape
    if src.type.shape == shape:  # Rule 4
        replace_node(graph, node, src)
        return True
    inner = src.producer
    if inner is None or inner.op not in RESHAPES:
        return False
    source = inner.inputs[0]
    if source.type.shape == shape:  # Rules 3 + 4
        replace_node(graph, node, source)
    else:
        y = graph.apply("reshape", [source], {"shape": shape}, name=node.name,
                        before=node)  # Rule 3
        replace_node(graph, node, y)
        adopt_name(y, node)
    drop_if_dead(graph, inner)  # Rule 5
    return True


def cancel_views(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):  # topological: a chain collapses front to back in one sweep
        if node.op == "transpose":
            changed |= _transpose(graph, node)
        elif node.op in RESHAPES:
            changed |= _reshape(graph, node)
    return changed
