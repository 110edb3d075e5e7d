"""The GELU the TorchScript exporter spells out, as one gelu / gelu_tanh node.

torch.onnx.export(dynamo=False) writes nn.GELU() (below Gelu-20) as
    Mul(Mul(x, Add(Erf(Div(x, 1.4142135)), 1)), 0.5)
and nn.GELU(approximate="tanh") as
    Mul(0.5, Mul(x, Add(1, Tanh(Mul(0.7978846, Add(x, Mul(0.044715, Mul(x, Mul(x, x)))))))))
Other writers reorder the products (graphcnn's own export: Mul(Mul(x, 0.5), Add(1, Erf(Mul(x,
0.70710677))))), so products are matched as a tree of muls over their factors, in any order
and grouping. The rules:
1. erf(t), t = div(x, c) with c = sqrt(2), or a product of x and 1/sqrt(2)
   -> the erf argument of rule 3.
2. tanh(u), u = a product of sqrt(2/pi) and add(x, p), p a product of x, x, x and 0.044715
   (or pow(x, 3) and 0.044715) -> the tanh argument of rule 3.
3. a product of x, 0.5 and add(e, 1) (either order), e the erf of rule 1 or the tanh of rule 2
   -> gelu(x) or gelu_tanh(x), named after the product's last mul.
Every intermediate value must have no use outside the pattern (and not be a graph output);
constants match to 1e-6 relative.
"""
from __future__ import annotations

import math

from graphcnn.ir import Graph, Node, Value

from .dce import eliminate_dead_code
from .util import adopt_name, is_output, replace_node


def _scalar(v: Value) -> float | None:
    return float(v.data.reshape(-1)[0]) if v.is_constant and v.data.size == 1 else None


def _close(value: float | None, want: float) -> bool:
    return value is not None and abs(value - want) <= 1e-6 * abs(want)


def _private(graph: Graph, v: Value) -> bool:
    return len(v.uses) == 1 and not is_output(graph, v)


def _factors(graph: Graph, v: Value, root: bool = True) -> tuple[list[Value], float]:
    """The non-constant factors of a tree of muls (descending into privately used ones) and
    the product of its scalar constants."""
    node = v.producer
    if node is None or node.op != "mul" or not (root or _private(graph, v)):
        c = _scalar(v)
        return ([], c) if c is not None else ([v], 1.0)
    values, coef = [], 1.0
    for x in node.inputs:
        vs, c = _factors(graph, x, root=False)
        values += vs
        coef *= c
    return values, coef


def _erf_argument(graph: Graph, t: Value) -> Value | None:  # Rule 1
    node = t.producer
    if node is not None and node.op == "div" and _close(_scalar(node.inputs[1]), math.sqrt(2)):
        return node.inputs[0]
    values, coef = _factors(graph, t)
    return values[0] if len(values) == 1 and _close(coef, math.sqrt(0.5)) else None


def _tanh_argument(graph: Graph, u: Value) -> Value | None:  # Rule 2
    values, coef = _factors(graph, u)
    if len(values) != 1 or not _close(coef, math.sqrt(2 / math.pi)):
        return None
    s = values[0]
    if s.producer is None or s.producer.op != "add" or not _private(graph, s):
        return None
    for x, p in (s.producer.inputs, s.producer.inputs[::-1]):
        cube, coef = _factors(graph, p, root=False) if _private(graph, p) else ([p], 1.0)
        if len(cube) == 1 and cube[0].producer is not None and cube[0].producer.op == "pow" \
                and cube[0].producer.inputs[0] is x and _private(graph, cube[0]) \
                and _scalar(cube[0].producer.inputs[1]) == 3.0:
            cube = [x, x, x]
        if cube == [x, x, x] and _close(coef, 0.044715):
            return x
    return None


def _match(graph: Graph, fn: Node) -> tuple[str, Value, Node] | None:  # Rule 3
    arg = fn.inputs[0]
    x = _erf_argument(graph, arg) if fn.op == "erf" else _tanh_argument(graph, arg)
    if x is None or not _private(graph, fn.outputs[0]) or not _private(graph, arg):
        return None
    add = fn.outputs[0].uses[0][0]
    if add.op != "add" or not _close(_scalar(add.inputs[1 - fn.outputs[0].uses[0][1]]), 1.0):
        return None
    a = add.outputs[0]
    # grow the product from the add up through privately used muls until it is x * a * 0.5
    v = a
    while _private(graph, v) and v.uses[0][0].op == "mul":
        v = v.uses[0][0].outputs[0]
        values, coef = _factors(graph, v)
        if sorted(map(id, values)) == sorted((id(x), id(a))) and _close(coef, 0.5):
            return ("gelu" if fn.op == "erf" else "gelu_tanh"), x, v.producer
    return None


def fuse_gelu(graph: Graph) -> bool:
    changed = False
    for fn in [n for n in graph.nodes if n.op in ("erf", "tanh")]:
        if fn not in graph.nodes:
            continue
        match = _match(graph, fn)
        if match is None:
            continue
        op, x, root = match
        y = graph.apply(op, [x], name=root.name, before=root)
        replace_node(graph, root, y)
        adopt_name(y, root)
        changed = True
    if changed:
        eliminate_dead_code(graph)  # the pattern's inner nodes
    return changed
