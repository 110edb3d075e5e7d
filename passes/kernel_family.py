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
   images), nor layers with more than 256 x 256 channels (WINOGRAD_MAX_WEIGHTS), nor, in a
   model whose weights do not stay in the caches (WEIGHTS_IN_CACHE), layers whose transformed
   weights outweigh their activations (WINOGRAD_WEIGHT_RATIO).
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
# F(4x4, 3x3)'s transformed weights (36 * C_in * C_out floats) at most this many times the
# input and output activations ((C_in + C_out) * pixels over the batch): the direct kernel,
# whose threads each keep their rows of the maps in their own caches, does better where the
# weights, 4x the direct kernel's, dominate the traffic (measured, 2 threads, per layer:
# ResNet-50's 28x28x128 layers, ratio 2.9, 0.87-0.97 ms Winograd vs 0.77-0.81 ms direct, the
# network 5% faster; SqueezeNet's 27x27 32->128 expand convs, ratio 1.3, 25-32% slower direct)
WINOGRAD_WEIGHT_RATIO = 2
# model weights (conv and gemm, bytes) up to which they stay in the caches from one inference
# to the next, and rule 3's ratio does not apply: CIFAR VGG's (8 MB) 16x16 layers, ratio 3-9,
# ran 30% faster Winograd than direct; Inception-v1 (26 MB) and DenseNet-121 (30 MB) ran as
# fast or faster with the ratio
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


def choose_kernel(node: Node, streams_weights: bool = True) -> str:
    """The family for `node`; `streams_weights`: the model's weights do not stay in the caches
    between inferences (`weights_stream`), which rule 3's weight ratio is about."""
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
        pixels = batch * math.prod(hw)
        if (batch * _tiles(hw) >= WINOGRAD_MIN_TILES and pixels >= WINOGRAD_MIN_PIXELS
                and (not streams_weights or 36 * c_in * c_out
                     <= WINOGRAD_WEIGHT_RATIO * (c_in + c_out) * pixels)):
            return "winograd"  # Rule 3
        if (math.prod(hw) <= WINOGRAD_F2_MAX_PIXELS
                and min(c_in, c_out) >= WINOGRAD_F2_MIN_CHANNELS
                and batch * _tiles(hw, 2) >= WINOGRAD_MIN_TILES):
            return "winograd_f2"  # Rule 3b
    return "direct"  # Rule 4


def weights_stream(graph: Graph) -> bool:
    """Whether the conv and gemm weights (as given, before packing) exceed WEIGHTS_IN_CACHE."""
    total = sum(node.inputs[1].type.nbytes for node in graph.nodes
                if node.op in ("conv", "gemm") and len(node.inputs) > 1)
    return total > WEIGHTS_IN_CACHE


def choose_kernel_family(graph: Graph) -> bool:
    changed = False
    streams = weights_stream(graph)
    for node in graph.nodes:
        if node.op in ("conv", "gemm"):
            changed |= annotate(graph, node, kernel=choose_kernel(node, streams))
    return changed
