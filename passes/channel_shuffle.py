"""ShuffleNet's channel shuffle as one op (llvm target only), so it can stay in the blocked
layout instead of ending the conv region (a from_blocked, a transpose and a to_blocked around
every shuffle).

1. reshape(x) {(N, C, *S) -> (N, g, C/g, *S)} -> transpose {perm (0, 2, 1, 3, ...)} ->
   reshape {-> (N, C, *S)}, the first two used only by the next
   -> channel_shuffle(x) {groups=g}
"""
from __future__ import annotations

from graphcnn.ir import Graph, Node

from .util import adopt_name, replace_node, single_private_use


def _shuffle_groups(graph: Graph, node: Node) -> int | None:
    """g if `node` is the last reshape of a channel shuffle, else None."""
    if node.op != "reshape":
        return None
    t = node.inputs[0].producer
    if t is None or t.op != "transpose" or not single_private_use(graph, t.outputs[0]):
        return None
    r = t.inputs[0].producer
    if r is None or r.op != "reshape" or not single_private_use(graph, r.outputs[0]):
        return None
    x, split, out = r.inputs[0].shape, r.outputs[0].shape, node.outputs[0].shape
    rank = len(x)
    if rank < 2 or out != x or len(split) != rank + 1:
        return None
    g = split[1]
    if (split[0] != x[0] or g * split[2] != x[1] or split[3:] != x[2:]
            or t.attrs["perm"] != (0, 2, 1) + tuple(range(3, rank + 1))):
        return None
    return g


def fuse_channel_shuffle(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        groups = _shuffle_groups(graph, node)
        if groups is None:
            continue
        t = node.inputs[0].producer
        r = t.inputs[0].producer
        y = graph.apply("channel_shuffle", [r.inputs[0]], {"groups": groups},
                        name=node.name, before=node)
        replace_node(graph, node, y)
        adopt_name(y, node)
        graph.remove(t)
        graph.remove(r)
        changed = True
    return changed
