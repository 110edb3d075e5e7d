"""`gc.compile(graph, batch="dynamic")`: one model callable at any batch size.

The graph is proved batch-wise once (graphcnn/rebatch.py). A call with N samples on axis 0 of
every input runs a model compiled for the graph re-batched to N: compiled on the first call with
that N, through gc.compile (so the llvm target's on-disk cache applies), and kept in memory for
the next ones. The models kept are bounded: the `max_sizes` most recently used batch sizes
(default 4); a size used again after it was dropped compiles again (a cache hit on disk).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from .errors import CompileError, InputError
from .ir import Graph
from .rebatch import graph_batch, rebatch
from .runtime import CompiledModel

MAX_BATCH_SIZES = 4  # compiled models kept in memory, one per batch size


class DynamicBatchModel(CompiledModel):
    """A batch-wise graph compiled per batch size on demand (module doc). `input_types` give
    the graph's own batch; any N >= 1 is accepted on axis 0, the same N for every input.
    `batch_sizes` lists the sizes compiled and held, least recently used first."""

    def __init__(self, graph: Graph, target: str, compile_one: Callable[[Graph], CompiledModel],
                 max_sizes: int = MAX_BATCH_SIZES):
        self.batch = graph_batch(graph)  # a CompileError naming the node that mixes samples
        super().__init__(graph)
        self.target = target
        self.max_sizes = max_sizes
        self._compile_one = compile_one
        self._models: OrderedDict[int, CompiledModel] = OrderedDict()
        self._lock = threading.Lock()  # one compile per size, however many callers

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(self._models)

    def model_for(self, n: int) -> CompiledModel:
        """The model compiled for a batch of `n`, compiled now unless held."""
        with self._lock:
            model = self._models.get(n)
            if model is None:
                model = self._compile_one(rebatch(self.graph, n))
                self._models[n] = model
                while len(self._models) > self.max_sizes:
                    self._models.popitem(last=False)
            self._models.move_to_end(n)
            return model

    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        want = self.input_types[name].shape
        if len(shape) != len(want) or shape[1:] != want[1:] or shape[0] < 1:
            raise InputError(f"input {name!r}: shape {shape} but the model takes "
                             f"(N, {', '.join(map(str, want[1:]))}) for any batch N >= 1")

    def _execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        sizes = {n: x.shape[0] for n, x in zip(self.input_names, inputs)}
        if len(set(sizes.values())) != 1:
            raise InputError(f"{self._name}: the inputs' batch sizes {sizes} differ")
        return self.model_for(inputs[0].shape[0])._execute(inputs)

    def save(self, path) -> None:
        raise CompileError("a batch='dynamic' model compiles per batch size: save the model of "
                           "one size, e.g. cm.model_for(8).save(path)")

    def __repr__(self) -> str:
        return (f"<CompiledModel {self._name!r} target={self.target} batch=dynamic "
                f"sizes={list(self._models)} inputs={self.input_names} "
                f"outputs={self.output_names}>")
