"""The llvm backend: the whole graph compiled through llvmlite into one native entry point.

    cm = gc.compile(graph, target="llvm", threads=None, cache=True, cpu="host")
    cm(x); cm.memory_bytes; cm.weights_bytes; cm.export_library("libnet.so")

Stages, top to bottom:
0. passes: the llvm target's pass pipeline (graphcnn.passes.optimize, run once by `compile`,
   `compile_graph` or aot.py through target_pipeline.optimized) does every graph rewrite: fusion,
   blocked layout, strided-1x1 split, channel shuffle, pool fusion, conv legalisation and the
   kernel family of each conv, gemm and matmul;
1. plan.py: graph -> kernel steps, the kernels/ plan (tile sizes, task split, cost) of each
   node's family; the one place a plan is built;
2. place.py: steps -> buffer locations: the caller's inputs and outputs, views on their source,
   in-place concat slices, residuals written over in place, the workspace arena by liveness
   (memory.py);
3. emit/model.py: steps + locations -> one LLVM module with `run` (emit/ per op family, the
   kernels/ plans in kernel modules of their own, the thread pool of threads.py); lower.py
   drives 1-3;
4. codegen.py: verify, a named pass pipeline per module, object code for the CPU (kernel
   modules compile in forked children while emission goes on), then runtime.py (MCJIT-load the
   object, one ctypes call per inference) or aot.py (shared library + C header).
cache.py keeps object code per (graph, options, CPU); gc.compile looks it up on the graph as
the user gave it, before the pass pipeline (compile_graph), so a hit costs verifying and
hashing the graph and loading the object, nothing else.

Threads: one persistent native pool per process (process_pool.py), shared by every model and
sized by the largest `threads=` asked; each kernel's tasks are claimed in chunks, each thread's
own share (home) first, and every task sums in a fixed order, so results are bit-identical for
any thread count (see threads.py). Input policy: the CompiledModel base (float64 rejected,
non-contiguous copied). Outputs are freshly allocated per call.
"""
from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from graphcnn import progress
from graphcnn.errors import CompileError
from graphcnn.ir import Graph

from . import cache as compile_cache
from . import saved
from .codegen import cpu_and_features, resolve_precision, vector_width
from .runtime import LLVMModel, default_threads
from .target_pipeline import optimized


def _checked_threads(threads: int | None, options: dict) -> int:
    if options:
        raise CompileError(f"unknown llvm option(s) {sorted(options)}; "
                           "known: threads, cache, cpu, rewrites, profile, precision")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise CompileError(f"threads must be a positive int, got {threads!r}")
    return threads or default_threads()


def _code_options(cpu: str, rewrites: bool, profile: bool, precision: str) -> dict:
    return {"cpu": cpu, "rewrites": rewrites, "profile": profile, "precision": precision}


def compile(graph: Graph, threads: int | None = None, cache: bool = True, cpu: str = "host",
            rewrites: bool = True, profile: bool = False, precision: str = "fp32",
            **options: Any) -> LLVMModel:
    """Compile a graph to native code; see the module docstring.

    threads: worker count (default: all cores this process may use); cache: reuse object code
    (cache.py); cpu: "host" (default), "generic" (portable x86-64) or an LLVM CPU name;
    rewrites: run the level-2 llvm pass pipeline (fusion, blocked layout) on the graph, else
    only the rewrites the kernels need;
    profile: an instrumented build timing every kernel (see LLVMModel.profile);
    precision: "fp32" (default) or "bf16": convs on bf16 activations and weights with float32
    sums where the CPU has AVX512-BF16, else float32 with a PrecisionWarning
    (passes/precision.py).
    """
    threads = _checked_threads(threads, options)
    precision = resolve_precision(precision, cpu)
    return _build(optimized(graph, 0, rewrites, cpu, precision), threads, cache, cpu, rewrites,
                  profile, precision)


def compile_graph(graph: Graph, opt_level: int, threads: int | None = None, cache: bool = True,
                  cpu: str = "host", rewrites: bool = True, profile: bool = False,
                  precision: str = "fp32", **options: Any) -> LLVMModel:
    """gc.compile's llvm path: `graph` as the user gave it (verified), compiled after the llvm
    pass pipeline at `opt_level` (`optimized`).

    The cache is looked up on the graph *before* the pipeline (cache.source_key), so a hit
    skips the passes as well as lowering and code generation; the model's `graph` (the
    optimised one) is then derived only if asked for. A miss runs the pipeline and stores the
    entry under the same key.
    """
    threads = _checked_threads(threads, options)
    precision = resolve_precision(precision, cpu)
    cache = cache and compile_cache.enabled()
    start = time.perf_counter()
    key = None
    if cache:
        cpu_name, features = cpu_and_features(cpu)
        key = compile_cache.source_key(graph, opt_level, cpu_name, features,
                                       _code_options(cpu, rewrites, profile, precision))
        hit = compile_cache.load(key)
        if hit is not None and hit[2].get("io") == compile_cache.io_signature(graph):
            source = graph.copy()  # the caller may edit theirs later; constants are shared
            obj, weights, manifest = hit
            model = LLVMModel(source, obj, weights, manifest, threads, cpu,
                              {"rewrites": rewrites, "precision": precision}, True, profile,
                              derive_graph=lambda: optimized(source, opt_level, rewrites, cpu,
                                                             precision))
            model.compile_seconds = time.perf_counter() - start
            return model
    work = optimized(graph, opt_level, rewrites, cpu, precision)
    if key is not None and compile_cache.io_signature(work) != compile_cache.io_signature(graph):
        key = None  # a hit could not rebuild the model from the user's graph: key it optimised
    model = _build(work, threads, cache, cpu, rewrites, profile, precision, key=key)
    model.compile_seconds = time.perf_counter() - start
    return model


def _build(graph: Graph, threads: int, cache: bool, cpu: str, rewrites: bool, profile: bool,
           precision: str, key: str | None = None) -> LLVMModel:
    """The optimised `graph` to a model: the cache entry `key` (default: the optimised graph's
    own key) if there is one, else lowering and code generation (stored under `key`)."""
    options = _code_options(cpu, rewrites, profile, precision)
    cache = cache and compile_cache.enabled()  # GRAPHCNN_CACHE=off: neither look up nor store
    if cache and key is None:
        cpu_name, features = cpu_and_features(cpu)
        key = compile_cache.cache_key(graph, cpu_name, features, options)
    hit = compile_cache.load(key) if cache else None
    start = time.perf_counter()
    if hit is not None:
        obj, weights, manifest = hit
        from_cache = True
    else:
        from .codegen import ObjectBuilder, compile_objects
        from .lower import gc_paused, lower  # not imported on a hit: the emitters take ~40 ms

        symbol = f"graphcnn_weights_{key[:16]}" if key else compile_cache.weights_symbol(graph)
        # kernel modules compile in forked children as lowering completes them, so LLVM runs
        # alongside the rest of the (Python) lowering; no garbage collection meanwhile (see
        # gc_paused: it would walk the heap the children share)
        builder = ObjectBuilder(cpu)
        try:
            with gc_paused():
                progress.report("lower", 0, 1, graph.name)
                lowered = lower(graph, vector_width(cpu), symbol, profile,
                                on_kernel_module=builder.submit)
                progress.report("lower", 1, 1)
                obj = compile_objects(lowered.modules, cpu, builder=builder)
        finally:
            builder.close()
        weights = lowered.weights
        manifest = {"weights_symbol": symbol, "workspace_bytes": lowered.workspace_bytes,
                    "weights_bytes": lowered.weights_bytes,
                    "cpu": cpu_and_features(cpu)[0], "kernels": lowered.kernels,
                    "io": compile_cache.io_signature(graph)}
        if cache:
            compile_cache.store(key, obj, weights, manifest)
        from_cache = False
    model = LLVMModel(graph, obj, weights, manifest, threads, cpu,
                      {"rewrites": rewrites, "precision": precision}, from_cache, profile)
    if not from_cache:
        del lowered
        _return_freed_memory()
    model.compile_seconds = time.perf_counter() - start
    return model


def _return_freed_memory() -> None:
    """Lowering allocates and frees about twice the packed weights (folded and packed copies,
    IR text); glibc keeps freed heap pages, so a process that compiled ResNet-50 stayed
    ~130 MB bigger than it needs to be. Hand them back to the system (glibc only; ~ms)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


LLVMModel.compiler = staticmethod(compile)
LLVMModel.save = saved.save_method
LLVMModel.__reduce__ = saved.reduce_method


def export_library(graph: Graph, path: str | os.PathLike, **options: Any) -> str:
    """gc.compile(graph, target="llvm") then write `path` (.so) + header; returns the header path.
    Options: opt_level, cpu, precision."""
    from .aot import export_library as export

    return export(graph, path, **options)


__all__ = ["LLVMModel", "compile", "compile_graph", "export_library", "optimized"]
