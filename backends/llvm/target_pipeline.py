"""The llvm target's pass pipeline for one CPU: the only place the backend runs graph passes,
before planning (lowering rewrites nothing)."""
from __future__ import annotations

from graphcnn.ir import Graph

from .codegen import vector_width


def optimized(graph: Graph, opt_level: int, rewrites: bool, cpu: str,
              precision: str = "fp32") -> Graph:
    """A copy of `graph` through the llvm pass pipeline, the layout blocked at `cpu`'s vector
    width: at `opt_level`, and with `rewrites` at least level 2 (fusion and the blocked layout
    the fast kernels need); every level ends with the lowering passes that fuse pools,
    legalise convs and choose each kernel family (graphcnn.passes), and with `precision`
    "bf16" (resolved for the CPU: codegen.resolve_precision) the bf16 rewrite."""
    from graphcnn.passes import optimize  # not imported on a cache hit

    level = max(opt_level, 2) if rewrites else opt_level
    return optimize(graph.copy(), opt_level=level, target="llvm", block=vector_width(cpu),
                    precision=precision)
