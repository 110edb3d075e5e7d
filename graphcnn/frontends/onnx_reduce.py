"""ONNX import of the reductions (graphcnn.ops.REDUCTIONS), LogSoftmax and the normalisations
LayerNormalization and InstanceNormalization.

Reductions take `axes` as an attribute before the table's `axes_input_since` opset and as an
optional input from it on; that input must be known at import time (an initializer or a
constant-foldable subgraph), else the node is unsupported. An empty or omitted axes means every
axis, or nothing at all with noop_with_empty_axes=1 (an identity).
"""
from __future__ import annotations

from ..ir import Value
from ..ops.reduce import REDUCTIONS, Reduction
from .onnx_context import Context, importer
from .onnx_ops import import_softmax


def _reduction(r: Reduction) -> None:
    def fn(ctx: Context) -> Value:
        x = ctx.input(0)
        keepdims = ctx.attr("keepdims", 1)
        if keepdims not in (0, 1):
            raise ctx.shape_error(f"keepdims {keepdims} must be 0 or 1")
        if ctx.version < r.axes_input_since:
            axes = [int(a) for a in ctx.attr("axes", [])]
        else:
            data = ctx.const(1, "axes")
            if data is not None and (data.ndim > 1 or data.dtype.kind not in "iu"):
                raise ctx.shape_error(f"axes must be a 1-D integer tensor, got {data.dtype}"
                                      f"{list(data.shape)}")
            axes = [] if data is None else [int(a) for a in data.reshape(-1)]
            if not axes and ctx.attr("noop_with_empty_axes", 0):
                return ctx.emit("identity", [x])
        return ctx.emit(r.name, [x], {"axes": axes, "keepdims": int(keepdims)})

    attrs = ["axes", "keepdims"] + (["noop_with_empty_axes"]
                                    if r.versions[-1] >= r.axes_input_since else [])
    importer(r.onnx, r.versions, attrs,
             notes=f"opset >= {r.axes_input_since}: the axes input must be a constant")(fn)


for _r in REDUCTIONS.values():
    _reduction(_r)


@importer("LogSoftmax", (1, 11, 13), ("axis",),
          notes="before opset 13: flatten to 2-D at axis, log_softmax, reshape back")
def log_softmax(ctx: Context) -> Value:
    return import_softmax(ctx, "log_softmax")
