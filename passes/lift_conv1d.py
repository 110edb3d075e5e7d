"""1-D convs become 2-D convs over H = 1 (llvm target, before the layout choice).

The llvm backend's fast conv kernels (direct NCHWc, GEMM, Winograd) and the blocked layout are
2-D; a 1-D conv (N, C, L) would run on the generic NCHW kernel. Lifted, a text CNN's convs over
time run blocked, and the per-channel ops after them stay in that region:

    conv1d(x, w) -> reshape(conv2d(reshape(x, (N, C, 1, L)), w[:, :, None, :]), (N, C', L'))

`lifted` maps a logical value v to the 4-D value u holding the same data, v = reshape(u), with
u's (N, C) those of v. A node reading lifted values is rebuilt on them, followed by a reshape
back that takes over its logical uses (dead-code elimination drops the reshapes nobody reads).
1. conv over (N, C, L) (NCHW, constant weight, no fused pool): weight (C', C/g, 1, K), pads
   (0, b, 0, e), strides (1, s), dilations (1, d); one reshape per input, shared by every conv
   reading it (a text CNN's three widths), and a residual reshaped the same way.
2. activations, batch_norm and the global pools run on u: per-channel, so the H = 1 axis
   changes nothing ((N, C, 1) from a global pool is lifted as (N, C, 1, 1)).
3. max/avg/sum/Lp pools over L run as 2-D pools with window (1, k), strides (1, s), pads
   (0, b, 0, e), dilations (1, d).
4. a binary elementwise op whose inputs are lifted values of one 4-D rank and constants runs
   on u; a constant of rank >= 2 gets the H = 1 axis before its last (time) axis, so it
   broadcasts as before; a scalar or 1-D constant (aligned with time) stays as it is.
5. a reshape (N, C, 1) -> (N, C) of a lifted (N, C, 1, 1) (the max over time squeezed) is lifted
   by the same u: no node.
6. concat on axis 1 of lifted values with the same dims after the channels runs on them (the
   pooled features of every width, before the classifier).
7. Everything else reads the logical value (the reshape back); unread reshapes are removed.
"""
from __future__ import annotations

from graphcnn.ir import Graph, Node, Value
from graphcnn.ops import ACTIVATIONS, BINARY_OPS

from .dce import eliminate_dead_code
from .util import adopt_name, replace_node

GLOBAL_POOLS = frozenset({"global_avg_pool", "global_max_pool", "global_lp_pool"})
WINDOW_POOLS = frozenset({"max_pool", "avg_pool", "sum_pool", "lp_pool"})


def _lift_window(attrs: dict) -> dict:
    """1-D window attributes as 2-D ones over H = 1."""
    b, e = attrs["pads"]
    return {"strides": (1, attrs["strides"][0]), "pads": (0, b, 0, e),
            "dilations": (1, attrs["dilations"][0])}


class _Lifter:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.lifted: dict[int, Value] = {}
        self.rebuilt = 0

    def as_4d(self, v: Value, before: Node) -> Value:
        """v (N, C, L) as (N, C, 1, L): its lifted value or one shared reshape."""
        u = self.lifted.get(id(v))
        if u is None:
            n, c, length = v.shape
            u = self.graph.apply("reshape", [v], {"shape": (n, c, 1, length)},
                                 name=f"{v.name}.2d", before=before)
            self.lifted[id(v)] = u
        return u

    def rebuild(self, node: Node, inputs: list[Value], attrs: dict) -> None:
        """node -> the same op on 4-D inputs + a reshape back taking over its logical uses."""
        old = node.outputs[0]
        y = self.graph.apply(node.op, inputs, {**node.attrs, **attrs}, name=node.name,
                             before=node)
        logical = self.graph.apply("reshape", [y], {"shape": old.shape},
                                   name=f"{node.name}.1d", before=node)
        self.lifted[id(logical)] = y
        replace_node(self.graph, node, logical)
        adopt_name(y, node)
        self.rebuilt += 1

    def conv(self, node: Node) -> None:  # Rule 1
        x, w = node.inputs[0], node.inputs[1]
        a = node.attrs
        if (x.type.rank != 3 or a["layout"] != "NCHW" or a["pool"] or not w.is_constant
                or not all(v.is_constant for v in node.inputs[2:3])):
            return
        weight = self.graph.add_constant(w.data[:, :, None, :], name=f"{w.name}.2d")
        ins = [self.as_4d(x, node), weight] + list(node.inputs[2:3])
        if a["residual"]:
            ins.append(self.as_4d(node.inputs[3], node))
        self.rebuild(node, ins, _lift_window(a))

    def per_channel(self, node: Node) -> None:  # Rules 2, 3
        u = self.lifted.get(id(node.inputs[0]))
        if u is None or node.inputs[0].type.rank != 3 or node.attrs.get("layout") != "NCHW":
            return
        if node.op == "batch_norm" and not all(p.is_constant for p in node.inputs[1:]):
            return
        attrs = {}
        if node.op in WINDOW_POOLS:
            attrs = {**_lift_window(node.attrs),
                     "kernel_shape": (1, node.attrs["kernel_shape"][0])}
        self.rebuild(node, [u] + list(node.inputs[1:]), attrs)

    def activation(self, node: Node) -> None:  # Rule 2
        u = self.lifted.get(id(node.inputs[0]))
        if u is not None and node.inputs[0].type.rank == 3:
            self.rebuild(node, [u], {})

    def binary(self, node: Node) -> None:  # Rule 4
        ins = []
        for v in node.inputs:
            u = self.lifted.get(id(v))
            if u is not None and v.type.rank == 3:
                ins.append(u)
            elif v.is_constant and v.type.rank <= 3:
                ins.append(self.constant_4d(v))
            else:
                return
        if node.outputs[0].type.rank == 3 and any(id(v) in self.lifted for v in node.inputs):
            self.rebuild(node, ins, {})

    def constant_4d(self, v: Value) -> Value:
        if v.type.rank <= 1:
            return v
        shape = v.shape[:-1] + (1,) + v.shape[-1:]
        return self.graph.add_constant(v.data.reshape(shape), name=f"{v.name}.2d")

    def squeeze(self, node: Node) -> None:  # Rule 5
        v, out = node.inputs[0], node.outputs[0]
        u = self.lifted.get(id(v))
        if (u is not None and u.shape[2:] == (1, 1) and out.type.rank == 2
                and out.shape == v.shape[:2]):
            self.lifted[id(out)] = u

    def concat(self, node: Node) -> None:  # Rule 6
        us = [self.lifted.get(id(v)) for v in node.inputs]
        if (node.attrs["axis"] != 1 or any(u is None for u in us)
                or len({u.shape[:1] + u.shape[2:] for u in us}) != 1):
            return
        self.rebuild(node, us, {})


def lift_conv1d(graph: Graph) -> bool:
    lifter = _Lifter(graph)
    for node in list(graph.nodes):
        if node.op == "conv":
            lifter.conv(node)
        elif not lifter.lifted:
            continue
        elif node.op in ACTIVATIONS:
            lifter.activation(node)
        elif node.op in GLOBAL_POOLS or node.op in WINDOW_POOLS or node.op == "batch_norm":
            lifter.per_channel(node)
        elif node.op in BINARY_OPS:
            lifter.binary(node)
        elif node.op == "reshape":
            lifter.squeeze(node)
        elif node.op == "concat":
            lifter.concat(node)
    removed = eliminate_dead_code(graph)  # Rule 7
    return lifter.rebuilt > 0 or removed
