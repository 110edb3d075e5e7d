"""Pad folding into the conv or pool that consumes it.

pad(x) here means a constant-mode pad with non-negative pads that leaves N and C alone (only
spatial dims padded); the consumer then reads x with its own pads grown by the pad's.
1. conv(pad(x, value=0)) -> conv(x) {pads += pad}              (NCHW conv: zeros are conv's padding)
2. max_pool(pad(x, value=-inf)) -> max_pool(x) {pads += pad}   (a max window starts from the
   lowest float, so -inf padding never wins; any other value could and is not folded),
   ceil_mode off.
3. sum_pool(pad(x, value=0)) -> sum_pool(x) {pads += pad}, ceil_mode off.
4. avg_pool(pad(x, value=0)) -> avg_pool(x) {pads += pad, count_include_pad=True} when the pool
   counts its own pads already or has none (the explicit zeros were counted as input), ceil_mode
   off (with ceil_mode the window-start rule depends on where the input ends).
5. A fold whose pads the consumer's shape rule rejects (pool pads must be smaller than the
   kernel) is skipped. The pad node stays only if it has other users.
"""
from __future__ import annotations

import math

from graphcnn.errors import ShapeError
from graphcnn.ir import Graph, Node

from .util import adopt_name, drop_if_dead, replace_node


def _spatial_pads(pad: Node) -> tuple[int, ...] | None:
    p, rank = pad.attrs["pads"], pad.inputs[0].type.rank
    if (pad.attrs["mode"] != "constant" or min(p) < 0 or p[0] or p[1] or p[rank] or p[rank + 1]):
        return None
    return tuple(p[2:rank]) + tuple(p[rank + 2:])


def _accepts(node: Node, value: float) -> bool:
    a = node.attrs
    if a.get("layout", "NCHW") != "NCHW":
        return False
    if node.op == "conv":  # Rule 1
        return value == 0.0
    if a["ceil_mode"]:
        return False
    if node.op == "max_pool":  # Rule 2
        return value == -math.inf
    if node.op == "sum_pool":  # Rule 3
        return value == 0.0
    if node.op == "avg_pool":  # Rule 4
        return value == 0.0 and (a["count_include_pad"] or not any(a["pads"]))
    return False


def fold_pad(graph: Graph) -> bool:
    changed = False
    for node in [n for n in graph.nodes if n.op in ("conv", "max_pool", "sum_pool", "avg_pool")]:
        pad = node.inputs[0].producer
        if pad is None or pad.op != "pad" or not _accepts(node, float(pad.attrs["value"])):
            continue
        extra = _spatial_pads(pad)
        if extra is None:
            continue
        attrs = {**node.attrs, "pads": tuple(p + e for p, e in zip(node.attrs["pads"], extra))}
        if node.op == "avg_pool":
            attrs["count_include_pad"] = True
        try:
            y = graph.apply(node.op, [pad.inputs[0]] + list(node.inputs[1:]), attrs,
                            name=node.name, before=node)
        except ShapeError:  # Rule 5
            continue
        replace_node(graph, node, y)
        adopt_name(y, node)
        drop_if_dead(graph, pad)
        changed = True
    return changed
