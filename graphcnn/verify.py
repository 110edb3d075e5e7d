"""The verifier: a graph is well formed or a GraphError names the node at fault.

Checks, in order: unique names; every node's inputs are defined before it (topological order, no
cycles, no dangling values); use lists agree in both directions; every output is defined; each
node's recorded output types equal its op's shape rule applied to its inputs.
"""
from __future__ import annotations

from .errors import GraphcnnError, GraphError, where
from .ir import Graph
from .ops import get_op


def verify(graph: Graph) -> None:
    defined: set[int] = set()
    names: dict[str, object] = {}  # value name -> its owner: a node, or what else defines it

    def define(value, owner) -> None:
        if value.name in names:
            raise GraphError(f"duplicate value name %{value.name} ({_owner(owner)} and "
                             f"{_owner(names[value.name])})")
        names[value.name] = owner
        defined.add(id(value))

    for v in graph.inputs:
        if v.producer is not None or v.is_constant:
            raise GraphError(f"graph input %{v.name} must have no producer and no data")
        define(v, "graph input")
    for v in graph.constants:
        if v.producer is not None:
            raise GraphError(f"constant %{v.name} must have no producer")
        pending = v.pending  # a constant not read yet: its declared shape (reading it is a load)
        shape = tuple(pending.shape if pending is not None else v.data.shape)
        if shape != v.type.shape:
            raise GraphError(f"constant %{v.name} data {shape} differs from type {v.type}")
        define(v, "constant")

    live_uses: set[tuple[int, int]] = set()
    for node in graph.nodes:
        for i, v in enumerate(node.inputs):
            if id(v) not in defined:
                why = "is used before it is defined (cycle or bad order)" if v.producer in \
                    graph.nodes else "is dangling (not an input, constant or node output)"
                raise GraphError(f"{where(node)}: input {i} %{v.name} {why}")
            if (node, i) not in v.uses:
                raise GraphError(f"{where(node)}: %{v.name} does not list this node as a user")
            live_uses.add((id(node), i))
        for out in node.outputs:
            if out.producer is not node:
                raise GraphError(f"{where(node)}: output %{out.name} names another producer")
            define(out, node)  # named only in an error: where() for every node costs
        _check_types(node)

    node_ids = {id(n) for n in graph.nodes}
    for v in list(graph.inputs) + graph.constants + [o for n in graph.nodes for o in n.outputs]:
        for user, i in v.uses:
            if id(user) not in node_ids or i >= len(user.inputs) or user.inputs[i] is not v:
                raise GraphError(f"%{v.name} lists a stale use by {where(user)} input {i}")
    for v in graph.outputs:
        if id(v) not in defined:
            raise GraphError(f"graph output %{v.name} is not defined by the graph")


def _owner(owner) -> str:
    return owner if isinstance(owner, str) else where(owner)


def _check_types(node) -> None:
    """The node's recorded output types against its op's shape rule. Shape rules are pure
    functions of (op, attrs, input types), and the pass manager verifies after every pass
    (ResNet-50: its ~300 nodes re-inferred ~20 times, 0.11 s), so a node whose four are what
    they were at its last check (`node.typed`) is not inferred again."""
    signature = (node.op, node.attrs, tuple(v.type for v in node.inputs),
                 tuple(v.type for v in node.outputs))
    if node.typed == signature:
        return
    opdef = get_op(node.op, node.name)
    try:
        expected = opdef.infer(dict(node.attrs), list(signature[2]))
    except GraphcnnError as e:
        raise GraphError(f"{where(node)}: shape rule failed: {e}") from None
    recorded = [v.type for v in node.outputs]
    if expected != recorded:
        raise GraphError(f"{where(node)}: recorded output types "
                         f"{', '.join(map(str, recorded))} differ from the op's shape rule "
                         f"{', '.join(map(str, expected))}")
    node.typed = signature
