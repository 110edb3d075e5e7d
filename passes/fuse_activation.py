"""Conv / gemm epilogue fusion: bias adds and activations move into the producer's attrs.

Rules as data: (consumer op, producer op, rewrite). Each applies when the producer's output has
one use (and is not a graph output) and the producer's epilogue has room for it.
1. add(conv(x, w[, b]), c)  -> conv(x, w, b + c)          c constant, per-channel (C,1,..,1) shape
1b. mul(conv(x, w[, b]), c) -> conv(x, w * c, b * c)     the same c (ConvNeXt's layer scale)
2. act(conv(...)) -> conv[activation=act](...) for every epilogue-fusible activation of the
   activation table (relu, leaky_relu, clip, sigmoid, ...)
   (relu6 is clip(0, 6); a conv carrying a residual takes the activation after the residual
   add, which is exactly act(conv + b + r)).
3. act(gemm(...)) -> gemm[activation=act](...)
4. act(batch_norm(...)) -> batch_norm[activation=act](...)
   (pre-activation networks: DenseNet's BN + ReLU before each conv becomes one pass over the
   data); on a blocked batch_norm only activations with act(0) = 0, which keep its zero
   padding lanes zero.
Applied to a fixed point (a loop limit guards against a rule that keeps firing).
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph, Node
from graphcnn.ops import FUSIBLE_ACTIVATIONS, as_epilogue, preserves_zero

from .util import adopt_name, replace_node, single_private_use

MAX_ROUNDS = 8


def _per_channel(graph: Graph, node: Node, conv: Node):
    """The per-channel vector the constant operand of `node` (an add or mul) is, or None."""
    other = [v for v in node.inputs if v is not conv.outputs[0]]
    if len(other) != 1 or not other[0].is_constant:
        return None
    c, y = other[0].data, conv.outputs[0].type.shape
    channels = y[1]
    want = (channels,) + (1,) * (len(y) - 2)
    shape = c.shape[1:] if c.ndim == len(y) and c.shape[0] == 1 else c.shape
    if tuple(shape) != want or np.broadcast_shapes(c.shape, y) != y:
        return None
    return c.reshape(-1).astype(np.float32)


def _foldable_conv(graph: Graph, node: Node) -> Node | None:
    """The NCHW conv without epilogue that feeds `node` alone and has constant weights."""
    conv = next((v.producer for v in node.inputs if v.producer is not None
                 and v.producer.op == "conv"), None)
    if (conv is None or conv.attrs["activation"] != "none" or conv.attrs["residual"]
            or conv.attrs["layout"] != "NCHW" or not single_private_use(graph, conv.outputs[0])
            or not all(v.is_constant for v in conv.inputs[1:3])):
        return None
    return conv


def fuse_bias(graph: Graph, node: Node) -> bool:  # Rules 1, 1b
    conv = _foldable_conv(graph, node)
    c = None if conv is None else _per_channel(graph, node, conv)
    if c is None:
        return False
    w = conv.inputs[1]
    old = conv.inputs[2].data if len(conv.inputs) > 2 else np.zeros_like(c)
    if node.op == "mul":
        shape = (-1,) + (1,) * (w.type.rank - 1)
        w = graph.add_constant((w.data * c.reshape(shape)).astype(np.float32),
                               f"{conv.name}.weight", copy=False)
        bias = old * c
    else:
        bias = old + c
    b = graph.add_constant(bias.astype(np.float32), f"{conv.name}.bias")
    y = graph.apply("conv", [conv.inputs[0], w, b], dict(conv.attrs), name=conv.name,
                    before=node)
    replace_node(graph, node, y)
    graph.remove(conv)
    adopt_name(y, conv)
    return True


def fuse_into_epilogue(graph: Graph, act: Node) -> bool:  # Rules 2, 3, 4
    producer = act.inputs[0].producer
    if (producer is None or producer.op not in ("conv", "gemm", "batch_norm")
            or producer.attrs["activation"] != "none"
            or not single_private_use(graph, producer.outputs[0])):
        return False
    kind, params = as_epilogue(act.op, act.attrs)
    if (producer.op == "batch_norm" and producer.attrs["layout"] == "NCHWc"
            and not preserves_zero(kind, params)):
        return False
    y = graph.apply(producer.op, list(producer.inputs),
                    {**producer.attrs, "activation": kind, "activation_params": params},
                    name=producer.name, before=act)
    replace_node(graph, act, y)
    graph.remove(producer)
    adopt_name(y, producer)
    return True


RULES = (
    ("add", fuse_bias),                                         # add(conv, c)  -> conv[b+c]
    ("mul", fuse_bias),                                         # mul(conv, c)  -> conv[w*c]
    *((op, fuse_into_epilogue) for op in sorted(FUSIBLE_ACTIVATIONS)),  # act(conv) -> conv[act]
)


def fuse_conv_activation(graph: Graph) -> bool:
    changed = False
    for _ in range(MAX_ROUNDS):
        fired = False
        # a rule removes only the node it fires on and that node's producer, which comes
        # earlier (topological order): no node still ahead in the snapshot is ever removed
        for node in list(graph.nodes):
            for op, rule in RULES:
                if node.op == op and rule(graph, node):
                    fired = True
                    break
        changed |= fired
        if not fired:
            break
    return changed
