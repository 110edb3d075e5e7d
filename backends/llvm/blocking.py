"""Backend-local rewrites before lowering, so the fast blocked kernels run on any graph.

The pass pipeline (graphcnn.passes) is where fusion and the layout change belong; these rules
make the llvm backend fast on graphs that did not get them (opt_level=0, or a pipeline
without those passes), and are no-ops on graphs that did. Each rule keeps the reference's
semantics; rules are applied once, in order, over the nodes in topological order.

1. fold batch_norm into the conv before it:   bn(conv(x, w, b)) -> conv(x, w*s, (b-mean)*s+beta)
2. fuse a residual add into the conv:         add(conv(x), r)   -> conv[residual](x, r)
3. fuse an activation into conv / gemm:       relu(conv(x))     -> conv[act=relu](x)
4. block convs the fast kernels take:         conv(x)           -> from_blocked(convNCHWc(to_blocked(x)))
5. sink from_blocked through layout-agnostic ops (activations, add, 2-D pools, global pools):
   op(from_blocked(z)) -> from_blocked(op(z)), so consecutive convs stay blocked; a
   to_blocked(from_blocked(z)) pair is never created (rule 4 looks through from_blocked).
Rules 1-3 only apply when the conv/gemm output has a single use and is not a graph output.
A rewritten node keeps the name of the node it replaces (profiles and errors stay readable).
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph, Node, Value

from .emit.conv import FAST_BLOCKS

ACTIVATION_PARAMS = {
    "relu": lambda a: (),
    "leaky_relu": lambda a: (a["alpha"],),
    "clip": lambda a: (a["min"], a["max"]),
    "sigmoid": lambda a: (),
}
SINKABLE = frozenset({"relu", "leaky_relu", "clip", "sigmoid", "add", "max_pool", "avg_pool",
                      "sum_pool", "global_avg_pool", "global_max_pool"})


def _single_private_use(graph: Graph, v: Value) -> bool:
    return len(v.uses) == 1 and not any(v is o for o in graph.outputs)


def _replace(graph: Graph, old: Node, new: Value) -> None:
    graph.replace_all_uses_with(old.outputs[0], new)
    graph.remove(old)


def _rebuild_conv(graph: Graph, conv: Node, inputs: list[Value], before: Node, **attrs) -> Value:
    return graph.apply("conv", inputs, {**conv.attrs, **attrs}, name=conv.name, before=before)


def fold_batch_norm(graph: Graph) -> None:  # rule 1
    for bn in [n for n in graph.nodes if n.op == "batch_norm"]:
        conv = bn.inputs[0].producer
        if (conv is None or conv.op != "conv" or conv.attrs["activation"] != "none"
                or conv.attrs["residual"] or conv.attrs["layout"] != "NCHW"
                or not _single_private_use(graph, conv.outputs[0])
                or not all(v.is_constant for v in list(bn.inputs[1:]) + list(conv.inputs[1:3]))):
            continue
        scale, beta, mean, var = (v.data.astype(np.float32) for v in bn.inputs[1:])
        inv = scale / np.sqrt(var + np.float32(bn.attrs["epsilon"]))
        w = conv.inputs[1].data
        bias = conv.inputs[2].data if len(conv.inputs) > 2 else np.zeros(w.shape[0], np.float32)
        wf = graph.add_constant((w * inv.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32),
                                f"{conv.name}.w_bn")
        bf = graph.add_constant(((bias - mean) * inv + beta).astype(np.float32),
                                f"{conv.name}.b_bn")
        y = _rebuild_conv(graph, conv, [conv.inputs[0], wf, bf], bn)
        _replace(graph, bn, y)
        graph.remove(conv)
        y.producer.name = conv.name


def fuse_residual(graph: Graph) -> None:  # rule 2
    for add in [n for n in graph.nodes if n.op == "add"]:
        for k in (0, 1):
            conv, other = add.inputs[k].producer, add.inputs[1 - k]
            if (conv is None or conv.op != "conv" or conv.attrs["activation"] != "none"
                    or conv.attrs["residual"] or other.type.shape != add.outputs[0].type.shape
                    or add.inputs[k].type.shape != add.outputs[0].type.shape
                    or not _single_private_use(graph, conv.outputs[0])
                    or other is conv.outputs[0]):
                continue
            ins = list(conv.inputs)
            if len(ins) == 2:
                ins.append(graph.add_constant(np.zeros(conv.inputs[1].type.shape[0], np.float32),
                                              f"{conv.name}.b0"))
            y = _rebuild_conv(graph, conv, ins + [other], add, residual=True)
            _replace(graph, add, y)
            graph.remove(conv)
            y.producer.name = conv.name
            break


def fuse_activation(graph: Graph) -> None:  # rule 3
    for act in [n for n in graph.nodes if n.op in ACTIVATION_PARAMS]:
        prod = act.inputs[0].producer
        if (prod is None or prod.op not in ("conv", "gemm")
                or prod.attrs["activation"] != "none"
                or not _single_private_use(graph, prod.outputs[0])):
            continue
        attrs = {**prod.attrs, "activation": act.op,
                 "activation_params": ACTIVATION_PARAMS[act.op](act.attrs)}
        y = graph.apply(prod.op, list(prod.inputs), attrs, name=prod.name, before=act)
        _replace(graph, act, y)
        graph.remove(prod)
        y.producer.name = prod.name


def _blocked_source(v: Value) -> Value | None:
    """z if v = from_blocked(z), else None."""
    p = v.producer
    return p.inputs[0] if p is not None and p.op == "from_blocked" else None


def _as_blocked(graph: Graph, v: Value, block: int, before: Node) -> Value:
    z = _blocked_source(v)
    if z is not None and z.type.shape[-1] == block:
        return z
    return graph.apply("to_blocked", [v], {"block": block}, before=before)


def block_layout(graph: Graph, vector_width: int) -> None:
    """Rules 4 and 5 in one walk in topological order, so a conv sees its producers already
    blocked (and looks through their from_blocked)."""
    for node in list(graph.nodes):
        if node.op == "conv":
            block_conv(graph, node, vector_width)
        elif node.op in SINKABLE:
            sink_from_blocked(graph, node)


def block_conv(graph: Graph, conv: Node, vector_width: int) -> None:  # rule 4
    a, x, w = conv.attrs, conv.inputs[0], conv.inputs[1]
    widest = vector_width if vector_width in FAST_BLOCKS else 16
    # few output channels: a narrower block computes fewer zero lanes (6 channels -> 8, not 16)
    ob = min([b for b in FAST_BLOCKS if b >= w.type.shape[0] and b <= widest] or [widest])
    if (a["layout"] != "NCHW" or x.type.rank != 4
            or not all(v.is_constant for v in conv.inputs[1:3])):
        return
    c_in, c_out = x.type.shape[1], w.type.shape[0]
    depthwise = a["groups"] == c_in == c_out and w.type.shape[1] == 1
    if a["groups"] != 1 and not depthwise:
        return
    z = _blocked_source(x)
    if depthwise:
        ib = ob
    elif z is not None and z.type.shape[-1] in FAST_BLOCKS:
        ib = z.type.shape[-1]
    else:  # few input channels (an image): a small block wastes no work on padding
        ib = min(ob, c_in)
    ins = [_as_blocked(graph, x, ib, conv)] + list(conv.inputs[1:3])
    if a["residual"]:
        ins.append(_as_blocked(graph, conv.inputs[3], ob, conv))
    y = graph.apply("conv", ins, {**a, "layout": "NCHWc", "out_block": ob}, name=conv.name,
                    before=conv)
    _replace(graph, conv, graph.apply("from_blocked", [y], {"channels": c_out},
                                      before=conv))
    y.producer.name = conv.name


def sink_from_blocked(graph: Graph, node: Node) -> None:  # rule 5
    sources = [_blocked_source(v) for v in node.inputs]
    if any(s is None for s in sources) or len({s.type.shape for s in sources}) != 1:
        return
    if node.op == "add" and node.inputs[0].type.shape != node.inputs[1].type.shape:
        return
    if "layout" in node.attrs:
        if node.attrs["layout"] != "NCHW" or node.inputs[0].type.rank != 4:
            return
        attrs = {**node.attrs, "layout": "NCHWc"}
    else:
        attrs = dict(node.attrs)
    channels = node.inputs[0].type.shape[1]
    y = graph.apply(node.op, sources, attrs, name=node.name, before=node)
    _replace(graph, node, graph.apply("from_blocked", [y], {"channels": channels},
                                      before=node))
    y.producer.name = node.name


def remove_dead(graph: Graph) -> None:
    changed = True
    while changed:
        changed = False
        for node in list(reversed(graph.nodes)):
            if all(not v.uses and not any(v is o for o in graph.outputs) for v in node.outputs):
                graph.remove(node)
                changed = True


def prepare(graph: Graph, vector_width: int) -> Graph:
    """Apply rules 1-5 in place (on the backend's own copy) and return the graph."""
    fold_batch_norm(graph)
    fuse_residual(graph)
    fuse_activation(graph)
    block_layout(graph, vector_width)
    remove_dead(graph)
    return graph
