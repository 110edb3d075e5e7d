"""Helper ops exporters emit to compute shapes and constants, folded at import time.

Each runs in numpy on constant inputs (graph shapes are static, so Shape always folds) and checks
its result's size against the limits before allocating it. A helper whose inputs depend on
runtime values is reported unsupported, except where the IR can express it (Cast to the same
dtype is an identity, Expand of a runtime tensor is a broadcasting add of zeros).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir import Value
from .onnx_context import Context, importer
from .onnx_safety import np_dtype

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
    return ctx.constant(np.full(_sized(ctx, shape, fill.dtype), fill.reshape(-1)[0], fill.dtype))


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


@importer("Gather", (1, 11, 13), ("axis",), fold_only=True)
def gather(ctx: Context) -> Value:
    data = ctx.const(0, "data")
    indices = ctx.const(1, "indices")
    if data.ndim == 0:
        raise ctx.shape_error("data must have rank >= 1")
    axis = int(ctx.attr("axis", 0))
    if not -data.ndim <= axis < data.ndim:
        raise ctx.shape_error(f"axis {axis} out of range for data {list(data.shape)}")
    axis %= data.ndim
    n = data.shape[axis]
    if indices.dtype.kind not in "iu" or np.any(indices < -n) or np.any(indices >= n):
        raise ctx.shape_error(f"indices out of range [{-n}, {n}) on axis {axis}")
    _sized(ctx, data.shape[:axis] + indices.shape + data.shape[axis + 1:], data.dtype)
    return ctx.constant(np.take(data, indices.astype(np.int64), axis=axis))


@importer("Cast", (6, 9, 13, 19) + _LATEST, ("to",),
          notes="constants fold; a runtime value only to its own dtype (identity)")
def cast(ctx: Context) -> Value:
    x = ctx.input(0)
    to = ctx.attr("to")
    if not isinstance(to, int):
        raise ctx.shape_error(f"`to` must be an ONNX element type, got {to!r}")
    dtype = np_dtype(to, ctx.where)
    if not x.is_constant:
        if np.dtype(x.type.dtype) == dtype:
            return ctx.emit("identity", [x])
        ctx.const(0, f"input (a runtime cast to {dtype.name})")
    with np.errstate(all="ignore"):
        return ctx.constant(x.data.astype(dtype))


@importer("Slice", (1, 10, 11, 13), ("starts", "ends", "axes", "steps"), fold_only=True)
def slice_(ctx: Context) -> Value:
    data = ctx.const(0, "data")
    if ctx.version < 10:
        starts, ends = ctx.attr("starts", []), ctx.attr("ends", [])
        axes, steps = ctx.attr("axes"), None
    else:
        starts, ends = _shape_arg(ctx, 1, "starts"), _shape_arg(ctx, 2, "ends")
        axes = None if ctx.input(3) is None else _shape_arg(ctx, 3, "axes")
        steps = None if ctx.input(4) is None else _shape_arg(ctx, 4, "steps")
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.shape_error("starts, ends, axes and steps must have the same length")
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if not -data.ndim <= axis < data.ndim or step == 0:
            raise ctx.shape_error(f"bad axis {axis} or step {step} for data {list(data.shape)}")
        dim = data.shape[axis]
        start, end = (v + dim if v < 0 else v for v in (int(start), int(end)))
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        index[axis % data.ndim] = slice(start, None if end < 0 else end, int(step))
    return ctx.constant(data[tuple(index)])


def _arith(ctx: Context, fn) -> Value:
    args = [ctx.const(i, f"input {i}") for i in range(len(ctx.inputs))]
    try:
        out_shape = np.broadcast_shapes(*(a.shape for a in args))
    except ValueError:
        raise ctx.shape_error(f"shapes {[list(a.shape) for a in args]} do not broadcast") from None
    _sized(ctx, out_shape, np.result_type(*args))
    with np.errstate(all="ignore"):
        return ctx.constant(fn(*args))


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        if np.any(b == 0):
            raise ShapeError("integer division by zero")
        return (np.trunc(a / b)).astype(np.result_type(a, b))  # ONNX truncates
    return np.divide(a, b)


_ELEMENTWISE = {
    "Sub": ((6, 7, 13, 14), np.subtract), "Div": ((6, 7, 13, 14), _div),
    "Neg": ((6, 13), np.negative), "Floor": ((6, 13), np.floor), "Ceil": ((6, 13), np.ceil),
    "Equal": ((7, 11, 13, 19), np.equal), "Where": ((9, 16), np.where),
}
for _op, (_versions, _fn) in _ELEMENTWISE.items():
    importer(_op, _versions, fold_only=True)(lambda ctx, fn=_fn: _arith(ctx, fn))


@importer("Expand", (8, 13), fold_only=True,
          notes="the shape input must be a constant; a runtime input becomes add(x, zeros)")
def expand(ctx: Context) -> Value:
    x, target = ctx.input(0), _shape_arg(ctx, 1)
    if any(d < 0 for d in target):
        raise ctx.shape_error(f"negative dims in shape {list(target)}")
    try:
        out = np.broadcast_shapes(x.shape, target)
    except ValueError:
        raise ctx.shape_error(f"cannot expand {x.type} to {list(target)}") from None
    _sized(ctx, out, x.type.dtype)
    if x.is_constant:
        return ctx.constant(np.broadcast_to(x.data, out))
    zeros = ctx.constant(np.zeros(target, dtype=x.type.dtype))
    return ctx.emit("add", [x, zeros])


@importer("Range", (11,), fold_only=True)
def range_(ctx: Context) -> Value:
    start, limit, delta = (ctx.const(i, n) for i, n in enumerate(("start", "limit", "delta")))
    if any(v.size != 1 for v in (start, limit, delta)) or float(delta) == 0:
        raise ctx.shape_error("start, limit and delta must be scalars, delta non-zero")
    count = max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
    _sized(ctx, (count,), start.dtype)
    return ctx.constant((start + np.arange(count) * delta).astype(start.dtype))
