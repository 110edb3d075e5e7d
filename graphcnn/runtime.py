"""CompiledModel: what `gc.compile` returns, the same for every target.

Input policy (checked before any backend code runs):
- names must be the graph's input names, all of them;
- shapes must equal the compiled shapes exactly;
- numpy arrays must already have the input's dtype (float32, or int64/int32/bool for token ids
  and masks): a float64 array, or int32 ids into an int64 input, is rejected with an InputError
  naming the input rather than silently converted; Python lists and scalars are converted;
- non-contiguous arrays are copied to C order (native code needs dense memory).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import CompileError, InputError
from .ir import Graph, TensorType
from .profiling import Profile
from .taps import Recipe, check_taps, tap_model, tensor_names

# a model's name and its (name, type) inputs and outputs: what calling it needs of the graph
Signature = tuple[str, list[tuple[str, TensorType]], list[tuple[str, TensorType]]]


def signature_of(graph: Graph) -> Signature:
    return (graph.name, [(v.name, v.type) for v in graph.inputs],
            [(v.name, v.type) for v in graph.outputs])


class CompiledModel:
    """A graph compiled for one target. Call it with positional inputs or `run` with a dict."""

    target = "?"
    _recipe: Recipe | None = None  # set by gc.compile: what taps recompile (graphcnn/taps.py)

    def __init__(self, graph: Graph | None, signature: Signature | None = None):
        """`graph`, or for a model loaded from a file without one, its `signature`."""
        if graph is not None:
            self.graph = graph
            signature = signature_of(graph)
        name, inputs, outputs = signature
        self._name, self._signature = name, signature  # outputs may repeat a value: a list
        self.input_names: list[str] = [n for n, _ in inputs]
        self.output_names: list[str] = [n for n, _ in outputs]
        self.input_types = dict(inputs)
        self._input_dtypes = {n: np.dtype(t.dtype) for n, t in inputs}
        self.output_types = dict(outputs)

    # ----- the two calling conventions ----------------------------------------------------
    def __call__(self, *inputs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        if len(inputs) != len(self.input_names):
            raise InputError(f"{self._name} takes {len(self.input_names)} input(s) "
                             f"{self.input_names}, got {len(inputs)}")
        outs = self._execute([self._check(n, x) for n, x in zip(self.input_names, inputs)])
        return outs[0] if len(outs) == 1 else tuple(outs)

    def run(self, feeds: dict[str, Any], taps: Sequence[str] | None = None
            ) -> dict[str, np.ndarray]:
        """Outputs by name; with `taps` (names from `tensor_names()`) the tapped intermediates
        follow the outputs in the same dict, in the order asked (graphcnn/taps.py)."""
        if not isinstance(feeds, dict):
            raise InputError(f"run() takes a dict of input name -> array, got {type(feeds).__name__}")
        unknown = sorted(set(feeds) - set(self.input_names))
        missing = [n for n in self.input_names if n not in feeds]
        if unknown or missing:
            raise InputError(f"{self._name}: unknown input name(s) {unknown}, missing "
                             f"{missing}; inputs are {self.input_names}")
        inputs = [self._check(n, feeds[n]) for n in self.input_names]
        if taps is None:
            return dict(zip(self.output_names, self._execute(inputs)))
        names = check_taps(self._tap_source(), taps)
        extra = [n for n in names if n not in self.output_types]
        model = tap_model(self._recipe, extra) if extra else self  # outputs need no build
        outs = model._execute(inputs)
        result = dict(zip(self.output_names, outs))
        result.update(zip(extra, outs[len(self.output_names):]))
        return result

    def tensor_names(self) -> list[str]:
        """The names `run(..., taps=...)` accepts: every value a node of the graph as the user
        gave it computes, in topological order (as the text IR printer names them)."""
        return tensor_names(self._tap_source())

    def _tap_source(self) -> Graph:
        if self._recipe is None:
            raise CompileError(f"{self._name}: taps and tensor_names need the graph the model "
                               "was compiled from: compile it with gc.compile (a model loaded "
                               "from a file keeps only its code)")
        return self._recipe.graph

    def profile(self, *inputs: Any, runs: int = 10) -> Profile:
        """Per-layer mean wall time over `runs` calls, in execution order (graphcnn/profiling.py:
        rows {"node", "op", "seconds", ...}; `.write_trace(path)` for Perfetto)."""
        if len(inputs) != len(self.input_names):
            raise InputError(f"{self._name} takes {len(self.input_names)} input(s) "
                             f"{self.input_names}, got {len(inputs)}")
        if not isinstance(runs, int) or runs < 1:
            raise InputError(f"profile: runs must be a positive int, got {runs!r}")
        checked = [self._check(n, x) for n, x in zip(self.input_names, inputs)]
        return Profile(self._profile(checked, runs), self.target)

    def _profile(self, inputs: Sequence[np.ndarray], runs: int) -> list[dict]:
        raise CompileError(f"the {self.target} target has no per-layer profile")

    def _check(self, name: str, x: Any) -> np.ndarray:
        want = self.input_types[name]
        if not isinstance(x, np.ndarray):
            try:
                if np.dtype(want.dtype).kind in "iub" and np.asarray(x).dtype.kind in "fc":
                    raise InputError(f"input {name!r}: float values for a {want.dtype} input "
                                     f"(token ids, masks): convert them explicitly")
                x = np.asarray(x, dtype=want.dtype)
            except (TypeError, ValueError) as e:
                raise InputError(f"input {name!r}: cannot convert to {want.dtype}: {e}") from None
        if x.dtype != self._input_dtypes[name]:
            raise InputError(f"input {name!r}: dtype {x.dtype} but the model takes {want.dtype} "
                             f"(convert with x.astype(np.{want.dtype}))")
        self._check_shape(name, tuple(x.shape))
        return np.ascontiguousarray(x)

    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        want = self.input_types[name].shape
        if shape != want:
            raise InputError(f"input {name!r}: shape {shape} but the model was compiled "
                             f"for {want}")

    def _execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError  # each target implements this

    def save(self, path: str | os.PathLike) -> None:
        """Write the compiled model to one file that gc.load reads back without recompiling
        (the llvm target; the others compile in moments: save their graph with export_onnx)."""
        raise CompileError(f"save() is for the llvm target's native code, not {self.target}: "
                           "write the graph with gc.export_onnx and compile it again")

    def __repr__(self) -> str:
        return (f"<CompiledModel {self._name!r} target={self.target} inputs={self.input_names} "
                f"outputs={self.output_names}>")
