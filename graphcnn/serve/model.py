"""ServedModel: one model behind the server, compiled once per batch size it runs at.

A request carries k samples (its inputs' first dim). The batcher concatenates requests along
axis 0; the concatenation is padded with zeros up to the next compiled size, run in one native
call and split back. Compiled sizes are the powers of two below `max_batch` and `max_batch`
itself, so a server holds at most log2(max_batch) + 1 variants of a model.

A variant at batch N is the model's graph re-bound to N (`gc.from_onnx(..., batch=N)`, which
proves the graph batch-wise: onnx_batch.check_batchwise). A DSL graph goes through its ONNX
form for that. A graph that is not batch-wise, or a saved model (cm.save: code without a
graph), runs only at its own batch: requests must then fill that batch exactly or, for a
saved model, pad up to it (a saved model's samples are independent by the user's choice of
what to save; docs/serving.md says so).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

from graphcnn.errors import InputError, ModelLoadError, ShapeError
from graphcnn.ir import Graph
from graphcnn.runtime import CompiledModel

SAVED_SUFFIXES = (".gcm",)  # what gc.load reads; anything else: .onnx or a DSL file


def batch_sizes(max_batch: int) -> tuple[int, ...]:
    """(1, 2, 4, ..., max_batch): a partial batch pads up to the next one."""
    if type(max_batch) is not int or max_batch < 1:
        raise InputError(f"max_batch must be a positive int, got {max_batch!r}")
    sizes, n = [], 1
    while n < max_batch:
        sizes.append(n)
        n *= 2
    return (*sizes, max_batch)


class ServedModel:
    """A model at every batch size it serves, with the per-sample signature requests follow.

    `graph_for(n)`: the graph at batch n, or None for a model that runs only at `base`'s
    batch. `compile(graph)`: the target's compile (gc.compile with the server's options)."""

    def __init__(self, name: str, base: CompiledModel, graph_for: Callable[[int], Graph] | None,
                 compile: Callable[[Graph], CompiledModel], max_batch: int,
                 target: str = "llvm", pad: bool = True):
        self.name, self.target = name, target
        first = [t.shape[0] if t.shape else 0 for t in base.input_types.values()]
        own = first[0] if first else 0
        if not first or min(first) < 1 or any(b != own for b in first):
            raise ShapeError(f"model {name!r}: every input needs the batch as its first dim to "
                             f"be served; inputs {dict(base.input_types)}")
        self._graph_for, self._compile = graph_for, compile
        self._models: dict[int, CompiledModel] = {own: base}
        self._lock = threading.Lock()  # guards _size_locks; compiles run on worker threads
        self._size_locks: dict[int, threading.Lock] = {}  # one compile per size at a time
        if graph_for is None:
            # a fixed batch: pad up to it when the samples are independent, else fill it exactly
            self.sizes, self.max_batch, self.pad = (own,), own, pad
        else:
            self.sizes, self.max_batch, self.pad = batch_sizes(max_batch), max_batch, True
        # per sample: the input and output shapes without the batch
        self.inputs = [(n, np.dtype(t.dtype), tuple(t.shape[1:]))
                       for n, t in base.input_types.items()]
        self.outputs = [(n, np.dtype(t.dtype), tuple(t.shape[1:]))
                        for n, t in base.output_types.items()]
        # what the native calls compute in: the llvm build's precision (a saved model's too)
        self.precision = getattr(base, "options", {}).get("precision", "fp32")
        self.batch_outputs = {n for n, t in base.output_types.items()
                              if t.shape and t.shape[0] == own}

    # ----- loading ----------------------------------------------------------------------------
    @classmethod
    def from_path(cls, path: str, name: str | None = None, target: str = "llvm",
                  max_batch: int = 32, **options) -> ServedModel:
        """A saved model (.gcm, gc.load), an .onnx file or a DSL .py file
        (graphcnn/dsl_file.py)."""
        import graphcnn as gc

        if not os.path.exists(path):
            raise ModelLoadError(f"{path}: no such file")
        name = name or os.path.splitext(os.path.basename(path))[0]
        if path.endswith(SAVED_SUFFIXES):
            if target != "llvm":
                raise InputError(f"{path}: a saved model is llvm code; serve it with target "
                                 f"llvm, not {target}")
            base = gc.load(path, **({"threads": options["threads"]} if "threads" in options
                                    else {}))
            return cls(name, base, None, _no_compile, max_batch, target)
        from graphcnn.dsl_file import load_dsl_file

        def compile(g: Graph) -> CompiledModel:
            return gc.compile(g, target=target, **options)

        if path.endswith(".onnx"):
            graph = gc.from_onnx(path)

            def graph_for(n: int) -> Graph:
                return gc.from_onnx(path, batch=n)
        else:
            graph = load_dsl_file(path)
            proto = None

            def graph_for(n: int) -> Graph:
                nonlocal proto
                if graph.inputs and graph.inputs[0].type.shape[:1] == (n,):
                    return graph
                proto = proto if proto is not None else gc.to_onnx(graph)
                return gc.from_onnx(proto, batch=n)
        return cls.from_graph(name, graph, graph_for, compile, max_batch, target)

    @classmethod
    def from_graph(cls, name: str, graph: Graph, graph_for: Callable[[int], Graph],
                   compile: Callable[[Graph], CompiledModel], max_batch: int,
                   target: str = "llvm") -> ServedModel:
        """`graph` as loaded, `graph_for(n)` re-bound to batch n; a graph that cannot be
        re-bound (not batch-wise: ShapeError) serves at its own batch only."""
        try:
            base = compile(graph_for(1))
        except ShapeError:
            return cls(name, compile(graph), None, compile, max_batch, target, pad=False)
        return cls(name, base, graph_for, compile, max_batch, target)

    # ----- running ----------------------------------------------------------------------------
    def model_at(self, n: int) -> CompiledModel:
        """The variant compiled for batch n (one of `sizes`), compiled on first use."""
        model = self._models.get(n)
        if model is not None:  # compiled sizes never wait behind another size's compile
            return model
        with self._lock:
            lock = self._size_locks.setdefault(n, threading.Lock())
        with lock:
            model = self._models.get(n)
            if model is None:
                model = self._models[n] = self._compile(self._graph_for(n))
            return model

    def warm(self, stop: threading.Event | None = None) -> None:
        """Compile every batch size; `stop` set (a shutdown) ends it between two compiles."""
        for n in self.sizes:
            if stop is not None and stop.is_set():
                return
            self.model_at(n)

    def size_for(self, samples: int) -> int:
        return next(n for n in self.sizes if n >= samples)

    def samples(self, feeds: dict[str, np.ndarray], any_count: bool = False) -> int:
        """The request's sample count, after checking names, dtypes and per-sample shapes;
        at most max_batch unless `any_count` (predict splits them)."""
        names = [n for n, _, _ in self.inputs]
        unknown, missing = sorted(set(feeds) - set(names)), [n for n in names if n not in feeds]
        if unknown or missing:
            raise InputError(f"model {self.name!r}: unknown input(s) {unknown}, missing "
                             f"{missing}; inputs are {names}")
        counts = set()
        for n, dtype, shape in self.inputs:
            x = feeds[n]
            if x.dtype != dtype:
                raise InputError(f"input {n!r}: datatype {x.dtype} but the model takes {dtype}")
            if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
                raise InputError(f"input {n!r}: shape {list(x.shape)} but the model takes "
                                 f"[N, {', '.join(map(str, shape))}] (N samples)")
            counts.add(x.shape[0])
        if len(counts) != 1:
            raise InputError(f"inputs disagree on the batch (first dim): {sorted(counts)}")
        k = counts.pop()
        if any_count and k >= 1 and (self.pad or k % self.max_batch == 0):
            return k
        if not self.pad and k != self.max_batch:
            raise InputError(f"model {self.name!r} runs only at batch {self.max_batch} (its "
                             f"graph is not batch-wise): send exactly {self.max_batch} samples")
        if not 1 <= k <= self.max_batch:
            raise InputError(f"input batch {k}: this server takes 1 to {self.max_batch} samples "
                             f"per request")
        return k

    def run(self, requests: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Checked requests run as one call at the smallest compiled size that holds them."""
        counts = [next(iter(r.values())).shape[0] for r in requests]
        total = sum(counts)
        size = self.size_for(total)
        feeds = {}
        for n, dtype, shape in self.inputs:
            parts = [r[n] for r in requests]
            if size > total:
                parts.append(np.zeros((size - total, *shape), dtype))
            feeds[n] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        outs = self.model_at(size).run(feeds)
        results, start = [], 0
        for k in counts:
            results.append({n: (y[start:start + k] if n in self.batch_outputs else y)
                            for n, y in outs.items()})
            start += k
        return results

    def run_all(self, requests: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Any number of checked requests, in groups of at most max_batch samples (one call
        each); a request is never split."""
        results: list[dict[str, np.ndarray]] = []
        group: list[dict[str, np.ndarray]] = []
        total = 0
        for r in requests:
            k = next(iter(r.values())).shape[0]
            if group and total + k > self.max_batch:
                results += self.run(group)
                group, total = [], 0
            group.append(r)
            total += k
        return results + (self.run(group) if group else [])

    def predict(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Any number of samples (checked here): max_batch at a time, the outputs joined."""
        k = self.samples(feeds, any_count=True)
        step = self.max_batch
        parts = self.run_all([{n: x[i:i + step] for n, x in feeds.items()}
                              for i in range(0, k, step)])
        return {n: np.concatenate([p[n] for p in parts]) if n in self.batch_outputs
                else parts[0][n] for n in parts[0]}


def _no_compile(graph: Graph) -> CompiledModel:
    raise ModelLoadError("a saved model runs only at the batch it was compiled for")
