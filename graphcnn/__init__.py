"""graphcnn: a compiler for convolutional neural networks.

Define a model with the DSL (or import ONNX), optimise the graph, run it on the numpy reference,
as native code through LLVM, or on onnxruntime.
"""
from __future__ import annotations

from .api import compile, optimize
from .dsl import (
    ELU,
    GELU,
    LRN,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose2d,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2d,
    GlobalMaxPool1d,
    GlobalMaxPool2d,
    GraphBuilder,
    GroupNorm,
    Hardswish,
    Identity,
    InstanceNorm2d,
    Layer,
    LayerNorm,
    LeakyReLU,
    Linear,
    LocalResponseNorm,
    LogSoftmax,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    Mish,
    ReLU,
    ReLU6,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    SumPool1d,
    SumPool2d,
    Tanh,
    Tensor,
    Upsample,
    ZeroPad2d,
    add,
    concat,
    manual_seed,
    mul,
    reshape,
    transpose,
)
from .errors import (
    CompileError,
    GraphcnnError,
    GraphError,
    InputError,
    ModelLoadError,
    PrecisionWarning,
    ShapeError,
    UnsupportedOpError,
)
from .ir import Graph, Node, TensorType, Value
from .runtime import CompiledModel
from .verify import verify
from .version import __version__


def to_onnx(graph: Graph, **options):
    """The graph as an onnx.ModelProto (see graphcnn.backends.onnx.export for the opset)."""
    from graphcnn.backends.onnx.export import to_onnx as _to_onnx

    return _to_onnx(graph, **options)


def export_onnx(graph: Graph, path: str, **options) -> None:
    from graphcnn.backends.onnx.export import export_onnx as _export

    _export(graph, path, **options)


def load(path, threads: int | None = None) -> CompiledModel:
    """A model saved with cm.save(path) (llvm target), ready to run without recompiling; a
    file that is not one, is damaged, or was built for CPU features this one lacks is a
    ModelLoadError (graphcnn/backends/llvm/saved.py)."""
    from graphcnn.backends.llvm.saved import load as _load

    return _load(path, threads=threads)


def from_onnx(model, input_shapes=None, progress=False, **options) -> Graph:
    """Import an ONNX model (path, bytes or onnx.ModelProto) as a Graph.

    A model file imported before and unchanged since is restored from its import snapshot
    (graphcnn/frontends/onnx_snapshot.py: no onnx import, weights read on first use).
    `progress=True` shows the nodes imported on stderr when it is a terminal; a callable gets
    `fn(stage, done, total, detail)` (graphcnn/progress.py)."""
    from .frontends import onnx_snapshot
    from .progress import reporting, sink_for

    with reporting(sink_for(progress)):
        graph = onnx_snapshot.load(model, input_shapes, options)
        if graph is not None:
            return graph
        from .frontends.onnx import from_onnx as _from_onnx

        return _from_onnx(model, input_shapes=input_shapes, **options)


__all__ = [
    "ELU",
    "GELU",
    "LRN",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BatchNorm1d",
    "BatchNorm2d",
    "CompileError",
    "CompiledModel",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose2d",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAvgPool2d",
    "GlobalMaxPool1d",
    "GlobalMaxPool2d",
    "Graph",
    "GraphBuilder",
    "GraphError",
    "GraphcnnError",
    "GroupNorm",
    "Hardswish",
    "Identity",
    "InputError",
    "InstanceNorm2d",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LocalResponseNorm",
    "LogSoftmax",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "Mish",
    "ModelLoadError",
    "Node",
    "PrecisionWarning",
    "ReLU",
    "ReLU6",
    "Sequential",
    "ShapeError",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "SumPool1d",
    "SumPool2d",
    "Tanh",
    "Tensor",
    "TensorType",
    "UnsupportedOpError",
    "Upsample",
    "Value",
    "ZeroPad2d",
    "__version__",
    "add",
    "compile",
    "concat",
    "export_onnx",
    "from_onnx",
    "load",
    "manual_seed",
    "mul",
    "optimize",
    "reshape",
    "to_onnx",
    "transpose",
    "verify",
]
