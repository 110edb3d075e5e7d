"""Spatial resampling ops as the ops the llvm kernels already run fast (llvm target only).

1. depth_to_space(x) -> reshape (N, b, b, C', H, W) [DCR] or (N, C', b, b, H, W) [CRD]
   -> transpose -> reshape (N, C', H*b, W*b); space_to_depth the same way round. The transpose
   kernel copies whole rows, the reshapes are views.
2. conv_transpose with a constant weight whose kernel equals its stride (U-Net's 2x2/2), 2-D,
   dilation 1, no pads or output_padding: each output pixel takes exactly one tap, so
   y = depth_to_space_CRD(conv1x1(x, W'), b=s) with W'[m*s*s + i*s + j, c] = W[c, m, i, j]
   (per group), bias repeated s*s times: a GEMM, no wasted multiply-adds.
3. a conv_transpose with a constant weight, dilation 1, pads >= 0 and a stride > 1 splits into
   its stride phases (sub-pixel convolution): along an axis, the output cells s*q + r take
   exactly the taps r, r + s, ... of the kernel, so f[s*q + r] = sum_j x[q - j] * W[r + s*j],
   one small stride-1 conv per phase (its sub-kernel flipped, padded by J-1 before and Q-in
   after, Q = ceil(full / s)), the phases concatenated on the channels and interleaved by a
   reshape -> transpose -> reshape, the pads cropped last. The same multiply-adds as the
   direct scatter, on the blocked conv kernels (a phase without taps, kernel < stride, is a
   1-tap zero conv: its cells hold the bias).
4. any other conv_transpose: the transposed conv is the correlation of
   the zero-inserted input with the flipped kernel, y = conv(pad(z), flip(W)^T) where
   z[s*i] = x[i] (zeros between, as reshape -> pad -> reshape), padded by d*(k-1) - pad_begin
   before and d*(k-1) + output_padding - pad_end after (a negative amount crops); the conv
   weight is W transposed per group to (M, C/groups, *k), flipped on every spatial axis.
   This costs s^nd times the FLOPs of the direct scatter on the zeros, on the blocked kernels.
   A runtime weight is transposed and flipped by reshape / transpose / reversing-slice nodes.
"""
from __future__ import annotations

import itertools

import numpy as np

from graphcnn.ir import Graph, Node, Value
from graphcnn.ops.spatial import d2s_split_shape, depth_to_space_perm, space_to_depth_perm

from .util import adopt_name, replace_node


def _rearrange(graph: Graph, x: Value, op: str, a: dict, out_shape, name: str, before: Node
               ) -> Value:  # Rule 1
    n, c, h, w = x.shape
    bs = a["blocksize"]
    if op == "depth_to_space":
        split, perm = d2s_split_shape(a, x.shape), depth_to_space_perm(a["mode"])
    else:
        split, perm = (n, c, h // bs, bs, w // bs, bs), space_to_depth_perm(a["mode"])
    v = graph.apply("reshape", [x], {"shape": split}, name=f"{name}.split", before=before)
    v = graph.apply("transpose", [v], {"perm": perm}, name=f"{name}.move", before=before)
    return graph.apply("reshape", [v], {"shape": out_shape}, name=name, before=before)


def _group_weights(w: np.ndarray, groups: int) -> np.ndarray:
    """(C, M/g, *k) -> (M, C/g, *k): each group's in/out channel axes swapped."""
    cg = w.shape[0] // groups
    parts = [np.swapaxes(w[g * cg:(g + 1) * cg], 0, 1) for g in range(groups)]
    return np.ascontiguousarray(np.concatenate(parts, axis=0))


def _kernel_is_stride(node: Node) -> bool:
    a, w = node.attrs, node.inputs[1].type.shape
    return (len(w) == 4 and tuple(w[2:]) == tuple(a["strides"]) and a["dilations"] == (1, 1)
            and not any(a["pads"]) and not any(a["output_padding"]))


def _conv_transpose_gemm(graph: Graph, node: Node) -> Value:  # Rule 2
    x, a = node.inputs[0], node.attrs
    w = node.inputs[1].data.astype(np.float32)
    s = a["strides"][0]
    wt = _group_weights(w, a["groups"])  # (M, C/g, s, s)
    weight = wt.reshape(wt.shape[0], wt.shape[1], s * s).transpose(0, 2, 1)
    weight = weight.reshape(wt.shape[0] * s * s, wt.shape[1], 1, 1)
    ins = [x, graph.add_constant(np.ascontiguousarray(weight), name=f"{node.name}.w")]
    if len(node.inputs) == 3:
        bias = np.repeat(node.inputs[2].data.astype(np.float32), s * s)
        ins.append(graph.add_constant(bias, name=f"{node.name}.b"))
    y = graph.apply("conv", ins, {"groups": a["groups"]}, name=f"{node.name}.gemm", before=node)
    return _rearrange(graph, y, "depth_to_space", {"blocksize": s, "mode": "CRD"},
                      node.outputs[0].shape, node.name, node)


def _phased(node: Node) -> bool:
    a = node.attrs
    return (all(v.is_constant for v in node.inputs[1:]) and max(a["strides"]) > 1
            and all(d == 1 for d in a["dilations"]) and min(a["pads"]) >= 0)


def _conv_transpose_phases(graph: Graph, node: Node) -> Value:  # Rule 3
    x, a = node.inputs[0], node.attrs
    nd = x.type.rank - 2
    wt = _group_weights(node.inputs[1].data.astype(np.float32), a["groups"])  # (M, C/g, *K)
    k, s, op = wt.shape[2:], a["strides"], a["output_padding"]
    n, m = x.shape[0], wt.shape[0]
    spatial = x.shape[2:]
    q = [-(-(s[i] * (spatial[i] - 1) + k[i] + op[i]) // s[i]) for i in range(nd)]
    phases = []
    for phase in itertools.product(*(range(v) for v in s)):
        sub = wt[(slice(None), slice(None)) + tuple(slice(r, None, v) for r, v in zip(phase, s))]
        if 0 in sub.shape:  # no tap lands on this phase: a 1-tap zero kernel (bias only)
            sub = np.zeros(sub.shape[:2] + tuple(max(1, t) for t in sub.shape[2:]), np.float32)
        sub = np.ascontiguousarray(np.flip(sub, axis=tuple(range(2, 2 + nd))))
        pads = [t - 1 for t in sub.shape[2:]] + [q[i] - spatial[i] for i in range(nd)]
        tag = "".join(str(r) for r in phase)
        ins = [x, graph.add_constant(sub, name=f"{node.name}.w{tag}")] + list(node.inputs[2:])
        phases.append(graph.apply("conv", ins, {"pads": pads, "groups": a["groups"]},
                                  name=f"{node.name}.phase{tag}", before=node))
    v = graph.apply("concat", phases, {"axis": 1}, name=f"{node.name}.phases", before=node)
    v = graph.apply("reshape", [v], {"shape": (n, *s, m, *q)}, name=f"{node.name}.split",
                    before=node)
    perm = (0, nd + 1) + tuple(d for i in range(nd) for d in (nd + 2 + i, 1 + i))
    v = graph.apply("transpose", [v], {"perm": perm}, name=f"{node.name}.interleave",
                    before=node)
    v = graph.apply("reshape", [v], {"shape": (n, m) + tuple(qi * si for qi, si in zip(q, s))},
                    name=f"{node.name}.full", before=node)
    out = node.outputs[0].shape[2:]
    p = a["pads"]
    crop = [0, 0] + [-p[i] for i in range(nd)] + [0, 0] + [
        -(q[i] * s[i] - p[i] - out[i]) for i in range(nd)]
    if not any(crop):
        return v
    return graph.apply("pad", [v], {"pads": crop}, name=node.name, before=node)


def _zero_insert(graph: Graph, node: Node, x: Value, strides) -> Value:
    """z of length s*in per axis (x at multiples of s, zeros between and s-1 after)."""
    n, c, *spatial = x.shape
    split = (n, c) + tuple(d for size in spatial for d in (size, 1))
    v = graph.apply("reshape", [x], {"shape": split}, name=f"{node.name}.split", before=node)
    rank = len(split)
    pads = [0] * (2 * rank)
    for i, s in enumerate(strides):
        pads[rank + 3 + 2 * i] = s - 1
    v = graph.apply("pad", [v], {"pads": pads}, name=f"{node.name}.zeros", before=node)
    return graph.apply("reshape", [v], {"shape": (n, c) + tuple(
        size * s for size, s in zip(spatial, strides))}, name=f"{node.name}.inserted",
        before=node)


def _conv_weight(graph: Graph, node: Node) -> Value:
    """W (C, M/g, *k) as the conv weight (M, C/g, *k), flipped: in numpy for a constant W, as
    reshape -> transpose -> reshape -> reversing slice for a runtime one."""
    w, g = node.inputs[1], node.attrs["groups"]
    nd = w.type.rank - 2
    if w.is_constant:
        flipped = np.flip(_group_weights(w.data.astype(np.float32), g),
                          axis=tuple(range(2, 2 + nd)))
        return graph.add_constant(np.ascontiguousarray(flipped), name=f"{node.name}.w")
    c, mg, *k = w.shape
    name = f"{node.name}.w"
    v = graph.apply("reshape", [w], {"shape": (g, c // g, mg, *k)}, name=f"{name}.split",
                    before=node)
    v = graph.apply("transpose", [v], {"perm": (0, 2, 1) + tuple(range(3, 3 + nd))},
                    name=f"{name}.swap", before=node)
    v = graph.apply("reshape", [v], {"shape": (g * mg, c // g, *k)}, name=f"{name}.join",
                    before=node)
    return graph.apply("slice", [v], {"starts": [-1] * nd, "ends": [-(2 ** 62)] * nd,
                                      "axes": list(range(2, 2 + nd)), "steps": [-1] * nd},
                       name=f"{name}.flip", before=node)


def _conv_transpose_direct(graph: Graph, node: Node) -> Value:  # Rule 4
    x, a = node.inputs[0], node.attrs
    nd = x.type.rank - 2
    k = node.inputs[1].shape[2:]
    s, d, p, op = a["strides"], a["dilations"], a["pads"], a["output_padding"]
    z = _zero_insert(graph, node, x, s) if any(v > 1 for v in s) else x
    begins = [d[i] * (k[i] - 1) - p[i] for i in range(nd)]
    # z has s-1 zeros past the last input cell already
    ends = [d[i] * (k[i] - 1) + op[i] - p[i + nd] - (s[i] - 1) for i in range(nd)]
    if min(begins + ends) < 0:  # crop first: conv pads are >= 0
        crop = [0, 0] + [min(0, b) for b in begins] + [0, 0] + [min(0, e) for e in ends]
        z = graph.apply("pad", [z], {"pads": crop}, name=f"{node.name}.crop", before=node)
    ins = [z, _conv_weight(graph, node)] + list(node.inputs[2:])
    pads = [max(0, b) for b in begins] + [max(0, e) for e in ends]
    return graph.apply("conv", ins, {"pads": pads, "dilations": d, "groups": a["groups"]},
                       name=node.name, before=node)


def lower_spatial(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op in ("depth_to_space", "space_to_depth"):
            y = _rearrange(graph, node.inputs[0], node.op, node.attrs, node.outputs[0].shape,
                           node.name, node)
        elif node.op == "conv_transpose":
            constant = all(v.is_constant for v in node.inputs[1:])
            rule = (_conv_transpose_gemm if constant and _kernel_is_stride(node) else
                    _conv_transpose_phases if _phased(node) else _conv_transpose_direct)
            y = rule(graph, node)
        else:
            continue
        replace_node(graph, node, y)
        adopt_name(y, node)
        changed = True
    return changed
