"""LLVMModel: the object code JIT-loaded into the process, one ctypes call per inference.

At construction: the object file is added to an MCJIT engine (the same path for a fresh
compile and a cache hit — no LLVM optimisation or codegen on a hit), the weights arena symbol
is bound to a 64-byte aligned numpy buffer and the calls into the process-wide thread pool to
its functions (process_pool.py; the pool grows to this model's thread count if it has fewer),
the workspace arena is allocated once, and the ctypes pointer tables for inputs and outputs are
built once.

Per call: input pointers are written into the prepared table, outputs are *allocated fresh*
(np.empty) so a returned array is never overwritten by a later call, then `run` is called once
(ctypes releases the GIL). A lock serialises calls from several Python threads, since they
share the workspace. Dropping the model releases its engine, code and arenas; the pool stays
for the next model (no thread runs a model's code once its call has returned).

On a cache hit of gc.compile the pass pipeline did not run: the model is built from the
caller's graph (a copy; its inputs and outputs equal the optimised graph's, which the cache
entry records) and `graph`, the optimised graph, is derived on first use.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable, Sequence

import llvmlite.binding as llvm
import numpy as np

from graphcnn import budgets
from graphcnn.errors import InputError
from graphcnn.hugepages import huge_page_advice
from graphcnn.ir import Graph
from graphcnn.runtime import CompiledModel, Signature

from .codegen import init_llvm, target_machine
from .process_pool import shared_pool
from .threads import THREADS_SYMBOL

RUN_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
# what each op whose kernel checks its runtime data reports when the check fails
RUNTIME_CHECKS = {"gather": "an index (token id) is outside [-n, n) for the gathered axis of "
                            "size n; nothing was read outside the table"}
PROFILE_WARMUP_S = 0.05  # untimed calls before `profile` times its runs
_jit_lock = threading.Lock()  # add_symbol is process-wide: bind + finalize atomically


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def weights_array(blob) -> np.ndarray:
    """The weights arena as a 64-byte aligned read-only numpy buffer (bytes, an array or a
    memory map; an aligned array is used as is, without a copy). Here rather than in lower.py
    so that loading a cached model never imports the lowering and its emitters."""
    if isinstance(blob, np.ndarray) and blob.dtype == np.uint8 and blob.ctypes.data % 64 == 0 \
            and blob.flags.c_contiguous:
        arena = blob
    else:
        raw = np.empty(len(blob) + 64, dtype=np.uint8)
        start = (-raw.ctypes.data) % 64
        arena = raw[start:start + len(blob)]
        arena[:] = np.frombuffer(blob, dtype=np.uint8)
    arena.flags.writeable = False
    return arena


def _address(array: np.ndarray) -> int:
    """The data address of a C-contiguous array. Through the buffer protocol for a writable
    one (`array.ctypes.data` builds a ctypes interface object, about three times slower and
    a visible share of a small model's call), else through numpy's interface."""
    if array.flags.writeable and array.nbytes:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    return array.ctypes.data


class LLVMModel(CompiledModel):
    target = "llvm"
    # the backend's compile(), for the instrumented build `profile` makes; set by the package
    # (backends/llvm/__init__.py), which imports this module, so this one need not import it
    compiler: Callable[..., LLVMModel] | None = None

    def __init__(self, graph: Graph | None, obj: bytes | list[bytes], weights, manifest: dict,
                 threads: int, cpu: str, options: dict, from_cache: bool,
                 instrumented: bool = False, derive_graph: Callable[[], Graph] | None = None,
                 signature: Signature | None = None):
        """`graph` is the optimised graph, or with `derive_graph` the graph the optimised one
        is derived from when first asked for (same inputs and outputs); a model loaded from a
        file (saved.py) has only its `signature`, and a `derive_graph` that says so."""
        super().__init__(graph, signature)
        self._derive_graph = derive_graph
        if derive_graph is not None:
            self._graph = None
        self._objects = [obj] if isinstance(obj, bytes) else list(obj)  # for save and pickle
        init_llvm()
        self.manifest = manifest
        self.options = options
        self.cpu = cpu
        self.from_cache = from_cache
        self.memory_bytes = int(manifest["workspace_bytes"])
        self.weights_bytes = int(manifest["weights_bytes"])
        # a cache entry or saved file made under larger budgets: refused before allocating
        budgets.check_bytes(self.memory_bytes, budgets.max_workspace(),
                            f"model {self._name!r}: its activations", "GRAPHCNN_MAX_WORKSPACE",
                            [("the workspace arena", self.memory_bytes)])
        self._weights = weights_array(weights)
        with huge_page_advice(True):  # hot on every call (compile turns the advice off)
            self._workspace = np.empty(self.memory_bytes + 64, dtype=np.uint8)
        ws_ptr = self._workspace.ctypes.data
        self._ws_ptr = ctypes.c_void_p(ws_ptr + (-ws_ptr) % 64)

        pool = shared_pool()  # its functions are process symbols before the model links
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine(cpu))
        for part in ([obj] if isinstance(obj, bytes) else obj):  # main + kernel modules
            engine.add_object_file(llvm.ObjectFileRef.from_data(part))
        with _jit_lock:
            llvm.add_symbol(manifest["weights_symbol"], self._weights.ctypes.data)
            engine.finalize_object()
        self._engine = engine
        self._run = RUN_TYPE(engine.get_function_address("run"))
        self.threads = min(threads, pool.ensure(threads)) if threads > 1 else 1
        ctypes.c_int64.from_address(engine.get_global_value_address(THREADS_SYMBOL)).value = \
            self.threads

        self._in_table = (ctypes.c_void_p * max(1, len(self.input_names)))()
        self._out_table = (ctypes.c_void_p * max(1, len(self.output_names)))()
        self._in_address = ctypes.addressof(self._in_table)
        self._out_address = ctypes.addressof(self._out_table)
        self._out_specs = [(t.shape, np.dtype(t.dtype)) for _, t in self._signature[2]]
        self._single = None  # (input shape, dtype, output shape, dtype) of a 1-in 1-out model
        if len(self.input_names) == 1 and len(self.output_names) == 1:
            x = self.input_types[self.input_names[0]]
            self._single = (tuple(x.shape), np.dtype(x.dtype), *self._out_specs[0])
        self._lock = threading.Lock()
        self._requested_threads = threads
        self._profile_counters = None
        self._instrumented: LLVMModel | None = None
        if instrumented:
            address = engine.get_global_value_address("graphcnn_profile")
            slots = max(1, len(manifest["kernels"]))
            self._profile_counters = (ctypes.c_int64 * slots).from_address(address)

    @property
    def graph(self) -> Graph:
        """The optimised graph this model runs (derived now if the compile was a cache hit)."""
        if self._graph is None:
            self._graph = self._derive_graph()
        return self._graph

    @graph.setter
    def graph(self, graph: Graph) -> None:
        self._graph = graph
        self._name = graph.name  # the optimised graph keeps its name: repr needs no derivation

    def __repr__(self) -> str:
        return (f"<CompiledModel {self._name!r} target={self.target} inputs={self.input_names} "
                f"outputs={self.output_names}>")

    # save(path) and __reduce__ (pickles as a saved file's bytes) are saved.py's, set by the
    # package (backends/llvm/__init__.py) like `compiler`, so this module need not import it

    @property
    def kernels(self) -> list[dict]:
        """What runs, in order: node, op, LLVM function, task count, work (~flops)."""
        return list(self.manifest["kernels"])

    def _profile(self, inputs: Sequence[np.ndarray], runs: int) -> list[dict]:
        """Per-kernel mean wall time over `runs` calls of an instrumented build of the same
        kernels (compiled once, on first use): [{node, op, seconds, flops, tasks}]."""
        if self._profile_counters is None:
            if self._instrumented is None:
                self._instrumented = LLVMModel.compiler(self.graph, threads=self._requested_threads,
                                                  cache=False, cpu=self.cpu, profile=True,
                                                  **self.options)
            return self._instrumented._profile(inputs, runs)
        # warm-up: the instrumented build is fresh (cold pages, caches and pool), and its first
        # calls ran CIFAR VGG's kernels ~2x slower than the timed benchmark calls
        deadline = time.perf_counter() + PROFILE_WARMUP_S
        self(*inputs)
        while time.perf_counter() < deadline:
            self(*inputs)
        for k in range(len(self.manifest["kernels"])):
            self._profile_counters[k] = 0
        for _ in range(runs):
            self(*inputs)
        return [{"node": kern["node"], "op": kern["op"], "flops": kern["work"],
                 "tasks": kern["tasks"], "seconds": self._profile_counters[k] / 1e9 / runs}
                for k, kern in enumerate(self.manifest["kernels"])]

    def __call__(self, *inputs):
        """The common call spelled out: one C-contiguous ndarray of the exact shape and dtype
        into a one-output model, with the fewest Python steps: right after a native run, whose
        data has evicted the interpreter's from the caches, each costs several times its
        microbenchmark, a visible share of a small model's call. Every other call goes
        through the generic checks (CompiledModel.__call__): same policy."""
        if self._single is not None and len(inputs) == 1:
            x = inputs[0]
            shape, dtype, out_shape, out_dtype = self._single
            if (type(x) is np.ndarray and x.shape == shape and x.dtype == dtype
                    and x.flags.c_contiguous):
                y = np.empty(out_shape, out_dtype)
                with self._lock:
                    self._in_table[0] = _address(x)
                    self._out_table[0] = _address(y)
                    status = self._run(self._in_address, self._out_address, self._ws_ptr)
                if status:
                    raise self._failed(status)
                return y
        return super().__call__(*inputs)

    def _execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        outs = [np.empty(shape, dtype) for shape, dtype in self._out_specs]
        with self._lock:
            for i, x in enumerate(inputs):
                self._in_table[i] = _address(x)
            for j, y in enumerate(outs):
                self._out_table[j] = _address(y)
            status = self._run(self._in_address, self._out_address, self._ws_ptr)
        if status:
            raise self._failed(status)
        return outs

    def _failed(self, status: int) -> InputError:
        """The InputError for a nonzero `run` status: the 1-based index of the kernel (in the
        manifest's list) that found its runtime data invalid."""
        kernels = self.manifest["kernels"]
        if not 1 <= status <= len(kernels):
            return InputError(f"{self._name}: the native run failed with status {status}")
        kernel = kernels[status - 1]
        return InputError(f"node {kernel['node']!r} ({kernel['op']}): "
                          f"{RUNTIME_CHECKS.get(kernel['op'], 'invalid runtime data')}")

    def export_library(self, path: str | os.PathLike, name: str | None = None) -> str:
        """Write `path` (a shared library) and the C header beside it; returns the header path.
        `name` prefixes its symbols and macros (default: from the file name; see aot.py)."""
        from .aot import export_library

        return export_library(self.graph, path, cpu=self.cpu, _optimized=True, name=name,
                              **self.options)
