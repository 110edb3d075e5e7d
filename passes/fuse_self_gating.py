"""x * gate(x) as the one activation it is, which then fuses into a conv / gemm epilogue.

The exporters write nn.SiLU as Mul(x, Sigmoid(x)) (both torch exporters, every opset), and
older ones nn.Hardswish as Mul(x, HardSigmoid(x; alpha=1/6, beta=0.5)).
fuse-silu:
1. mul(x, sigmoid(x)) or mul(sigmoid(x), x) -> silu(x)
fuse-hard-swish:
2. mul(x, hard_sigmoid(x)) (either order) with alpha = 1/6, beta = 0.5 -> hard_swish(x)
Only when the gate's output has no other use (and is not a graph output); the new node takes
the mul's name.
"""
from __future__ import annotations

from collections.abc import Callable

from graphcnn.ir import Graph, Node, Value

from .util import adopt_name, replace_node, single_private_use


def _gated(graph: Graph, mul: Node, gate: str, fits: Callable[[Node], bool]
           ) -> tuple[Value, Node] | None:
    """(x, the gate node) when mul is x * gate(x) in either order, the gate used only here."""
    a, b = mul.inputs
    for x, g in ((a, b), (b, a)):
        node = g.producer
        if (node is not None and node.op == gate and node.inputs[0] is x and g is not x
                and fits(node) and single_private_use(graph, g)):
            return x, node
    return None


def _fuse(graph: Graph, gate: str, op: str, fits: Callable[[Node], bool]) -> bool:
    changed = False
    for mul in [n for n in graph.nodes if n.op == "mul"]:
        match = _gated(graph, mul, gate, fits)
        if match is None:
            continue
        x, gate_node = match
        y = graph.apply(op, [x], name=mul.name, before=mul)
        replace_node(graph, mul, y)
        graph.remove(gate_node)
        adopt_name(y, mul)
        changed = True
    return changed


def fuse_silu(graph: Graph) -> bool:  # Rule 1
    return _fuse(graph, "sigmoid", "silu", lambda n: True)


def _hard_swish_gate(node: Node) -> bool:
    return abs(node.attrs["alpha"] - 1 / 6) < 1e-6 and abs(node.attrs["beta"] - 0.5) < 1e-6


def fuse_hard_swish(graph: Graph) -> bool:  # Rule 2
    return _fuse(graph, "hard_sigmoid", "hard_swish", _hard_swish_gate)
