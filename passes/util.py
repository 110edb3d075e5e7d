"""Small helpers the passes share: use queries, node replacement, the node annotation side table.

Annotations are a side table on the graph, `graph.annotations: {node name: {key: value}}`, for
backend hints that are not op attributes (the op schema rejects unknown attrs, and a hint must
never change the reference semantics). Keys written by the passes:
  "kernel":          "direct" | "gemm" | "winograd" | "winograd_f2"
                     (conv, gemm; passes/kernel_family.py)
  "concat_inplace":  True                             (concat; passes/concat_inplace.py)
  "write_into":      (concat node name, axis offset)  (a producer of an in-place concat input)
"""
from __future__ import annotations

from typing import Any

from graphcnn.ir import Graph, Node, Value


def is_output(graph: Graph, v: Value) -> bool:
    return any(v is o for o in graph.outputs)


def single_private_use(graph: Graph, v: Value) -> bool:
    """v feeds exactly one input of one node and is not a graph output: safe to fuse away."""
    return len(v.uses) == 1 and not is_output(graph, v)


def producer_op(v: Value) -> str | None:
    return v.producer.op if v.producer is not None else None


def replace_node(graph: Graph, old: Node, new: Value) -> None:
    """Route every use of `old`'s (single) output to `new` and drop `old`."""
    graph.replace_all_uses_with(old.outputs[0], new)
    graph.remove(old)


def all_constant(values) -> bool:
    return all(v.is_constant for v in values)


def annotations(graph: Graph) -> dict[str, dict[str, Any]]:
    """The graph's annotation side table (Graph owns it and copies it with the graph)."""
    return graph.annotations


def annotate(graph: Graph, node: Node, **values: Any) -> bool:
    """Set annotations on a node; True if anything changed."""
    entry = annotations(graph).setdefault(node.name, {})
    changed = any(entry.get(k, object()) != v for k, v in values.items())
    entry.update(values)
    return changed


def annotation(graph: Graph, node: Node, key: str, default: Any = None) -> Any:
    return annotations(graph).get(node.name, {}).get(key, default)


def adopt_name(new: Value, old: Node) -> Value:
    """Give the node producing `new` the name (and output name) of the node it replaces, once
    `old` is out of the graph, so names stay stable across passes (diffs, annotations)."""
    node = new.producer
    node.name = old.name
    new.name = old.outputs[0].name
    return new


def drop_if_dead(graph: Graph, node: Node) -> bool:
    """Remove `node` when a rewrite left its outputs unused (and not graph outputs)."""
    if any(out.uses or is_output(graph, out) for out in node.outputs):
        return False
    graph.remove(node)
    return True
