"""A DSL model file: a Python file defining `graph`, `build()` or `model` + `input_shape`.

What `graphcnn show/run/export/serve model.py` load (cli.load_model, serve.ServedModel)."""
from __future__ import annotations

import os
import runpy

from .errors import GraphcnnError, ModelLoadError
from .ir import Graph


def load_dsl_file(path: str) -> Graph:
    from .dsl import Layer

    try:
        scope = runpy.run_path(path, run_name="graphcnn_model")
    except GraphcnnError:
        raise
    except Exception as e:
        raise ModelLoadError(f"{path}: running the model file failed: {type(e).__name__}: {e}") from e
    if isinstance(scope.get("graph"), Graph):
        return scope["graph"]
    if callable(scope.get("build")):
        graph = scope["build"]()
        if isinstance(graph, Graph):
            return graph
    if isinstance(scope.get("model"), Layer) and "input_shape" in scope:
        name = os.path.splitext(os.path.basename(path))[0]
        return scope["model"].build(tuple(scope["input_shape"]), name=name)
    raise ModelLoadError(f"{path}: define `graph` (a gc.Graph), `build()` returning one, or "
                         "`model` (a layer such as gc.Sequential) and `input_shape`")
