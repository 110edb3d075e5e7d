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

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError
from .ir import Graph


class CompiledModel:
    """A graph compiled for one target. Call it with positional inputs or `run` with a dict."""

    target = "?"

    def __init__(self, graph: Graph):
        self.graph = graph
        self.input_names: list[str] = [v.name for v in graph.inputs]
        self.output_names: list[str] = [v.name for v in graph.outputs]
        self.input_types = {v.name: v.type for v in graph.inputs}
        self._input_dtypes = {v.name: np.dtype(v.type.dtype) for v in graph.inputs}
        self.output_types = {v.name: v.type for v in graph.outputs}

    # ----- the two calling conventions ----------------------------------------------------
    def __call__(self, *inputs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        if len(inputs) != len(self.input_names):
            raise InputError(f"{self.graph.name} takes {len(self.input_names)} input(s) "
                             f"{self.input_names}, got {len(inputs)}")
        outs = self._execute([self._check(n, x) for n, x in zip(self.input_names, inputs)])
        return outs[0] if len(outs) == 1 else tuple(outs)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(feeds, dict):
            raise InputError(f"run() takes a dict of input name -> array, got {type(feeds).__name__}")
        unknown = sorted(set(feeds) - set(self.input_names))
        missing = [n for n in self.input_names if n not in feeds]
        if unknown or missing:
            raise InputError(f"{self.graph.name}: unknown input name(s) {unknown}, missing "
                             f"{missing}; inputs are {self.input_names}")
        outs = self._execute([self._check(n, feeds[n]) for n in self.input_names])
        return dict(zip(self.output_names, outs))

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
        if tuple(x.shape) != want.shape:
            raise InputError(f"input {name!r}: shape {tuple(x.shape)} but the model was compiled "
                             f"for {want.shape}")
        return np.ascontiguousarray(x)

    def _execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError  # each target implements this

    def __repr__(self) -> str:
        return (f"<CompiledModel {self.graph.name!r} target={self.target} inputs={self.input_names} "
                f"outputs={self.output_names}>")
