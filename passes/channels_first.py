"""Channels-last regions back to channels first: ConvNeXt's block MLP as 1x1 convs.

PyTorch models that apply nn.Linear / nn.LayerNorm over the channels permute the map to
channels last and back (ConvNeXt: permute -> LayerNorm -> Linear -> GELU -> Linear -> permute;
ConvNeXt's LayerNorm2d: permute -> LayerNorm -> permute). The exporters write that literally:
transpose(x, (0, 2, .., r-1, 1)), ops over the last axis, transpose(., (0, r-1, 1, .., r-2)).
Over the channels of the untransposed map those ops are the ones the blocked kernels run:

1. A region starts at a channels-last transpose of x (rank r >= 3) and ends at the channels-first
   transpose that undoes it; every value in between has one use and is not a graph output.
2. layer_norm over the last axis (constant scale and bias, no stats output)
   -> channel_norm(x, scale, bias).
3. matmul(v, W) with W a constant (Cin, Cout) matrix -> a 1x1 conv with weight W^T.
4. a binary op (BINARY_OPS, or sub/div where the table has them) whose other operand is a
   constant broadcasting along the last axis only (shape (C,) or (1, .., 1, C)) -> the same op
   with the constant reshaped to (C, 1, .., 1); a scalar constant is kept as it is.
5. an elementwise activation (ACTIVATIONS) -> itself.
The region is rebuilt on x in order, the closing transpose's uses take its last value, and both
transposes go. Anything else inside the region (a reshape, a reduction, a second use) leaves it
as it was. The bias adds then fuse into the convs, the activations into their epilogues.
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph, Node, Value
from graphcnn.ops import ACTIVATIONS, BINARY_OPS

from .dce import eliminate_dead_code
from .util import single_private_use

_BINARY = frozenset(BINARY_OPS) - {"sum"}


def _channels_last(node: Node, rank: int) -> bool:
    return (node.op == "transpose"
            and tuple(node.attrs["perm"]) == (0,) + tuple(range(2, rank)) + (1,))


def _channels_first(node: Node, rank: int) -> bool:
    return (node.op == "transpose"
            and tuple(node.attrs["perm"]) == (0, rank - 1) + tuple(range(1, rank - 1)))


def _last_axis_constant(c: Value, channels: int, rank: int) -> np.ndarray | None:
    """The constant as a (C, 1, .., 1) array (or a scalar) if it broadcasts along the last
    axis only, else None."""
    if not c.is_constant or c.type.rank > rank:
        return None
    data = c.data
    if data.size == 1:
        return data.reshape(())
    if data.shape[-1] != channels or any(d != 1 for d in data.shape[:-1]):
        return None
    return np.ascontiguousarray(data.reshape((channels,) + (1,) * (rank - 2)))


def _step(node: Node, v: Value, rank: int) -> str | None:
    """Which rule rewrites `node` (consuming region value v), or None."""
    channels = v.type.shape[-1]
    if node.op == "layer_norm":
        ok = (node.attrs["axis"] in (rank - 1, -1) and not node.attrs["stats"]
              and node.inputs[0] is v and all(p.is_constant for p in node.inputs[1:]))
        return "norm" if ok else None
    if node.op == "matmul":
        w = node.inputs[1]
        ok = node.inputs[0] is v and w.is_constant and w.type.rank == 2 and \
            w.type.shape[0] == channels
        return "matmul" if ok else None
    if node.op in _BINARY and len(node.inputs) == 2:
        a, b = node.inputs
        other = b if a is v else a if b is v else None
        if other is None or other is v:
            return None
        return "binary" if _last_axis_constant(other, channels, rank) is not None else None
    if node.op in ACTIVATIONS and len(node.inputs) == 1:
        return "act"
    return None


def _region(graph: Graph, start: Node) -> tuple[list[tuple[Node, str]], Node] | None:  # Rule 1
    rank = start.inputs[0].type.rank
    v, chain = start.outputs[0], []
    while True:
        if not single_private_use(graph, v):
            return None
        node = v.uses[0][0]
        if _channels_first(node, rank):
            return (chain, node) if chain else None
        rule = _step(node, v, rank)
        if rule is None or len(node.outputs) != 1:
            return None
        chain.append((node, rule))
        v = node.outputs[0]


def _rebuild(graph: Graph, start: Node, chain: list[tuple[Node, str]], end: Node) -> Value:
    """The region's nodes applied to x in channels-first form; the last value."""
    x = start.inputs[0]
    rank, v, prev = x.type.rank, x, start.outputs[0]
    for node, rule in chain:
        channels = v.type.shape[1]
        if rule == "norm":  # Rule 2
            scale = node.inputs[1]
            bias = node.inputs[2] if len(node.inputs) > 2 else graph.add_constant(
                np.zeros(channels, np.float32), f"{node.name}.bias")
            y = graph.apply("channel_norm", [v, scale, bias],
                            {"epsilon": node.attrs["epsilon"]}, name=f"{node.name}.nchw",
                            before=end)
        elif rule == "matmul":  # Rule 3
            w = node.inputs[1].data
            weight = np.ascontiguousarray(w.T.reshape(w.shape[1], w.shape[0],
                                                      *(1,) * (rank - 2)))
            y = graph.apply("conv", [v, graph.add_constant(weight, f"{node.name}.weight",
                                                           copy=False)], {},
                            name=f"{node.name}.nchw", before=end)
        elif rule == "binary":  # Rule 4
            a, b = node.inputs
            other = b if a is prev else a
            c = graph.add_constant(_last_axis_constant(other, channels, rank),
                                   f"{node.name}.channels")
            y = graph.apply(node.op, [v, c] if a is prev else [c, v], dict(node.attrs),
                            name=f"{node.name}.nchw", before=end)
        else:  # Rule 5
            y = graph.apply(node.op, [v], dict(node.attrs), name=f"{node.name}.nchw",
                            before=end)
        v, prev = y, node.outputs[0]
    return v


def channels_first(graph: Graph) -> bool:
    changed = False
    for start in [n for n in graph.nodes if n.op == "transpose"]:
        if start not in graph.nodes or start.inputs[0].type.rank < 3 or \
                not _channels_last(start, start.inputs[0].type.rank):
            continue
        found = _region(graph, start)
        if found is None:
            continue
        chain, end = found
        y = _rebuild(graph, start, chain, end)
        graph.replace_all_uses_with(end.outputs[0], y)
        changed = True
    if changed:
        eliminate_dead_code(graph)
    return changed
