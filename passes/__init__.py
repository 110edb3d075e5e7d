"""Graph passes (installed as graphcnn.passes)."""
from __future__ import annotations

from graphcnn.ir import Graph
from graphcnn.verify import verify


def optimize(graph: Graph, opt_level: int = 2, **options) -> Graph:
    """Run the pipeline for `opt_level` on `graph` in place and return it."""
    verify(graph)
    return graph
