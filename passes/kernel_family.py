"""Kernel family per conv, gemm and matmul (llvm target only), written as an annotation.

The choice is `graph.annotations[node name]["kernel"]` (see passes/util.py); the llvm backend's
plan stage builds exactly that family's kernel (backends/llvm/plan.py), so the family says what
runs: a family is written only where its kernel takes the node (conv_kernels.py). First match:
1. gemm, and matmul, with a constant B (2-D for matmul) the packed GEMM takes (non-empty, C
   broadcasting as a scalar, a row, a column or the full matrix) -> "gemm"; other gemm and
   matmul nodes -> "generic" (a row loop).
2. conv the row kernel takes (planar input, few outputs; also with a fused 2x2 max pool) ->
   "row": it puts output pixels in the vector lanes, which few output channels cannot fill.
3. blocked conv the Winograd kernel takes with C_in >= 32, C_out >= 32, at least 16 4x4 output
   tiles and at least 256 output pixels over the batch (16x16 at batch 1) -> "winograd":
   F(4x4, 3x3) does 36 multiplies per 4x4 tile where direct does 144; the input/output
   transforms cost O((C_in + C_out) * tiles), negligible against the O(C_in * C_out * tiles)
   products only with enough channels; the transformed weights (4x the kernel) are streamed
   once per chunk of tiles, which few tiles cannot pay for (the kernel's chunks span images,
   so tiles and pixels count over the batch), nor layers with more than 256 x 256 channels
   (WINOGRAD_MAX_WEIGHTS), nor, in a model whose weights do not stay in the caches
   (WEIGHTS_IN_CACHE), layers whose transformed weights outweigh their activations
   (WINOGRAD_WEIGHT_RATIO).
3b. the same convs with C_in, C_out >= 64 on maps of at most 8x8 an image
   (WINOGRAD_F2_MAX_PIXELS) that rule 3 does not take, with at least 16 2x2 output tiles over
   the batch -> "winograd_f2": F(2x2, 3x3) does 16 multiplies per 2x2 tile where direct does
   36, and its transformed weights are 16/9 of the kernel's, while the direct kernel's
   register tiles are narrow on rows of <= 8 pixels; it saves fewer multiplies than F(4x4), so
   its transforms need more channels to pay for.
4. other blocked convs a blocked kernel takes: depthwise -> "depthwise", grouped with groups
   of a few lanes (conv_kernels.lane_groups_takes) -> "lane_groups", other grouped ->
   "grouped", the rest (strided, 5x5, 1x1: a GEMM over pixels) -> "direct".
5. NCHW convs -> "generic" (the loops for any rank, stride, padding, dilation and groups).
A blocked conv no blocked kernel takes gets no family: legalize_convs.py turns it NCHW first.
"""
from __future__ import annotations

import math

from graphcnn.ir import Graph, Node

from .conv_kernels import (
    blocked_kernel_takes,
    is_depthwise,
    lane_groups_takes,
    row_conv_takes,
    winograd_takes,
)
from .layout import DEFAULT_BLOCK
from .util import annotate

WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_TILES = 16  # output tiles (4x4; 2x2 for rule 3b) over the batch
# output pixels (all images) per conv: F(4x4, 3x3)'s transformed weights are 4x the direct
# kernel's and, in a big network, come from memory each inference; the halved compute pays for
# that only from 16x16 up (benchmarks/bench_winograd.py)
WINOGRAD_MIN_PIXELS = 256
# C_in * C_out: the kernel streams its 36 * C_in * C_out transformed weights once per chunk of
# tiles; above 256 x 256 channels that traffic outweighs the saved FMAs
WINOGRAD_MAX_WEIGHTS = 256 * 256
# F(4x4, 3x3)'s transformed weights (36 * C_in * C_out floats) at most this many times the
# input and output activations ((C_in + C_out) * pixels over the batch): beyond, the direct
# kernel, whose threads keep their rows of the maps in their own caches, moves less memory
WINOGRAD_WEIGHT_RATIO = 2
# model weights (conv and gemm, bytes) up to which they stay in the caches from one inference
# to the next, so rule 3's weight ratio does not apply
WEIGHTS_IN_CACHE = 16 << 20
# rule 3b: output pixels an image up to which F(2x2, 3x3) serves the convs rule 3 leaves, and
# the channels it needs
WINOGRAD_F2_MAX_PIXELS = 64
WINOGRAD_F2_MIN_CHANNELS = 64


def _logical_hw(node: Node) -> tuple[int, ...]:
    y = node.outputs[0].type.shape
    return y[2:-1] if node.attrs["layout"] == "NCHWc" else y[2:]


def _tiles(hw: tuple[int, ...], m: int = 4) -> int:
    return -(-hw[0] // m) * -(-hw[1] // m)


def _winograd(node: Node, streams_weights: bool) -> str | None:
    """Rules 3 and 3b for a conv the Winograd kernel takes."""
    w = node.inputs[1].type.shape
    c_out, c_in = w[0], w[1]
    if min(c_in, c_out) < WINOGRAD_MIN_CHANNELS or c_in * c_out > WINOGRAD_MAX_WEIGHTS:
        return None
    batch, hw = node.outputs[0].type.shape[0], _logical_hw(node)
    pixels = batch * math.prod(hw)
    if (batch * _tiles(hw) >= WINOGRAD_MIN_TILES and pixels >= WINOGRAD_MIN_PIXELS
            and (not streams_weights or 36 * c_in * c_out
                 <= WINOGRAD_WEIGHT_RATIO * (c_in + c_out) * pixels)):
        return "winograd"  # Rule 3
    if (math.prod(hw) <= WINOGRAD_F2_MAX_PIXELS and min(c_in, c_out) >= WINOGRAD_F2_MIN_CHANNELS
            and batch * _tiles(hw, 2) >= WINOGRAD_MIN_TILES):
        return "winograd_f2"  # Rule 3b
    return None


def gemm_dims(node: Node) -> tuple[int, int, int]:
    """(m, n, k) of the packed GEMM a gemm or matmul node runs (a matmul's batch of A as rows)."""
    a_shape, y_shape = node.inputs[0].type.shape, node.outputs[0].type.shape
    if node.op == "gemm":
        m, k = a_shape[::-1] if node.attrs["transA"] else a_shape
        return m, y_shape[1], k
    return math.prod(y_shape[:-1]), y_shape[-1], a_shape[-1]


def _c_broadcasts(shape: tuple[int, ...], m: int, n: int) -> bool:
    """C as the packed GEMM adds it: a scalar, a row (n,) or (1, n), a column (m, 1) or (m, n)."""
    return all(d == 1 for d in shape) or tuple(shape) in ((n,), (1, n), (m, 1), (m, n))


def gemm_takes(node: Node) -> bool:
    """The packed GEMM (B packed at compile time) takes this gemm or matmul node."""
    b = node.inputs[1]
    if not b.is_constant or (node.op == "matmul" and b.type.rank != 2):
        return False
    m, n, k = gemm_dims(node)
    if min(m, n, k) < 1:
        return False
    return node.op == "matmul" or len(node.inputs) < 3 or _c_broadcasts(
        node.inputs[2].type.shape, m, n)


def choose_kernel(node: Node, streams_weights: bool = True,
                  vector_width: int = DEFAULT_BLOCK) -> str | None:
    """The family for `node` (None: a blocked conv no blocked kernel takes); `streams_weights`:
    the model's weights do not stay in the caches between inferences (`weights_stream`),
    which rule 3's weight ratio is about; `vector_width`: the target's (the row kernel's)."""
    if node.op in ("gemm", "matmul"):
        return "gemm" if gemm_takes(node) else "generic"  # Rule 1
    a = node.attrs
    if a["layout"] != "NCHWc":
        return "generic"  # Rule 5
    if not blocked_kernel_takes(node, vector_width):
        return None
    if row_conv_takes(node, vector_width):
        return "row"  # Rule 2
    if winograd_takes(node):
        family = _winograd(node, streams_weights)
        if family is not None:
            return family  # Rules 3, 3b
    if is_depthwise(node):
        return "depthwise"  # Rule 4
    if lane_groups_takes(node):
        return "lane_groups"  # Rule 4
    return "grouped" if a["groups"] > 1 else "direct"  # Rule 4


def weights_stream(graph: Graph) -> bool:
    """Whether the conv and gemm weights (as given, before packing) exceed WEIGHTS_IN_CACHE."""
    total = sum(node.inputs[1].type.nbytes for node in graph.nodes
                if node.op in ("conv", "gemm") and len(node.inputs) > 1)
    return total > WEIGHTS_IN_CACHE


def choose_kernel_family(graph: Graph, vector_width: int = DEFAULT_BLOCK) -> bool:
    """Annotate every conv, gemm and matmul with its family; True if any annotation changed."""
    changed = False
    streams = weights_stream(graph)
    for node in graph.nodes:
        if node.op in ("conv", "gemm", "matmul"):
            family = choose_kernel(node, streams, vector_width)
            if family is not None:
                changed |= annotate(graph, node, kernel=family)
            elif graph.annotations.get(node.name, {}).pop("kernel", None) is not None:
                changed = True  # an earlier run's family no kernel takes now
    return changed
