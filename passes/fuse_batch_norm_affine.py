"""A per-channel multiply or add after a batch norm, folded into its scale and bias.

Caffe2-converted models (the onnx model zoo's DenseNet-121) write each batch norm as
BatchNormalization -> Mul(per-channel constant) -> Add(per-channel constant) -> Relu. The mul
and add have constant broadcast operands, so they neither fuse into a conv nor run on the
blocked layout, and each one takes the tensor back to NCHW. Folded into the batch norm, the
relu becomes its epilogue and the whole batch norm runs blocked (layout rule 5b), or folds
into the conv before it (fold-batch-norm).
With y = batch_norm(x) = (x - mean) / sqrt(var + eps) * scale + bias, and c broadcasting as
one value per channel (shape (), (1,), (C, 1, ..., 1) or (1, C, 1, ..., 1)):
1. mul(y, c) or mul(c, y) -> batch_norm(x) with scale * c and bias * c;
2. add(y, c) or add(c, y) -> batch_norm(x) with bias + c;
when y has no other use, the batch norm has no fused activation and constant parameters.
One sweep in graph order folds a Mul then its Add; sweeps repeat until nothing changes.
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph, Node, Value

from .util import adopt_name, all_constant, replace_node, single_private_use


def _per_channel(c: Value, x: Value) -> np.ndarray | None:
    """c as one value per channel of x, or None when it varies along other axes."""
    rank, channels = x.type.rank, x.shape[1]
    if not c.is_constant or c.type.rank > rank or rank < 2:
        return None
    target = (1, channels) + (1,) * (rank - 2)
    try:
        if np.broadcast_shapes(c.shape, target) != target:
            return None
    except ValueError:
        return None
    return np.broadcast_to(c.data.astype(np.float64), target).reshape(channels)


def _fold(graph: Graph, node: Node) -> bool:
    for k in (0, 1):
        y, c = node.inputs[k], node.inputs[1 - k]
        bn = y.producer
        if (bn is None or bn.op != "batch_norm" or bn.attrs["activation"] != "none"
                or bn.attrs["layout"] != "NCHW" or not single_private_use(graph, y)
                or not all_constant(bn.inputs[1:])):
            continue
        factor = _per_channel(c, y)
        if factor is None:
            continue
        scale, bias = (v.data.astype(np.float64) for v in bn.inputs[1:3])
        if node.op == "mul":  # Rule 1
            scale, bias = scale * factor, bias * factor
        else:  # Rule 2
            bias = bias + factor
        params = [graph.add_constant(a.astype(np.float32), f"{bn.name}.{what}")
                  for a, what in ((scale, "scale"), (bias, "bias"))]
        z = graph.apply("batch_norm", [bn.inputs[0]] + params + list(bn.inputs[3:5]),
                        dict(bn.attrs), name=bn.name, before=node)
        replace_node(graph, node, z)
        graph.remove(bn)
        adopt_name(z, bn)
        return True
    return False


def fuse_batch_norm_affine(graph: Graph) -> bool:
    changed = False
    for _ in range(8):  # a second sweep finds nothing; the limit bounds the loop
        step = False
        for node in [n for n in graph.nodes if n.op in ("mul", "add")]:
            if len(node.inputs) == 2:  # a node is only removed when it is folded itself
                step = _fold(graph, node) or step
        changed = changed or step
        if not step:
            break
    return changed
