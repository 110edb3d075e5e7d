"""Kernel family choice per conv and gemm (llvm target only), written as an annotation.

The choice is `graph.annotations[node name]["kernel"]` (see passes/util.py), one of
"direct" | "gemm" | "winograd" | "winograd_f2"; the llvm backend reads it and may fall back to
"direct" for a shape its kernels do not take. A simple cost model, first match wins:
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
3b. the same convs with C_in, C_out >= 64 on maps of at most 8x8 an image
   (WINOGRAD_F2_MAX_PIXELS) that rule 3 does not take, with at least 16 2x2 output tiles over
   the batch -> "winograd_f2": F(2x2, 3x3) does 16 multiplies per 2x2 tile where direct does
   36, and its transformed weights are 16/9 of the kernel's (F(4x4)'s: 4x, which such maps
   cannot pay for), while the direct kernel's register tiles are narrow on rows of <= 8
   pixels. It saves fewer multiplies than F(4x4), so its transforms need more channels to pay
   for. Measured (A/B, 2 threads): CIFAR VGG batch 1's 8x8 layers (128->256, 256->256) 0.42 ->
   0.34 ms, the network 7-9% faster; Inception-v1's 7x7x160->320 neutral; DenseNet-121 4%
   slower with its 7x7x128->32 layers taken (hence 64 channels); on 13x13 and 14x14 maps
   (SqueezeNet, Inception-v1, ResNet-50, DenseNet-121) F(2x2) made the networks 2-7% slower,
   hence 8x8.
4. every other conv (depthwise, strided, 5x5, tiny channel counts) -> "direct".
"""
from __future__ import annotations

import math

from graphcnn.ir import Graph, Node

from .util import annotate

WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_TILES = 16  # output tiles (4x4; 2x2 for rule 3b) over the batch
# output pixels (all images) per conv: F(4x4, 3x3)'s transformed weights are 4x the direct
# kernel's and, in a big network, come from memory each inference; the halved compute pays for
# that from 16x16 up (measured, 2 threads: ResNet-50's 14x14x256 layers 1.25 ms Winograd vs
# 0.55 ms direct; CIFAR VGG's 16x16x128 layers faster Winograd)
WINOGRAD_MIN_PIXELS = 256
# C_in * C_out: the Winograd kernel streams its 36 * C_in * C_out transformed weights once per
# chunk of tiles; from 256 -> 512 channels up (19 MB+) that traffic outweighs the saved FMAs
# (measured, 2 threads, VGG-19: 28x28x512 layers 12.6 ms Winograd vs 5.3 ms direct)
WINOGRAD_MAX_WEIGHTS = 256 * 256
# rule 3b: output pixels an image up to which F(2x2, 3x3) serves the convs rule 3 leaves, and
# the channels it needs
WINOGRAD_F2_MAX_PIXELS = 64
WINOGRAD_F2_MIN_CHANNELS = 64


def _logical_hw(node: Node) -> tuple[int, ...]:
    y = node.outputs[0].type.shape
    return y[2:-1] if node.attrs["layout"] == "NCHWc" else y[2:]


def _tiles(hw: tuple[int, ...], m: int = 4) -> int:
    return -(-hw[0] // m) * -(-hw[1] // m)


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
            and c_in * c_out <= WINOGRAD_MAX_WEIGHTS):
        if (batch * _tiles(hw) >= WINOGRAD_MIN_TILES
                and batch * math.prod(hw) >= WINOGRAD_MIN_PIXELS):
            return "winograd"  # Rule 3
        if (math.prod(hw) <= WINOGRAD_F2_MAX_PIXELS
                and min(c_in, c_out) >= WINOGRAD_F2_MIN_CHANNELS
                and batch * _tiles(hw, 2) >= WINOGRAD_MIN_TILES):
            return "winograd_f2"  # Rule 3b
    return "direct"  # Rule 4


def choose_kernel_family(graph: Graph) -> bool:
    changed = False
    for node in graph.nodes:
        if node.op in ("conv", "gemm"):
            changed |= annotate(graph, node, kernel=choose_kernel(node))
    return changed
