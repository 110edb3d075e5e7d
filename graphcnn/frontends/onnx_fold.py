"""Helper ops exporters emit to compute shapes and constants, folded at import time.

Each runs in numpy on constant inputs (graph shapes are static, so Shape always folds) and checks
its result's size against the limits before allocating it. A helper whose inputs depend on
runtime values is reported unsupported (the ops graphcnn runs on runtime data, Gather, Slice,
Cast, Expand, Where, ..., import through onnx_tensor).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir import Value
from .onnx_context import Context, importer

_LATEST = (21, 23, 24, 25)  # since_versions that only widened the type lists


def _sized(ctx: Context, shape, dtype) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    ctx.limits.check_tensor("result", shape, np.dtype(dtype).itemsize, ShapeError)
    return shape


def _shape_arg(ctx: Context, i: int, what: str = "shape") -> tuple[int, ...]:
    data = ctx.const(i, what)
    if data is None or data.ndim != 1 or data.dtype.kind not in "iu":
        raise ctx.shape_error(f"{what} must be a 1-D integer tensor")
    return tuple(int(d) for d in data)


@importer("Constant", (1, 9, 11, 12, 13, 19) + _LATEST,
          ("value", "value_float", "value_floats", "value_int", "value_ints"), fold_only=True)
def constant(ctx: Context) -> Value:
    if ctx.has_attr("value"):
        return ctx.constant(ctx.tensor(ctx.attr("value"), "value"))
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if ctx.has_attr(key):
            return ctx.constant(np.array(ctx.attr(key), dtype=dtype))
    raise ctx.unsupported("only tensor, float(s) and int(s) values are supported "
                          "(not sparse_value or strings)")


@importer("ConstantOfShape", (9, 20) + _LATEST, ("value",), fold_only=True)
def constant_of_shape(ctx: Context) -> Value:
    shape = _shape_arg(ctx, 0)
    fill = np.zeros(1, np.float32)
    if ctx.has_attr("value"):
        fill = ctx.tensor(ctx.attr("value"), "value")
        if fill.size != 1:
            raise ctx.shape_error(f"value must have one element, got {list(fill.shape)}")
    # a broadcast view: the limits are checked (ctx.constant) before the fill is allocated
    return ctx.constant(np.broadcast_to(fill.reshape(-1)[0], _sized(ctx, shape, fill.dtype)))


@importer("Shape", (1, 13, 15, 19) + _LATEST, ("start", "end"), fold_only=True)
def shape(ctx: Context) -> Value:
    dims = ctx.input(0).shape
    rank = len(dims)
    start, end = int(ctx.attr("start", 0)), ctx.attr("end")
    end = rank if end is None else int(end)
    start, end = (min(max(v + rank if v < 0 else v, 0), rank) for v in (start, end))
    return ctx.constant(np.array(dims[start:end], dtype=np.int64))


@importer("Size", (1, 13, 19) + _LATEST, fold_only=True)
def size(ctx: Context) -> Value:
    return ctx.constant(np.array(math.prod(ctx.input(0).shape), dtype=np.int64))


def _arith(ctx: Context, fn) -> Value:
    args = [ctx.const(i, f"input {i}") for i in range(len(ctx.inputs))]
    try:
        out_shape = np.broadcast_shapes(*(a.shape for a in args))
    except ValueError:
        raise ctx.shape_error(f"shapes {[list(a.shape) for a in args]} do not broadcast") from None
    _sized(ctx, out_shape, np.result_type(*args))
    with np.errstate(all="ignore"):
        return ctx.constant(fn(*args))


# the arithmetic graphcnn runs (Sub, Div, Neg, Floor, ...) is in the op tables; these compare
_ELEMENTWISE = {
    "Equal": ((7, 11, 13, 19), np.equal),
}
for _op, (_versions, _fn) in _ELEMENTWISE.items():
    importer(_op, _versions, fold_only=True)(lambda ctx, fn=_fn: _arith(ctx, fn))


@importer("Range", (11, 27), fold_only=True)
def range_(ctx: Context) -> Value:
    start, limit, delta = (ctx.const(i, n) for i, n in enumerate(("start", "limit", "delta")))
    if any(v.size != 1 for v in (start, limit, delta)) or float(delta) == 0:
        raise ctx.shape_error("start, limit and delta must be scalars, delta non-zero")
    count = max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
    _sized(ctx, (count,), start.dtype)
    return ctx.constant((start + np.arange(count) * delta).astype(start.dtype))
