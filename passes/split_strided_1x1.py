"""A strided 1x1 conv becomes a subsample and a stride-1 1x1 conv (llvm target only).

1. conv(x) with a 1x1 kernel, strides s != (1, 1), no pads, dilation 1, groups 1, NCHW
   -> conv(max_pool(x) {kernel 1x1, strides s}, stride 1)
   The 1x1 max_pool is an exact subsample (a window of one cell; only a -inf becomes the lowest
   float, where every max window starts). It pays when the conv has at
   least MIN_OUT_CHANNELS output channels: the subsample copies C_in*Ho*Wo values once, 1/C_out
   of the conv's C_in*C_out*Ho*Wo multiply-adds, and the stride-1 conv is a plain GEMM over
   contiguous pixels (packed B with unit stride, the GEMM kernel family) instead of a gather.
"""
from __future__ import annotations

from graphcnn.ir import Graph, Node

from .util import adopt_name, replace_node

MIN_OUT_CHANNELS = 8


def _applies(node: Node) -> bool:
    if node.op != "conv":
        return False
    a, w = node.attrs, node.inputs[1].type.shape
    return (len(w) == 4 and w[2:] == (1, 1) and a["strides"] != (1, 1)
            and not any(a["pads"]) and a["dilations"] == (1, 1) and a["groups"] == 1
            and a["layout"] == "NCHW" and w[0] >= MIN_OUT_CHANNELS)


def split_strided_1x1(graph: Graph) -> bool:
    changed = False
    for node in [n for n in graph.nodes if _applies(n)]:  # Rule 1
        sub = graph.apply("max_pool", [node.inputs[0]],
                          {"kernel_shape": (1, 1), "strides": node.attrs["strides"]},
                          name=f"{node.name}.subsample", before=node)
        y = graph.apply("conv", [sub] + list(node.inputs[1:]),
                        {**node.attrs, "strides": (1, 1)}, name=node.name, before=node)
        replace_node(graph, node, y)
        adopt_name(y, node)
        changed = True
    return changed
