"""Blocked convs no blocked kernel takes run NCHW between layout changes (llvm target only).

1. conv with layout NCHWc that no blocked kernel takes (conv_kernels.blocked_kernel_takes: not
   2-D, an output block outside FAST_BLOCKS, weights computed at run time; fuse_conv_pool.py
   already split the pools no kernel takes) ->
   to_blocked(conv `<conv>.nchw` {layout NCHW}(from_blocked(x), w, b[, from_blocked(residual)])):
   the generic kernel reads and writes NCHW.
"""
from __future__ import annotations

from graphcnn.ir import Graph

from .conv_kernels import blocked_kernel_takes
from .layout import DEFAULT_BLOCK


def legalize_convs(graph: Graph, vector_width: int = DEFAULT_BLOCK) -> bool:
    """Rule 1 for every blocked conv; `vector_width`: the target's."""
    changed = False
    for node in list(graph.nodes):
        if (node.op != "conv" or node.attrs["layout"] != "NCHWc"
                or blocked_kernel_takes(node, vector_width)):
            continue
        x, w = node.inputs[0], node.inputs[1]
        c_in, c_out = w.type.shape[1] * node.attrs["groups"], w.type.shape[0]
        ins = [graph.apply("from_blocked", [x], {"channels": c_in}, before=node)]
        ins += list(node.inputs[1:3])
        if node.attrs["residual"]:
            ins.append(graph.apply("from_blocked", [node.inputs[3]], {"channels": c_out},
                                   before=node))
        attrs = {**node.attrs, "layout": "NCHW", "out_block": 0}
        y = graph.apply("conv", ins, attrs, name=f"{node.name}.nchw", before=node)
        blocked = graph.apply("to_blocked", [y], {"block": node.attrs["out_block"]},
                              before=node)
        graph.replace_all_uses_with(node.outputs[0], blocked)
        graph.remove(node)
        changed = True
    return changed
