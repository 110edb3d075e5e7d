"""The front door: `compile` and `optimize`. Neither mutates the caller's graph."""
from __future__ import annotations

from typing import Any

from . import budgets
from .errors import CompileError, InvalidOptionError, UnsupportedOpError
from .hugepages import no_huge_page_advice
from .ir import Graph
from .ops.opaque import opaque_ops
from .opt_levels import DEFAULT_OPT_LEVEL, check_opt_level
from .precisions import check_precision
from .progress import reporting, sink_for
from .runtime import CompiledModel
from .taps import Recipe
from .verify import verify


def optimize(graph: Graph, opt_level: int = DEFAULT_OPT_LEVEL, **options: Any) -> Graph:
    """Return an optimised copy of `graph` (see graphcnn.passes for what each level runs)."""
    from graphcnn.passes import optimize as run_pipeline

    if not isinstance(graph, Graph):
        raise CompileError(f"optimize() takes a gc.Graph, got {type(graph).__name__}")
    return run_pipeline(graph.copy(), opt_level=opt_level, **options)


def compile(graph: Graph, target: str = "llvm", opt_level: int | None = None,
            fallback: str | None = None, batch: str | None = None, progress: object = False,
            **options: Any) -> CompiledModel:
    """Compile a graph for a target: "llvm", "onnxruntime" or "reference".

    The reference target interprets the graph as given unless an opt_level is asked for; the
    others run the pass pipeline at `opt_level` (default: DEFAULT_OPT_LEVEL) first.

    A graph imported with `from_onnx(..., unsupported="keep")` may hold `onnx_node`s (ONNX nodes
    without a graphcnn op): the llvm target refuses them, listing every one, unless
    `fallback="onnxruntime"`, which runs them on onnxruntime and the rest natively
    (backends/fallback.py; `cm.placement` says where each node runs).

    `batch="dynamic"` returns a model that takes any batch size N >= 1 on axis 0 of every input
    (graphcnn/dynamic_batch.py): the graph, proved batch-wise here (a CompileError names the node
    that mixes samples), is compiled re-batched to N on the first call with N, and the models of
    the 4 most recently used sizes are kept in memory.

    `cm.run(feeds, taps=[...])` and `cm.tensor_names()` compile the same recipe again with
    tapped values kept (graphcnn/taps.py).

    `precision="bf16"` (llvm): convs compute on bf16 activations and weights with float32 sums
    where the CPU has AVX512-BF16 (passes/precision.py); elsewhere float32, with a
    PrecisionWarning. "fp32" is the default.

    `progress=True` shows each pass and kernel-module compile on one stderr line when stderr
    is a terminal; a callable gets them as `fn(stage, done, total, detail)` (progress.py).
    """
    with reporting(sink_for(progress)), budgets.deadline():
        return _checked(graph, target, opt_level, fallback, batch, progress, options)


def _checked(graph: Graph, target: str, opt_level: int | None, fallback: str | None,
             batch: str | None, progress: object, options: dict[str, Any]) -> CompiledModel:
    if not isinstance(graph, Graph):
        raise CompileError(f"compile() takes a gc.Graph, got {type(graph).__name__}")
    if fallback not in (None, "onnxruntime"):
        raise InvalidOptionError(f"fallback must be None or 'onnxruntime', got {fallback!r}")
    if batch not in (None, "dynamic"):
        raise InvalidOptionError(f"batch must be None or 'dynamic', got {batch!r}")
    verify(graph)
    budgets.check_nodes(len(graph.nodes), f"graph {graph.name!r}")
    precision = check_precision(options.get("precision", "fp32"))
    if target != "llvm":
        if precision != "fp32":
            raise InvalidOptionError(f"precision={precision!r} is an option of the llvm target "
                                     f"(bf16 kernels), not of {target!r}")
        options.pop("precision", None)
    if opt_level is None:
        opt_level = 0 if target == "reference" else DEFAULT_OPT_LEVEL
    check_opt_level(opt_level)
    if batch == "dynamic":
        from graphcnn.backends import TARGETS

        from .dynamic_batch import DynamicBatchModel

        if target not in TARGETS:
            raise CompileError(f"unknown target {target!r}; targets are {sorted(TARGETS)}")
        return DynamicBatchModel(graph.copy(), target, lambda g: compile(
            g, target=target, opt_level=opt_level, fallback=fallback, progress=progress,
            **options))
    recipe = Recipe(graph.copy(), compile, target, opt_level, fallback, dict(options))
    try:
        model = _compile(graph, target, opt_level, fallback, options)
    except MemoryError as e:  # within the budgets, but more than this process may have
        constants = [(f"%{v.name} {list(v.type.shape)}", v.type.nbytes) for v in graph.constants]
        raise CompileError(f"graph {graph.name!r}: out of memory compiling for {target} ({e}); "
                           f"the largest constants: {budgets.largest(constants) or 'none'} "
                           "(GRAPHCNN_MAX_WEIGHTS / GRAPHCNN_MAX_WORKSPACE lower the budgets, "
                           "so such a model fails before allocating)") from None
    model._recipe = recipe
    return model


def _compile(graph: Graph, target: str, opt_level: int, fallback: str | None,
             options: dict[str, Any]) -> CompiledModel:
    from graphcnn.backends import compile_for

    opaque = opaque_ops(graph.nodes)
    if target == "llvm" and opaque:
        if fallback is None:
            total = sum(len(v) for v in opaque.values())
            listing = "; ".join(f"{op} x{len(names)} ({', '.join(names[:5])})"
                                for op, names in sorted(opaque.items()))
            raise UnsupportedOpError(
                f"the llvm target has no kernels for {len(opaque)} ONNX op type(s) in {total} "
                f"node(s): {listing}; compile with fallback='onnxruntime' to run them there",
                opaque)
        from graphcnn.backends.fallback import FallbackModel

        with no_huge_page_advice():
            return FallbackModel(graph, opt_level, **options)

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
