"""Test-only fault injection: a deliberately wrong pass, so tests can show `graphcnn debug`
naming the pass and the node that broke a model. Never set in normal use.

    GRAPHCNN_TEST_FAULT=[fused:]<node>[@<pass>]

adds the pass "inject-fault" right after the first pass named <pass> (default "cse"; at the
front of a pipeline without it). The pass scales the first floating constant input (the
weight) of node <node> (a node or value name) by 1.5: the graph stays valid, only that node's
output is wrong. With `fused:` only a node carrying a fused activation is hit: a fault that
exists only where a fusion happened (a debug build that keeps every value has none). While
the variable is set the llvm compile cache is off (backends/llvm/cache.py `enabled`), so a
faulty build is neither stored nor a correct one reused.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from graphcnn.ir import Graph

from .manager import Pass

ENV = "GRAPHCNN_TEST_FAULT"
FAULT_PASS = "inject-fault"
DEFAULT_AFTER = "cse"
SCALE = 1.5


def scale_weight(graph: Graph, node_name: str, fused_only: bool = False) -> bool:
    """The fault: the first floating constant input of the node named `node_name` (or whose
    first output is), times SCALE; with `fused_only` only if it has a fused activation."""
    for node in graph.nodes:
        if node_name not in (node.name, node.outputs[0].name):
            continue
        if fused_only and node.attrs.get("activation", "none") == "none":
            return False
        for i, v in enumerate(node.inputs):
            if v.is_constant and np.dtype(v.type.dtype).kind == "f":
                bad = graph.add_constant(np.asarray(v.data) * SCALE, f"{v.name}.fault")
                graph.replace_input(node, i, bad)
                return True
    return False


def with_fault(passes: list[Pass]) -> list[Pass]:
    """`passes` with the faulty pass inserted when GRAPHCNN_TEST_FAULT asks for one."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return passes
    node_name, _, after = spec.partition("@")
    fused = node_name.startswith("fused:")
    node_name = node_name.removeprefix("fused:")
    after = after or DEFAULT_AFTER
    names = [p.name for p in passes]
    at = names.index(after) + 1 if after in names else 0
    fault = Pass(FAULT_PASS, functools.partial(scale_weight, node_name=node_name,
                                               fused_only=fused))
    return passes[:at] + [fault] + passes[at:]
