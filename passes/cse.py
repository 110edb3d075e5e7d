"""Common subexpression elimination.

1. Constants with the same dtype, shape and content (compared by a content hash, then by value)
   are merged into the first one.
2. Two nodes with the same op, the same attrs and the same inputs (by identity, after rule 1)
   compute the same outputs: the later one's uses move to the earlier one.
All ops in the table are pure, so rule 2 needs no side-effect check.
"""
from __future__ import annotations

import numpy as np

from graphcnn.digests import constant_digests
from graphcnn.ir import Graph


def _merge_constants(graph: Graph) -> bool:  # Rule 1
    changed = False
    seen: dict[tuple, list] = {}
    constants = list(graph.constants)
    # the memoised content digests (dtype, shape, bytes): imported constants were hashed once
    # already, for the compile cache key, so most of these cost a dict lookup
    for v, digest in zip(constants, constant_digests(constants)):
        key = (v.type, digest)
        same = next((u for u in seen.get(key, []) if np.array_equal(u.data, v.data)), None)
        if same is None:
            seen.setdefault(key, []).append(v)
        elif v.uses:
            graph.replace_all_uses_with(v, same)
            changed = True
    return changed


def eliminate_common_subexpressions(graph: Graph) -> bool:
    changed = _merge_constants(graph)
    seen: dict[tuple, object] = {}
    for node in list(graph.nodes):
        key = (node.op, node.attrs, tuple(id(v) for v in node.inputs))
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        for old, new in zip(node.outputs, first.outputs):  # Rule 2
            graph.replace_all_uses_with(old, new)
        if not any(o in graph.outputs for o in node.outputs):
            graph.remove(node)
        changed = True
    return changed
