"""The reference target: a numpy interpreter over the op table, the oracle for all others.

It adds no semantics of its own: each node runs its op's `compute`. Intermediates are dropped
after their last use, so big graphs do not hold every activation at once.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from graphcnn.errors import GraphcnnError, InputError, where
from graphcnn.ir import Graph
from graphcnn.ops import get_op
from graphcnn.runtime import CompiledModel


def interpret(graph: Graph, inputs: Sequence[np.ndarray],
              seconds: list[float] | None = None) -> list[np.ndarray]:
    """The graph's outputs; with `seconds` each node's wall time is added there, in order."""
    clock = time.perf_counter
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
        start = clock()
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
        if seconds is not None:
            seconds.append(clock() - start)
        for v in node.inputs:
            if last_use.get(id(v)) == i and id(v) not in keep and not v.is_constant:
                env.pop(id(v), None)
    return [np.array(env[id(v)], copy=True) for v in graph.outputs]


class ReferenceModel(CompiledModel):
    target = "reference"

    def _execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return interpret(self.graph, inputs)

    def _profile(self, inputs: Sequence[np.ndarray], runs: int) -> list[dict]:
        """Each node timed in the interpreter, the mean over `runs` calls."""
        totals = [0.0] * len(self.graph.nodes)
        for _ in range(runs):
            seconds: list[float] = []
            interpret(self.graph, inputs, seconds)
            totals = [t + s for t, s in zip(totals, seconds)]
        return [{"node": n.name, "op": n.op, "seconds": t / runs}
                for n, t in zip(self.graph.nodes, totals)]


def compile(graph: Graph, **options) -> ReferenceModel:
    return ReferenceModel(graph)
