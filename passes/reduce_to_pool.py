"""Reductions over every spatial axis become the global pools, which run on the blocked layout.

Exporters write PyTorch's adaptive average pooling to 1x1 (and torch.mean(x, (-1, -2))) as
ReduceMean over H, W; a text CNN's max over time as ReduceMax over the last axis. As global
pools they stay in the blocked NCHWc region of the convs before them, and the layout
conversions around them go away.
1. reduce_mean / reduce_max over axes (2, ..., rank-1) of a rank >= 3 tensor with keepdims=1
   -> global_avg_pool / global_max_pool(x) (the same (N, C, 1, ...) output).
2. the same with keepdims=0 -> reshape(global pool(x), (N, C)): a view, no kernel.
(Axes given as an input, or negative, are resolved at import and by the op's normalisation,
so [-1, -2] and [2, 3] are one case.)
"""
from __future__ import annotations

from graphcnn.ir import Graph, Node

from .util import adopt_name, replace_node

# reduction op -> the global pool computing it over all spatial axes
GLOBAL_POOL_OF = {"reduce_mean": "global_avg_pool", "reduce_max": "global_max_pool"}


def _spatial_reduction(node: Node) -> bool:
    rank = node.inputs[0].type.rank
    return (node.op in GLOBAL_POOL_OF and rank >= 3
            and tuple(node.attrs["axes"]) == tuple(range(2, rank)))


def reduce_to_global_pool(graph: Graph) -> bool:
    changed = False
    for node in [n for n in graph.nodes if _spatial_reduction(n)]:
        x = node.inputs[0]
        y = graph.apply(GLOBAL_POOL_OF[node.op], [x], {}, name=node.name, before=node)  # Rule 1
        if not node.attrs["keepdims"]:  # Rule 2
            y = graph.apply("reshape", [y], {"shape": x.type.shape[:2]},
                            name=f"{node.name}.squeeze", before=node)
        replace_node(graph, node, y)
        adopt_name(y, node)
        changed = True
    return changed
