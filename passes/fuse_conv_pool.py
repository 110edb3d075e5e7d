"""Fused max pools (llvm target only): the row kernel pools a conv's output in its registers.

1. conv (blocked, no pool) whose output feeds only a 2x2 stride-2 max pool (blocked, floor
   mode, no pads, dilation 1) and is no graph output -> conv {pool=(2, 2)}, named
   `<conv>.pooled`, when the row kernel takes the pooled conv (conv_kernels.row_conv_takes):
   the conv's full-size output is never written.
2. conv carrying a pool no kernel takes (a pool other than 2x2, or a conv the row kernel does
   not take) -> conv `<conv>.conv` without the pool, then max_pool {the pool as kernel and
   strides}, named like the conv.
"""
from __future__ import annotations

from graphcnn.ir import Graph, Node

from .conv_kernels import POOLED, row_conv_takes
from .layout import DEFAULT_BLOCK
from .util import is_output


def _pool_to_fuse(graph: Graph, conv: Node) -> Node | None:
    """The max pool rule 1 fuses into `conv`, or None."""
    y = conv.outputs[0]
    if conv.attrs["layout"] != "NCHWc" or conv.attrs["pool"] or len(y.uses) != 1 \
            or is_output(graph, y):
        return None
    pool = y.uses[0][0]
    a = pool.attrs
    if (pool.op != "max_pool" or a["layout"] != "NCHWc" or a["ceil_mode"] or any(a["pads"])
            or tuple(a["kernel_shape"]) != POOLED or tuple(a["strides"]) != POOLED
            or any(d != 1 for d in a["dilations"])):
        return None
    return pool


def fuse_conv_pool(graph: Graph, vector_width: int = DEFAULT_BLOCK) -> bool:
    """Rules 1 and 2 for every conv; `vector_width`: the target's (the row kernel's pixels)."""
    changed = False
    for node in [n for n in graph.nodes if n.op == "conv"]:
        pool = _pool_to_fuse(graph, node)
        if pool is not None and row_conv_takes(node, vector_width, pool=POOLED):  # Rule 1
            fused = graph.apply("conv", list(node.inputs), {**node.attrs, "pool": POOLED},
                                name=f"{node.name}.pooled", before=pool)
            graph.replace_all_uses_with(pool.outputs[0], fused)
            graph.remove(pool)
            graph.remove(node)
            changed = True
        elif node.attrs["pool"] and not row_conv_takes(node, vector_width):  # Rule 2
            y = graph.apply("conv", list(node.inputs), {**node.attrs, "pool": ()},
                            name=f"{node.name}.conv", before=node)
            pooled = graph.apply("max_pool", [y], {"kernel_shape": node.attrs["pool"],
                                                   "strides": node.attrs["pool"],
                                                   "layout": node.attrs["layout"]},
                                 name=node.name, before=node)
            graph.replace_all_uses_with(node.outputs[0], pooled)
            graph.remove(node)
            changed = True
    return changed
