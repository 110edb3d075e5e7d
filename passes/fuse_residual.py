"""Residual add fused into the producing conv's epilogue: y = act(conv(x, w) + b + r).

1. add(conv(x, w, b), r) -> conv[residual=True](x, w, b, r)  when the conv output has one use,
   the conv has no activation and no residual yet, is NCHW, and r has exactly the output's shape
   (no broadcasting). When both operands are such convs, the one later in topological order is
   fused (the earlier one is usually the shortcut), so r is always defined before the new conv.
2. A conv without bias gets a zero bias first (the residual is the 4th input).
3. The new conv is placed where the add was, so every one of its inputs is already defined.
A following relu is fused by fuse-conv-activation, which runs after this pass.
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph, Node

from .util import adopt_name, replace_node, single_private_use


def _fusible(graph: Graph, add: Node, conv: Node | None) -> bool:
    return (conv is not None and conv.op == "conv" and conv.attrs["activation"] == "none"
            and not conv.attrs["residual"] and conv.attrs["layout"] == "NCHW"
            and single_private_use(graph, conv.outputs[0])
            and add.inputs[0].type.shape == add.inputs[1].type.shape
            and add.inputs[0] is not add.inputs[1])


def fuse_residual_add(graph: Graph) -> bool:
    changed = False
    for add in [n for n in graph.nodes if n.op == "add"]:
        position = {id(n): i for i, n in enumerate(graph.nodes)}
        candidates = [i for i in (0, 1) if _fusible(graph, add, add.inputs[i].producer)]
        if not candidates:
            continue
        k = max(candidates, key=lambda i: position[id(add.inputs[i].producer)])  # Rule 1
        conv, r = add.inputs[k].producer, add.inputs[1 - k]
        ins = list(conv.inputs)
        if len(ins) == 2:  # Rule 2
            c_out = conv.inputs[1].type.shape[0]
            ins.append(graph.add_constant(np.zeros(c_out, np.float32), f"{conv.name}.bias"))
        y = graph.apply("conv", ins + [r], {**conv.attrs, "residual": True}, name=conv.name,
                        before=add)  # Rule 3
        replace_node(graph, add, y)
        graph.remove(conv)
        adopt_name(y, conv)
        changed = True
    return changed
