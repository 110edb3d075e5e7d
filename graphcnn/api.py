"""The front door: `compile` and `optimize`. Neither mutates the caller's graph."""
from __future__ import annotations

from typing import Any

from .errors import CompileError
from .hugepages import no_huge_page_advice
from .ir import Graph
from .opt_levels import DEFAULT_OPT_LEVEL, check_opt_level
from .runtime import CompiledModel
from .verify import verify


def optimize(graph: Graph, opt_level: int = DEFAULT_OPT_LEVEL, **options: Any) -> Graph:
    """Return an optimised copy of `graph` (see graphcnn.passes for what each level runs)."""
    from graphcnn.passes import optimize as run_pipeline

    if not isinstance(graph, Graph):
        raise CompileError(f"optimize() takes a gc.Graph, got {type(graph).__name__}")
    return run_pipeline(graph.copy(), opt_level=opt_level, **options)


def compile(graph: Graph, target: str = "llvm", opt_level: int | None = None,
            **options: Any) -> CompiledModel:
    """Compile a graph for a target: "llvm", "onnxruntime" or "reference".

    The reference target interprets the graph as given unless an opt_level is asked for; the
    others run the pass pipeline at `opt_level` (default: DEFAULT_OPT_LEVEL) first.
    """
    from graphcnn.backends import compile_for

    if not isinstance(graph, Graph):
        raise CompileError(f"compile() takes a gc.Graph, got {type(graph).__name__}")
    verify(graph)
    if opt_level is None:
        opt_level = 0 if target == "reference" else DEFAULT_OPT_LEVEL
    check_opt_level(opt_level)

    def pipeline(g: Graph) -> Graph:
        # the pipeline knows the target: layout and kernel choices are made for llvm only
        return optimize(g, opt_level=opt_level, target=target) if opt_level > 0 else g.copy()

    with no_huge_page_advice():  # model-sized, short-lived arrays (see graphcnn/hugepages.py)
        if target == "llvm":
            # the llvm backend looks its cache up on the graph as given, before the pipeline: a
            # hit skips the passes as well as lowering and code generation
            from graphcnn.backends.llvm import compile_graph

            return compile_graph(graph, opt_level, **options)
        return compile_for(target, pipeline(graph), **options)
