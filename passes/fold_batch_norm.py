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

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from graphcnn.ir import Graph, Node

from .util import adopt_name, all_constant, replace_node, single_private_use

FOLD_THREADS = 2


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


def _scaled_weight(w: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """w * inv[oc] in float64 rounded once to float32, as (w.astype(f64) * inv).astype(f32)
    would, but the ufunc casts in small buffers: no float64 copies of the weights (ResNet-50:
    2x 200 MB of fresh memory). The result is fresh memory the constant then owns."""
    out = np.empty(w.shape, np.float32)
    np.multiply(w, inv.reshape((-1,) + (1,) * (w.ndim - 1)), out=out, dtype=np.float64,
                casting="same_kind")
    return out


def _fold_into_conv(graph: Graph, bn: Node, conv: Node, inv: np.ndarray, shift: np.ndarray,
                    scaled: np.ndarray) -> None:  # Rule 1
    b = conv.inputs[2].data.astype(np.float64) if len(conv.inputs) > 2 else 0.0
    wf = graph.add_constant(scaled, f"{conv.name}.weight_bn", copy=False)
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
    """Rounds of folds (a bn after a folded one becomes foldable in the next round)."""
    changed = False
    while True:
        convs, gemms = [], []
        for bn in [n for n in graph.nodes if n.op == "batch_norm"]:
            producer = bn.inputs[0].producer
            if _foldable(graph, bn, producer, "conv"):
                convs.append((bn, producer))
            elif _foldable(graph, bn, producer, "gemm") and bn.inputs[0].type.rank == 2:
                gemms.append((bn, producer))
        if not convs and not gemms:
            return changed
        # the conv weights' products on FOLD_THREADS threads (numpy releases the GIL): filling
        # ResNet-50's ~100 MB of fresh memory was most of this pass's time, on one core
        params = [_inv_shift(bn) for bn, _ in convs]
        with ThreadPoolExecutor(FOLD_THREADS) as pool:
            scaled = list(pool.map(_scaled_weight, [conv.inputs[1].data for _, conv in convs],
                                   [inv for inv, _ in params]))
        for (bn, conv), (inv, shift), weight in zip(convs, params, scaled, strict=True):
            _fold_into_conv(graph, bn, conv, inv, shift, weight)
        for bn, gemm in gemms:
            _fold_into_gemm(graph, bn, gemm)
        changed = True
