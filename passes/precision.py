"""Precision: the llvm target's bf16 rewrite (`precision="bf16"`), after the kernel families.

Rule 0: to_blocked(x, odd block) whose one reader is a conv Rule 1 takes -> to_blocked(x, block
   + 1): the first conv of an RGB network (3 channels, blocked by 3) gets pairs of channels
   (the extra channel is zeros).
Rule 1: a conv whose family is in BF16_FAMILIES (blocked, groups 1, 16-channel output blocks,
   input blocks of an even size up to 16)
   -> conv(cast(x, bfloat16), round_bf16(w), ...) with family "direct_bf16".
   The input is cast once per value (every such conv reading it shares the cast); the weights
   become the bf16 values the kernel packs (float32 data, bf16-representable), so the graph
   says what the kernel computes: the reference interpreter on the rewritten graph matches
   the native result up to the order of the float32 sums. Bias, residual and the epilogue
   stay float32.
Rule 2: cast(conv(...), bfloat16) where the cast is the conv's only reader and the conv runs
   on a blocked kernel (STORES_BF16) -> conv(..., out_dtype=bfloat16): the epilogue rounds
   its float32 result as it stores it, so no cast pass re-reads the tensor (half the bytes
   written, and the next conv reads bf16 straight away: ResNet's 1x1-3x3-1x1 chains).
Rule 3: a gemm or matmul of family "gemm" (a constant B) with A not transposed and an even k
   -> gemm(cast(A, bfloat16), round_bf16(B), C) with family "gemm_bf16": a dense layer at
   batch 1 streams its weights from memory, which bf16 halves (VGG's and AlexNet's
   classifiers; a MatMul is how the dynamo exporter writes some of them).
Rule 4: a conv of family "winograd_f2" (16-channel blocks) -> family "winograd_f2_bf16": the
   float32 input and transforms, the transformed input and weights rounded to bf16 for the
   GEMM between them (kernels/winograd.py). Its rounding happens in the transformed domain,
   which the graph cannot say: the reference runs such a conv in float32.
The precision is a type rewrite plus a kernel family: int8 can follow as another rule set
with its own casts (quantize) and families.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from graphcnn.ir import Graph, Node, Value

from .util import adopt_name, annotate, annotation, is_output

# the fp32 families whose convs the bf16 kernel takes: the direct conv's tiles, which it
# shares (Conv2dNCHWcPlan.create_bf16). Not Winograd's: its float32 F(4x4, 3x3) does 4x fewer
# multiplies, more than bf16's 2x per instruction buys back (VGG-19 ran 81 ms with its 3x3
# convs on Winograd, 100 ms with them on the bf16 direct kernel)
BF16_FAMILIES = frozenset({"direct"})
BF16_BLOCK = 16  # vdpbf16ps: 16 float32 lanes, 32 bf16
# Rule 4: the Winograd family whose GEMM runs in bf16. Only F(2x2, 3x3): its transforms add and
# subtract, so bf16 V and U cost about what the direct bf16 conv's rounding does (rel L2 5e-3
# against 3e-3 on two 3x3 layers), where F(4x4)'s larger coefficients made it 3e-2; and
# F(4x4) in float32 already does 4x fewer multiplies, as fast as F(2x2) in bf16
WINOGRAD_BF16 = {"winograd_f2": "winograd_f2_bf16"}
# the families whose kernel (Conv2dNCHWcPlan, DepthwiseConv2dNCHWcPlan) can store its output
# as bf16 (rule 2): MobileNet's depthwise and ResNeXt's grouped convs feed 1x1 convs
STORES_BF16 = frozenset({"direct", "direct_bf16", "grouped", "depthwise", "lane_groups"})
# every family whose node may read or write bfloat16 values (the llvm plan's type check)
BF16_VALUED = STORES_BF16 | {"gemm_bf16"}


def round_bf16(data: np.ndarray) -> np.ndarray:
    """float32 data rounded to the nearest bf16 value (ties to even), kept as float32."""
    return np.asarray(data, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def _takes(graph: Graph, node: Node, dtype: str = "float32", block: int | None = None) -> bool:
    """Rule 1 takes `node` (with its input blocked by `block`, if given)."""
    if node.op != "conv" or annotation(graph, node, "kernel") not in BF16_FAMILIES:
        return False
    a, x, w = node.attrs, node.inputs[0], node.inputs[1]
    block = x.type.shape[-1] if block is None else block
    return (a["layout"] == "NCHWc" and a["groups"] == 1 and a["out_block"] == BF16_BLOCK
            and block % 2 == 0 and block <= BF16_BLOCK
            and x.type.dtype == dtype and w.is_constant and w.type.dtype == "float32")


def _even_input_block(graph: Graph, node: Node) -> bool:
    """Rule 0 for `node`'s input, when that makes Rule 1 take the node."""
    x = node.inputs[0]
    block = x.type.shape[-1] if x.type.rank else 0
    if (x.producer is None or x.producer.op != "to_blocked" or block % 2 == 0
            or len(x.uses) != 1 or is_output(graph, x) or not _takes(graph, node, block=block + 1)):
        return False
    even = graph.apply("to_blocked", list(x.producer.inputs), {"block": block + 1},
                       name=x.producer.name, before=x.producer)
    graph.replace_input(node, 0, even)
    graph.remove(x.producer)
    return True


def to_bf16(graph: Graph) -> bool:
    casts: dict[int, Value] = {}
    changed = False
    for node in graph.nodes:
        # a graph rewritten before (a profiling build of a compiled model's graph) gets its
        # families chosen afresh: its retyped convs only need theirs back
        if _takes(graph, node, "bfloat16"):
            changed |= annotate(graph, node, kernel="direct_bf16")
        elif (node.op in ("gemm", "matmul") and node.inputs[0].type.dtype == "bfloat16"
              and annotation(graph, node, "kernel") == "gemm"):
            changed |= annotate(graph, node, kernel="gemm_bf16")
    for node in list(graph.nodes):
        if node.op == "conv" and node.inputs[0].type.dtype == "float32":
            changed |= _even_input_block(graph, node)  # Rule 0
    for node in [n for n in graph.nodes if _takes(graph, n)]:  # Rule 1
        changed |= _retype(graph, node, casts, "direct_bf16")
    for node in [n for n in graph.nodes if _gemm_takes(graph, n)]:  # Rule 3
        changed |= _retype(graph, node, casts, "gemm_bf16")
    for node in graph.nodes:  # Rule 4
        family = annotation(graph, node, "kernel")
        if family in WINOGRAD_BF16 and node.inputs[0].type.shape[-1] == BF16_BLOCK \
                and node.attrs["out_block"] == BF16_BLOCK:
            changed |= annotate(graph, node, kernel=WINOGRAD_BF16[family])
    for cast in casts.values():  # Rule 2
        changed |= _store_bf16(graph, cast)
    return changed


def _retype(graph: Graph, node: Node, casts: dict[int, Value], family: str) -> bool:
    """node(x, w, ...) -> node(cast(x, bfloat16), round_bf16(w), ...) with `family`; one cast
    per x (`casts`)."""
    x, w = node.inputs[0], node.inputs[1]
    if id(x) not in casts:
        casts[id(x)] = graph.apply("cast", [x], {"to": "bfloat16"}, name=f"{x.name}.bf16",
                                   before=node)
    graph.replace_input(node, 0, casts[id(x)])
    graph.replace_input(node, 1, graph.add_constant(round_bf16(w.data), name=f"{w.name}.bf16",
                                                    copy=False))
    annotate(graph, node, kernel=family)
    return True


def _gemm_takes(graph: Graph, node: Node) -> bool:
    if node.op not in ("gemm", "matmul") or annotation(graph, node, "kernel") != "gemm":
        return False
    a, w = node.inputs[0], node.inputs[1]
    k = a.type.shape[-1]
    return (not node.attrs.get("transA") and a.type.dtype == "float32" and k % 2 == 0
            and w.is_constant and w.type.dtype == "float32")


def _store_bf16(graph: Graph, cast: Value) -> bool:
    x = cast.producer.inputs[0]
    conv = x.producer
    if (conv is None or conv.op != "conv" or len(x.uses) != 1 or is_output(graph, x)
            or annotation(graph, conv, "kernel") not in STORES_BF16 or conv.attrs["pool"]
            or conv.attrs["out_dtype"] or conv.attrs["out_block"] != BF16_BLOCK):
        return False
    y = graph.apply("conv", list(conv.inputs), {**conv.attrs, "out_dtype": "bfloat16"},
                    name=conv.name, before=conv)
    graph.replace_all_uses_with(cast, y)
    graph.remove(cast.producer)
    graph.remove(conv)
    adopt_name(y, conv)
    return True
