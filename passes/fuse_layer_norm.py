"""The layer norm the TorchScript exporter writes below opset 17, as one layer_norm node.

torch.onnx.export(dynamo=False, opset < 17) spells nn.LayerNorm as
    m = ReduceMean(x, A); d = Sub(x, m); v = ReduceMean(Pow(d, 2), A)
    y = Add(Mul(Div(d, Sqrt(Add(v, eps))), weight), bias)
with A the trailing axes [k, ..., rank-1] and keepdims=1. The rules (in the order they grow
the match):
1. div(d, sqrt(add(reduce_mean(pow(d, 2), A), eps))) with d = sub(x, reduce_mean(x, A)), eps a
   scalar constant >= 0, the mean and d used only inside the pattern
   -> layer_norm(x, ones, axis=k, epsilon=eps).
2. a following mul by a constant broadcasting into x.shape[k:] (either operand order) becomes
   the scale (the mul's output then takes over).
3. a following add of such a constant becomes the bias.
The intermediate nodes are dropped when nothing else reads them. A layer norm over the channels
of a channels-last transpose (ConvNeXt's LayerNorm2d) becomes a channel_norm in
passes/channels_first.py.
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph, Node, Value

from .dce import eliminate_dead_code
from .util import adopt_name, is_output, replace_node


def _producer(v: Value, op: str) -> Node | None:
    return v.producer if v.producer is not None and v.producer.op == op else None


def _trailing_mean(node: Node | None, x: Value) -> int | None:
    """k when node is reduce_mean(x) over axes [k, rank) with keepdims=1."""
    if node is None or node.inputs[0] is not x or not node.attrs["keepdims"]:
        return None
    axes, rank = tuple(node.attrs["axes"]), x.type.rank
    return axes[0] if axes and axes == tuple(range(axes[0], rank)) else None


def _scalar(v: Value) -> float | None:
    return float(v.data.reshape(-1)[0]) if v.is_constant and v.data.size == 1 else None


def _other(node: Node, v: Value) -> Value | None:
    """The operand of a binary node that is not v (None unless v is one of them)."""
    a, b = node.inputs
    return b if a is v else a if b is v else None


def _private(graph: Graph, v: Value, users: int) -> bool:
    return len(v.uses) == users and not is_output(graph, v)


def _match(graph: Graph, div: Node) -> tuple[Value, int, float] | None:  # Rule 1
    d, std = div.inputs
    sub, sqrt = _producer(d, "sub"), _producer(std, "sqrt")
    if sub is None or sqrt is None:
        return None
    x, mean = sub.inputs
    k = _trailing_mean(_producer(mean, "reduce_mean"), x)
    add = _producer(sqrt.inputs[0], "add")
    if k is None or add is None or not _private(graph, mean, 1) or not _private(graph, d, 2):
        return None
    for var, eps_v in (add.inputs, add.inputs[::-1]):
        eps, var_mean = _scalar(eps_v), _producer(var, "reduce_mean")
        pow_node = _producer(var_mean.inputs[0], "pow") if var_mean is not None else None
        if (eps is None or not eps >= 0 or pow_node is None or pow_node.inputs[0] is not d
                or _scalar(pow_node.inputs[1]) != 2.0
                or _trailing_mean(var_mean, pow_node.outputs[0]) != k):
            continue
        return x, k, eps
    return None


def _affine(graph: Graph, v: Value, op: str, shape: tuple[int, ...]
            ) -> tuple[Node, np.ndarray] | None:  # Rules 2, 3
    """The single `op` user of v with a constant other operand that broadcasts into shape."""
    if not _private(graph, v, 1):
        return None
    user = v.uses[0][0]
    if user.op != op:
        return None
    c = _other(user, v)
    if c is None or not c.is_constant or c.type.rank > len(shape):
        return None
    try:
        return user, np.ascontiguousarray(np.broadcast_to(c.data.astype(np.float32), shape))
    except ValueError:
        return None


def fuse_layer_norm(graph: Graph) -> bool:
    changed = _fuse_layer_norm(graph)
    if changed:
        eliminate_dead_code(graph)
    return changed


def _fuse_layer_norm(graph: Graph) -> bool:
    changed = False
    for div in [n for n in graph.nodes if n.op == "div"]:
        if div not in graph.nodes:
            continue
        found = _match(graph, div)
        if found is None:
            continue
        x, k, eps = found
        shape = x.type.shape[k:]
        last, scale, bias = div, np.ones(shape, np.float32), None
        mul = _affine(graph, div.outputs[0], "mul", shape)
        if mul is not None:
            last, scale = mul
            add = _affine(graph, last.outputs[0], "add", shape)
            if add is not None:
                last, bias = add
        ins = [x, graph.add_constant(scale, f"{div.name}.scale")]
        if bias is not None:
            ins.append(graph.add_constant(bias, f"{div.name}.bias"))
        y = graph.apply("layer_norm", ins, {"axis": k, "epsilon": eps}, name=last.name,
                        before=last)
        replace_node(graph, last, y)
        adopt_name(y, last)
        changed = True
    return changed
