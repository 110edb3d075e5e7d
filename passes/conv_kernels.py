"""What the llvm backend's conv kernels take, as data and predicates (llvm target only).

The passes decide which kernel runs each conv (kernel_family.py), which convs carry a fused max
pool (fuse_conv_pool.py) and which blocked convs go back to NCHW (legalize_convs.py) from these
functions alone; the backend's plan stage then builds exactly the chosen kernel's plan (a
refusal there is a bug). The bounds restate the kernels' own (backends/llvm/kernels/), which
tests/backends/llvm/test_plan.py checks against their plan constructors. Every function takes
a verified conv node and the target's vector width (the row kernel's pixel vectors).

Kernels of a blocked conv (layout NCHWc, 2-D, out_block in FAST_BLOCKS, constant weights):
- row: planar input (in_block 1), at most ROW_MAX_OUT_CHANNELS outputs, stride 1, groups 1, no
  residual, output rows of one to ROW_MAX_CHUNKS pixel vectors; the only one with a fused pool
- winograd: 3x3, stride 1, dilation 1, groups 1
- depthwise: groups = C_in = C_out, one input channel per group, in_block = out_block
- lane_groups: the depthwise kernel with groups of g channels in and out, 1 < g < out_block,
  g dividing the block, in_block = out_block (ResNeXt's 4, RegNet's 8 in 16 lanes)
- direct (groups 1) and grouped (the same kernel with groups): every other blocked conv
A NCHW conv runs the generic loops (any rank, stride, padding, dilation, groups).
"""
from __future__ import annotations

from graphcnn.ir import Node

FAST_BLOCKS = (4, 8, 16)  # output blocks the blocked kernels take
POOLED = (2, 2)  # the fused max pool the row kernel takes (window = stride, floor mode)
ROW_MAX_OUT_CHANNELS = 8  # kernels/conv2d_rows.py MAX_OUT_CHANNELS
ROW_MAX_CHUNKS = 8  # kernels/conv2d_rows.py MAX_CHUNKS: pixel vectors per output row


def conv_output_hw(node: Node) -> tuple[int, int]:
    """The conv's own output rows and columns (before a fused pool) of a 2-D conv."""
    a = node.attrs
    h, w = node.inputs[0].type.shape[2:4]
    kh, kw = node.inputs[1].type.shape[2:4]
    (sh, sw), (dh, dw), p = a["strides"], a["dilations"], a["pads"]
    return ((h + p[0] + p[2] - (kh - 1) * dh - 1) // sh + 1,
            (w + p[1] + p[3] - (kw - 1) * dw - 1) // sw + 1)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def is_blocked_2d(node: Node) -> bool:
    """A blocked 2-D conv with the constant weights and bias the blocked kernels pack."""
    a = node.attrs
    return (a["layout"] == "NCHWc" and node.inputs[0].type.rank == 5
            and a["out_block"] in FAST_BLOCKS
            and all(v.is_constant for v in node.inputs[1:3]))


def row_conv_takes(node: Node, vector_width: int, pool: tuple[int, ...] | None = None
                   ) -> bool:
    """The row kernel (kernels/conv2d_rows.py) takes this conv, with its `pool` if it has one
    (`pool`: as if the conv had that one)."""
    a, w = node.attrs, node.inputs[1].type.shape
    ob = a["out_block"]
    pool = a["pool"] if pool is None else tuple(pool)
    if not is_blocked_2d(node) or pool not in ((), POOLED):
        return False
    if (a["groups"] != 1 or node.inputs[0].type.shape[-1] != 1 or a["residual"]
            or tuple(a["strides"]) != (1, 1)):
        return False
    if not (w[0] <= ob <= min(ROW_MAX_OUT_CHANNELS, vector_width)
            and _power_of_two(ob) and _power_of_two(vector_width)):
        return False
    oh, ow = conv_output_hw(node)
    if pool and oh < 2:
        return False
    width = ow - ow % 2 if pool else ow  # a 2x2 pool in floor mode reads an even count
    return vector_width <= width <= ROW_MAX_CHUNKS * vector_width


def winograd_takes(node: Node) -> bool:
    """The Winograd kernel (F(4x4, 3x3) or F(2x2, 3x3)) takes this blocked conv."""
    a = node.attrs
    return (is_blocked_2d(node) and not a["pool"] and a["groups"] == 1
            and tuple(node.inputs[1].type.shape[2:]) == (3, 3)
            and tuple(a["strides"]) == (1, 1) and tuple(a["dilations"]) == (1, 1))


def is_depthwise(node: Node) -> bool:
    """One input channel per group, as many outputs, equal in and out blocks (blocked)."""
    a, w = node.attrs, node.inputs[1].type.shape
    c_in = w[1] * a["groups"]
    return (a["groups"] == c_in == w[0] and w[1] == 1
            and node.inputs[0].type.shape[-1] == a["out_block"])


def lane_group_size(c_in: int, c_out: int, groups: int, block: int) -> int | None:
    """Channels per group when the lane-group kernel takes a grouped conv of these channels
    with this (in and out) block: the same in and out, more than one, dividing the block."""
    if groups <= 1 or c_in != c_out or c_in % groups:
        return None
    g = c_in // groups
    return g if 1 < g < block and block % g == 0 else None


def lane_groups_takes(node: Node) -> bool:
    """The depthwise kernel with groups of several lanes takes this blocked conv."""
    a, w = node.attrs, node.inputs[1].type.shape
    return (is_blocked_2d(node) and not a["pool"]
            and node.inputs[0].type.shape[-1] == a["out_block"]
            and lane_group_size(w[1] * a["groups"], w[0], a["groups"], a["out_block"])
            is not None)


def blocked_kernel_takes(node: Node, vector_width: int) -> bool:
    """Some blocked kernel takes this conv as it is (else it must run NCHW)."""
    if not is_blocked_2d(node):
        return False
    if node.attrs["pool"]:
        return row_conv_takes(node, vector_width)  # only the row kernel pools
    return True  # the direct kernel takes every other blocked 2-D conv, grouped or not
