"""Dense layers read a blocked feature map directly (llvm target, after the layout choice).

A classifier head flattens the last feature map: gemm(flatten(from_blocked(x)), W). In NCHWc
the map is x (N, C/b, H, W, b); flattening the logical NCHW tensor orders features (c, h, w),
the blocked buffer holds them (c/b, h, w, c%b). Instead of a from_blocked kernel that reorders
the map on every call, the dense weight's feature axis is permuted once, at compile time, into
the blocked order, and the gemm reads x's buffer through a reshape (a view, no kernel):

    gemm(flatten(from_blocked(x)), W)  ->  gemm(reshape(x, (N, C*H*W)), W[:, perm])

Taken when: the gemm's B is a constant and its A is a flatten (axis 1) or a 2-D reshape
(N, C*H*W) of a from_blocked. When C does not fill its blocks (RegNet's 440 pooled channels),
the padding lanes get zero weight columns (they hold zeros too): the gemm reads
(N, ceil(C/b)*b*H*W) features. The flatten and from_blocked stay while other nodes use them,
else the pass drops them. LeNet-5's head, CIFAR VGG's, AlexNet's, VGG-19's, RegNet's.
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph, Node

from .util import drop_if_dead


def _blocked_source(a: Node | None):
    """(x_blocked, from_blocked node) when `a` flattens a from_blocked to (N, C*H*W)."""
    if a is None or a.op not in ("flatten", "reshape"):
        return None
    if a.op == "flatten" and a.attrs["axis"] != 1:
        return None
    fb = a.inputs[0].producer
    if fb is None or fb.op != "from_blocked":
        return None
    x = fb.inputs[0]
    if len(x.type.shape) != 5:
        return None
    n, _, h, w, _ = x.type.shape
    if a.outputs[0].type.shape != (n, fb.attrs["channels"] * h * w):
        return None
    return x, fb


def _blocked_features(weight: np.ndarray, trans_b: bool, shape: tuple[int, ...],
                      channels: int) -> np.ndarray:
    """W's feature axis from (c, h, w) order into the blocked (c/b, h, w, c%b) order, zero
    columns for the padding lanes."""
    _, cb, h, w, blk = shape
    wt = weight if trans_b else weight.T                     # (n_out, features)
    padded = np.zeros((wt.shape[0], cb * blk, h, w), np.float32)
    padded[:, :channels] = wt.reshape(-1, channels, h, w)
    permuted = padded.reshape(-1, cb, blk, h, w).transpose(0, 1, 3, 4, 2).reshape(
        wt.shape[0], -1)
    return np.ascontiguousarray(permuted if trans_b else permuted.T)


def read_blocked_features(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op != "gemm" or node.attrs["transA"] or not node.inputs[1].is_constant:
            continue
        flat = node.inputs[0].producer
        found = _blocked_source(flat)
        if found is None:
            continue
        x, fb = found
        n, cb, h, w, blk = x.type.shape
        view = graph.apply("reshape", [x], {"shape": (n, cb * blk * h * w)},
                           name=f"{flat.name}.blocked", before=node)
        b = node.inputs[1]
        weight = graph.add_constant(_blocked_features(b.data, node.attrs["transB"], x.type.shape,
                                                      fb.attrs["channels"]),
                                    name=f"{b.name}.blocked")
        graph.replace_input(node, 0, view)
        graph.replace_input(node, 1, weight)
        drop_if_dead(graph, flat)
        drop_if_dead(graph, fb)
        changed = True
    return changed
