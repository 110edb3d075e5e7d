"""Batch-norm folding into the conv or dense (gemm) that produces its input.

With inv = scale / sqrt(var + eps), batch_norm(y) = y * inv + (bias - mean * inv) per channel.
1. bn(conv(x, w[, b])) -> conv(x, w * inv[oc], (b - mean) * inv + bias)
   when the conv output has one use, the conv has no epilogue (activation none, no residual),
   is NCHW, and w, b and the bn parameters are constants.
2. bn(gemm(A, B[, C])) on a 2-D output (channels = columns), transA any, B and C constant, no
   epilogue: B scaled per output column, C' = beta * C * inv + bias - mean * inv, beta' = 1.
3. Anything else is left alone (a standalone batch_norm on constants is constant folding's job).
"""
from __future__ import annotations

import math

import numpy as np

from graphcnn.ir import Graph, Node

from .util import adopt_name, all_constant, replace_node, single_private_use


def _inv_shift(bn: Node) -> tuple[np.ndarray, np.ndarray]:
    scale, bias, mean, var = (v.data.astype(np.float64) for v in bn.inputs[1:])
    inv = scale / np.sqrt(var + bn.attrs["epsilon"])
    return inv, bias - mean * inv


def _foldable(graph: Graph, bn: Node, producer: Node | None, op: str) -> bool:
    return (producer is not None and producer.op == op
            and bn.attrs["activation"] == "none"
            and producer.attrs["activation"] == "none"
            and not producer.attrs.get("residual", False)
            and producer.attrs.get("layout", "NCHW") == "NCHW"
            and single_private_use(graph, producer.outputs[0])
            and all_constant(list(bn.inputs[1:]) + list(producer.inputs[1:3])))


class _Scratch:
    """One float32 buffer for every fold's scaled weights (add_constant copies them anyway):
    fresh memory for each conv costs page faults, a good part of this pass's time."""

    def __init__(self) -> None:
        self.buffer = np.empty(0, np.float32)

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        if self.buffer.size < size:
            self.buffer = np.empty(size, np.float32)
        return self.buffer[:size].reshape(shape)


def _fold_into_conv(graph: Graph, bn: Node, conv: Node, scratch: _Scratch) -> None:  # Rule 1
    inv, shift = _inv_shift(bn)
    w = conv.inputs[1].data
    b = conv.inputs[2].data.astype(np.float64) if len(conv.inputs) > 2 else 0.0
    # w * inv in float64 rounded once to float32, as (w.astype(f64) * inv).astype(f32) would,
    # but the ufunc casts in small buffers: no float64 copies of the weights (ResNet-50: 2x
    # 200 MB of fresh memory, most of this pass's time)
    scaled = scratch.take(w.shape)
    np.multiply(w, inv.reshape((-1,) + (1,) * (w.ndim - 1)), out=scaled, dtype=np.float64,
                casting="same_kind")
    wf = graph.add_constant(scaled, f"{conv.name}.weight_bn")
    bf = graph.add_constant((b * inv + shift).astype(np.float32), f"{conv.name}.bias_bn")
    y = graph.apply("conv", [conv.inputs[0], wf, bf], dict(conv.attrs), name=conv.name,
                    before=bn)
    replace_node(graph, bn, y)
    graph.remove(conv)
    adopt_name(y, conv)


def _fold_into_gemm(graph: Graph, bn: Node, gemm: Node) -> None:  # Rule 2
    inv, shift = _inv_shift(bn)
    a = gemm.attrs
    B = gemm.inputs[1].data.astype(np.float64)
    Bf = B * (inv.reshape(-1, 1) if a["transB"] else inv.reshape(1, -1))
    n = gemm.outputs[0].type.shape[1]
    C = gemm.inputs[2].data.astype(np.float64) * a["beta"] if len(gemm.inputs) > 2 else 0.0
    Cf = np.broadcast_to(C * inv + shift, np.broadcast_shapes(np.shape(C * inv), (n,)))
    ins = [gemm.inputs[0], graph.add_constant(Bf.astype(np.float32), f"{gemm.name}.B_bn"),
           graph.add_constant(np.ascontiguousarray(Cf, np.float32), f"{gemm.name}.C_bn")]
    y = graph.apply("gemm", ins, {**a, "beta": 1.0}, name=gemm.name, before=bn)
    replace_node(graph, bn, y)
    graph.remove(gemm)
    adopt_name(y, gemm)


def fold_batch_norm(graph: Graph) -> bool:
    changed = False
    scratch = _Scratch()
    for bn in [n for n in graph.nodes if n.op == "batch_norm"]:
        producer = bn.inputs[0].producer
        if _foldable(graph, bn, producer, "conv"):
            _fold_into_conv(graph, bn, producer, scratch)
            changed = True
        elif _foldable(graph, bn, producer, "gemm") and bn.inputs[0].type.rank == 2:
            _fold_into_gemm(graph, bn, producer)
            changed = True
    return changed
