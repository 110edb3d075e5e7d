"""The llvm backend's lowering driver: an optimised graph -> one LLVM module, in three stages.

    steps = plan(graph, vector_width)           # plan.py: each node's kernel family and plan
    placement = place(graph, steps)             # place.py: buffers, arena by liveness
    ctx = emit_model(graph, steps, placement)   # emit/model.py: kernels, pool, `run`

The graph must have had the llvm target's pass pipeline (graphcnn.passes, whose last passes
fuse pools, legalise convs and choose each kernel family): lowering rewrites nothing.
"""
from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from graphcnn import budgets
from graphcnn.ir import Graph

from .codegen import MODEL_PIPELINE, PipelinedModule
from .emit.model import emit_model
from .place import place
from .plan import plan


@dataclass
class Lowered:
    module: ir.Module
    weights: np.ndarray  # the packed-weights arena, uint8, 64-byte aligned
    workspace_bytes: int
    weights_bytes: int
    weights_symbol: str
    kernels: list[dict] = field(default_factory=list)  # per task: node, op, fn, tasks, work
    # the kernels/ plans' modules, each with its pipeline (emit.base.EmitContext.kernel)
    kernel_modules: list[PipelinedModule] = field(default_factory=list)

    @property
    def modules(self) -> list[PipelinedModule]:
        """Every module to compile and link, with its pipeline: the main one (pool, tasks,
        `run`) first."""
        return [(self.module, MODEL_PIPELINE)] + [(m, p) for m, p in self.kernel_modules
                                                  if m.globals]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: lowering builds ~10^5 llvmlite objects, and the
    full collections they trigger walk the whole heap, and touch every page a forked compile
    child shares (copy-on-write faults in both). The cycles left behind are collected once the
    collector runs again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_weights(graph: Graph) -> None:
    """The constants, before they are packed, within GRAPHCNN_MAX_WEIGHTS (budgets.py)."""
    constants = graph.constants
    budgets.check_bytes(sum(v.type.nbytes for v in constants), budgets.max_weights(),
                        f"graph {graph.name!r}: its constants", "GRAPHCNN_MAX_WEIGHTS",
                        ((f"%{v.name} {list(v.type.shape)}", v.type.nbytes) for v in constants))


def check_workspace(graph: Graph, workspace_bytes: int) -> None:
    """The planned activation arena within GRAPHCNN_MAX_WORKSPACE, before it is allocated."""
    budgets.check_bytes(workspace_bytes, budgets.max_workspace(),
                        f"graph {graph.name!r}: its activations", "GRAPHCNN_MAX_WORKSPACE",
                        ((f"%{v.name} ({n.op} {n.name!r})", v.type.nbytes)
                         for n in graph.nodes for v in n.outputs))


def lower(graph: Graph, vector_width: int, weights_symbol: str, profile: bool = False,
          on_kernel_module: Callable[[ir.Module, str], None] | None = None) -> Lowered:
    """Lower `graph`, which it does not change. With `profile`, `run` also adds each task's
    wall time (ns, clock_gettime) to the exported i64 array `graphcnn_profile`, one slot per
    task in order. `on_kernel_module(module, pipeline)` gets each kernel module as soon as it
    is complete (e.g. codegen.ObjectBuilder.submit, to compile it while lowering goes on);
    every one of them is in the result's `modules` as well."""
    with gc_paused():
        check_weights(graph)
        steps = plan(graph, vector_width)
        placement = place(graph, steps)
        check_workspace(graph, placement.workspace_bytes)
        ctx = emit_model(graph, steps, placement, vector_width, weights_symbol, profile,
                         on_kernel_module)
        kernels = [{"node": t.node, "op": t.op, "fn": t.fn.name, "tasks": t.num_tasks,
                    "work": t.work} for t in ctx.tasks]
        return Lowered(ctx.module, ctx.weights_blob(), placement.workspace_bytes,
                       ctx.weights_bytes, weights_symbol, kernels, ctx.kernel_modules)
