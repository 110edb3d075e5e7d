"""The llvm backend: the whole graph compiled through llvmlite into one native entry point.

    cm = gc.compile(graph, target="llvm", threads=None, cache=True, cpu="host")
    cm(x); cm.memory_bytes; cm.weights_bytes; cm.export_library("libnet.so")

Pipeline: lower.py (graph -> one LLVM module: kernels from emit/ and kernels/, the static memory
plan of memory.py, the thread pool of threads.py, the `run` entry) -> codegen.py (verify, O3,
object code for the host CPU) -> runtime.py (MCJIT-load the object, one ctypes call per
inference) or aot.py (shared library + C header). cache.py keeps object code per
(graph, options, CPU).

Threads: a persistent pool of (threads - 1) pthreads per compiled model, driven from the
generated code; each kernel's tasks are statically partitioned, so results are bit-identical
for any thread count (see threads.py). Input policy: the CompiledModel base (float64 rejected,
non-contiguous copied). Outputs are freshly allocated per call.
"""
from __future__ import annotations

import os
import time
from typing import Any

from graphcnn.errors import CompileError
from graphcnn.ir import Graph

from . import cache as compile_cache
from .codegen import compile_objects, cpu_and_features, vector_width
from .lower import lower
from .runtime import LLVMModel, default_threads


def compile(graph: Graph, threads: int | None = None, cache: bool = True, cpu: str = "host",
            rewrites: bool = True, profile: bool = False, **options: Any) -> LLVMModel:
    """Compile an (already optimised) graph to native code; see the module docstring.

    threads: worker count (default: all cores this process may use); cache: reuse object code
    (cache.py); cpu: "host" (default), "generic" (portable x86-64) or an LLVM CPU name;
    rewrites: run the level-2 llvm pass pipeline first (fusion, blocked layout) if the graph
    did not get it;
    profile: an instrumented build timing every kernel (see LLVMModel.profile).
    """
    if options:
        raise CompileError(f"unknown llvm option(s) {sorted(options)}; "
                           "known: threads, cache, cpu, rewrites, profile")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise CompileError(f"threads must be a positive int, got {threads!r}")
    threads = threads or default_threads()
    cpu_name, features = cpu_and_features(cpu)
    key = compile_cache.cache_key(graph, cpu_name, features, {"cpu": cpu, "rewrites": rewrites,
                                                                  "profile": profile})
    hit = compile_cache.load(key) if cache else None
    start = time.perf_counter()
    if hit is not None:
        obj, weights, manifest = hit
        from_cache = True
    else:
        symbol = f"graphcnn_weights_{key[:16]}"
        lowered = lower(graph.copy(), vector_width(cpu), symbol, rewrites, profile)
        obj = compile_objects(lowered.modules, cpu)
        weights = lowered.weights
        manifest = {"weights_symbol": symbol, "workspace_bytes": lowered.workspace_bytes,
                    "weights_bytes": lowered.weights_bytes, "cpu": cpu_name,
                    "kernels": lowered.kernels}
        if cache:
            compile_cache.store(key, obj, weights, manifest)
        from_cache = False
    model = LLVMModel(graph, obj, weights, manifest, threads, cpu, {"rewrites": rewrites},
                      from_cache, profile)
    model.compile_seconds = time.perf_counter() - start
    return model


def export_library(graph: Graph, path: str | os.PathLike, **options: Any) -> str:
    """gc.compile(graph, target="llvm") then write `path` (.so) + header; returns the header path.
    Options: opt_level, cpu."""
    from .aot import export_library as export

    return export(graph, path, **options)


__all__ = ["LLVMModel", "compile", "export_library"]
