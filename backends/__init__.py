"""Backends (installed as graphcnn.backends): each turns a Graph into a CompiledModel.

`compile_for(target, graph, **options)` dispatches by target name; targets import lazily so the
numpy reference never pays for llvmlite or onnxruntime start-up.
"""
from __future__ import annotations

import importlib

from graphcnn.errors import CompileError

# target name -> module whose `compile(graph, **options)` returns a CompiledModel
TARGETS = {
    "reference": "graphcnn.backends.reference",
    "llvm": "graphcnn.backends.llvm",
    "onnxruntime": "graphcnn.backends.onnx.runtime",
}


def compile_for(target: str, graph, **options):
    if target not in TARGETS:
        raise CompileError(f"unknown target {target!r}; targets are {sorted(TARGETS)}")
    return importlib.import_module(TARGETS[target]).compile(graph, **options)


def available_targets() -> list[str]:
    """Targets this installation can run (llvm needs llvmlite, onnxruntime its package)."""
    found = []
    for target, module in TARGETS.items():
        try:
            if hasattr(importlib.import_module(module), "compile"):
                found.append(target)
        except ImportError:
            continue
    return found
