"""Kernel family choice per conv and gemm (llvm target only), written as an annotation.

The choice is `graph.annotations[node name]["kernel"]` (see passes/util.py), one of
"direct" | "gemm" | "winograd"; the llvm backend reads it and may fall back to "direct" for a
shape its kernels do not take. A simple cost model, first match wins:
1. gemm nodes -> "gemm".
2. conv, 1x1 kernel, stride 1, no pads, groups 1 -> "gemm" (a 1x1 conv is a GEMM over pixels).
3. conv, 3x3 kernel, stride 1, dilation 1, groups 1, C_in >= 32, C_out >= 32, at least 16
   4x4 output tiles and at least 256 output pixels over the batch (16x16 at batch 1) ->
   "winograd": F(4x4, 3x3) does 36 multiplies per 4x4 tile where direct does 144;
   the input/output transforms cost O((C_in + C_out) * tiles), negligible against the
   O(C_in * C_out * tiles) products only with enough channels; the transformed weights (4x the
   kernel) are streamed once per chunk of tiles, which few tiles cannot pay for (the kernel's
   chunks span images, so tiles count over the batch: CIFAR VGG's 8x8 layers at batch 16;
   bench_winograd.py, hot cache: 1.1-2.8x over direct from 14x14 up, 0.7-0.8x at 7x7x512),
   and in a whole network they come from memory, which a 14x14 layer at batch 1 does not pay
   for (WINOGRAD_MIN_PIXELS counts pixels over the batch: the weights are read once for all
   images), nor layers with more than 256 x 256 channels (WINOGRAD_MAX_WEIGHTS).
4. every other conv (depthwise, strided, 5x5, tiny channel counts) -> "direct".
"""
from __future__ import annotations

import math

from graphcnn.ir import Graph, Node

from .util import annotate

WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_TILES = 16  # 4x4 output tiles over the batch
# output pixels (all images) per conv: F(4x4, 3x3)'s transformed weights are 4x the direct
# kernel's and, in a big network, come from memory each inference; the halved compute pays for
# that from 16x16 up (measured, 2 threads: ResNet-50's 14x14x256 layers 1.25 ms Winograd vs
# 0.55 ms direct; CIFAR VGG's 16x16x128 layers faster Winograd)
WINOGRAD_MIN_PIXELS = 256
# C_in * C_out: the Winograd kernel streams its 36 * C_in * C_out transformed weights once per
# chunk of tiles; from 256 -> 512 channels up (19 MB+) that traffic outweighs the saved FMAs
# (measured, 2 threads, VGG-19: 28x28x512 layers 12.6 ms Winograd vs 5.3 ms direct)
WINOGRAD_MAX_WEIGHTS = 256 * 256


def _logical_hw(node: Node) -> tuple[int, ...]:
    y = node.outputs[0].type.shape
    return y[2:-1] if node.attrs["layout"] == "NCHWc" else y[2:]


def _tiles(hw: tuple[int, ...]) -> int:
    return -(-hw[0] // 4) * -(-hw[1] // 4)


def choose_kernel(node: Node) -> str:
    if node.op == "gemm":
        return "gemm"  # Rule 1
    a, w = node.attrs, node.inputs[1].type.shape
    c_out, c_in = w[0], w[1] * a["groups"]
    plain = a["groups"] == 1 and all(s == 1 for s in a["strides"])
    if plain and all(k == 1 for k in w[2:]) and not any(a["pads"]):
        return "gemm"  # Rule 2
    batch, hw = node.outputs[0].type.shape[0], _logical_hw(node)
    if (plain and len(w) == 4 and w[2:] == (3, 3) and a["dilations"] == (1, 1)
            and min(c_in, c_out) >= WINOGRAD_MIN_CHANNELS
            and c_in * c_out <= WINOGRAD_MAX_WEIGHTS
            and batch * _tiles(hw) >= WINOGRAD_MIN_TILES
            and batch * math.prod(hw) >= WINOGRAD_MIN_PIXELS):
        return "winograd"  # Rule 3
    return "direct"  # Rule 4


def choose_kernel_family(graph: Graph) -> bool:
    changed = False
    for node in graph.nodes:
        if node.op in ("conv", "gemm"):
            changed |= annotate(graph, node, kernel=choose_kernel(node))
    return changed
