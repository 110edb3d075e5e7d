"""The reference target: a numpy interpreter over the op table, the oracle for all others.

It adds no semantics of its own: each node runs its op's `compute`. Intermediates are dropped
after their last use, so big graphs do not hold every activation at once.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphcnn.errors import GraphcnnError, InputError, where
from graphcnn.ir import Graph
from graphcnn.ops import get_op
from graphcnn.runtime import CompiledModel


def interpret(graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    env: dict[int, np.ndarray] = {id(v): x for v, x in zip(graph.inputs, inputs)}
    for v in graph.constants:
        env[id(v)] = v.data
    last_use: dict[int, int] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last_use[id(v)] = i
    keep = {id(v) for v in graph.outputs}
    for i, node in enumerate(graph.nodes):
        args = [env[id(v)] for v in node.inputs]
        try:
            with np.errstate(over="ignore", under="ignore"):
                outs = get_op(node.op, node.name).run(node.attrs, *args)
        except InputError as e:  # bad runtime data (a gather index): name the node
            raise InputError(f"{where(node)}: {e}") from None
        except GraphcnnError:
            raise
        except Exception as e:  # a numpy failure here is a bug or a bad graph: say where
            raise GraphcnnError(f"{where(node)} failed in the reference interpreter: {e}") from e
        for v, y in zip(node.outputs, outs):
            env[id(v)] = np.asarray(y, dtype=v.type.dtype).reshape(v.type.shape)
        for v in node.inputs:
            if last_use.get(id(v)) == i and id(v) not in keep and not v.is_constant:
                env.pop(id(v), None)
    return [np.array(env[id(v)], copy=True) for v in graph.outputs]


class ReferenceModel(CompiledModel):
    target = "reference"

    def _execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return interpret(self.graph, inputs)


def compile(graph: Graph, **options) -> ReferenceModel:
    return ReferenceModel(graph)
