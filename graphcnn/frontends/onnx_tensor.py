"""ONNX import of the indexing and dtype ops on runtime data (graphcnn/ops/indexing.py): Gather,
Slice, Split, Expand, Tile, Cast, Where, ArgMax, ArgMin.

Index-like arguments (Slice's starts/ends/axes/steps, Split's sizes, Expand's shape, Tile's
repeats) must be constants, as attributes or initializer inputs depending on the opset; the
data may be a runtime tensor of any dtype the op table takes. A node whose inputs are all
constant folds through the same op (Context.emit), so shape subgraphs still compute at import.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Value
from ..ops import get_op
from ..ops.indexing import DTYPES, INDEX_DTYPES, MULTI_OUTPUT
from .onnx_context import Context, importer
from .onnx_safety import np_dtype

_LATEST = (21, 23, 24, 25)  # since_versions that only widened the type lists


def _emit_all(ctx: Context, op: str, inputs: list[Value], attrs: dict) -> list[Value]:
    """Every output of one node (Context.emit returns the first), folded when all inputs are
    constant."""
    if op not in MULTI_OUTPUT:
        return [ctx.emit(op, inputs, attrs)]
    if all(v.is_constant for v in inputs):
        opdef = get_op(op, ctx.name)
        types = [v.type for v in inputs]
        full = opdef.normalized(attrs, types)
        outs = opdef.run(full, *(v.data for v in inputs))
        return [ctx.constant(np.asarray(y, dtype=t.dtype).reshape(t.shape))
                for y, t in zip(outs, opdef.infer(full, types))]
    node = ctx.graph.add_node(op, inputs, attrs, name=ctx.name)
    for out in node.outputs:
        ctx.limits.check_tensor("output", out.type.shape, np.dtype(out.type.dtype).itemsize,
                                ShapeError)
        ctx.created.add(id(out))
    return list(node.outputs)


def _data(ctx: Context, i: int = 0, allowed: tuple[str, ...] = DTYPES) -> Value:
    v = ctx.input(i)
    if v.type.dtype not in allowed and not v.is_constant:
        raise ctx.unsupported(f"input {i} is {v.type}; graphcnn computes {list(allowed)}")
    return v


def _constant_fold(ctx: Context, fn) -> Value | None:
    """Numpy on constant inputs of a dtype the op table does not take (shape helpers in
    int8, float64, ...), as the old fold-only import did."""
    vals = [v for v in ctx.inputs if v is not None]
    if all(v.is_constant for v in vals) and any(v.type.dtype not in DTYPES for v in vals):
        with np.errstate(all="ignore"):
            return ctx.constant(np.asarray(fn(*(v.data for v in vals))))
    return None


@importer("Gather", (1, 11, 13), ("axis",),
          notes="indices constant or runtime (int64/int32), checked at run time: an index "
                "outside [-n, n) is an InputError")
def gather(ctx: Context) -> Value:
    data, indices = _data(ctx), ctx.input(1)
    if indices.type.dtype not in INDEX_DTYPES:
        raise ctx.shape_error(f"indices must be int64 or int32, got {indices.type}")
    axis = int(ctx.attr("axis", 0))
    if indices.is_constant and data.type.rank >= 1 and -data.type.rank <= axis < data.type.rank:
        n = data.type.shape[axis]
        idx = indices.data
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise ctx.shape_error(f"indices out of range [{-n}, {n}) on axis {axis}")
    folded = _constant_fold(ctx, lambda d, i: np.take(d, i.astype(np.int64), axis=axis))
    return folded or _strided_view(ctx, data, indices, axis) or \
        ctx.emit("gather", [data, indices], {"axis": axis})


def _strided_view(ctx: Context, data: Value, indices: Value, axis: int) -> Value | None:
    """Gather(Reshape(x, [-1]), arange(k).reshape(S)) is Reshape(x, S) when k is x's size: the
    dynamo exporter writes torch's as_strided (adaptive pooling to 1x1) so. Its S has the
    file's batch first; on a re-bound batch the view is of the new batch's samples."""
    node = data.producer
    if axis != 0 or not indices.is_constant or node is None or node.op != "reshape" or \
            data.type.rank != 1:
        return None
    x, idx = node.inputs[0], indices.data
    if not np.array_equal(idx.reshape(-1), np.arange(idx.size)):
        return None
    shape = list(idx.shape)
    size = int(np.prod(x.type.shape))
    if ctx.rebatch is not None and shape and x.type.rank and \
            shape[0] == ctx.rebatch[0] and x.type.shape[0] == ctx.rebatch[1]:
        old, new = ctx.rebatch
        if idx.size * new == size * old:
            return ctx.emit("reshape", [x], {"shape": [new, *shape[1:]], "allowzero": 0})
    if idx.size == size:
        return ctx.emit("reshape", [x], {"shape": shape, "allowzero": 0})
    return None


@importer("Cast", (6, 9, 13, 19, 21, 23, 24, 25, 28), ("to", "saturate", "round_mode"),
          notes="runtime values between float32, int64, int32 and bool (float -> int truncates "
                "toward zero); constants to any numeric dtype")
def cast(ctx: Context) -> Value:
    x = ctx.input(0)
    to = ctx.attr("to")
    if not isinstance(to, int):
        raise ctx.shape_error(f"`to` must be an ONNX element type, got {to!r}")
    dtype = np_dtype(to, ctx.where)
    if x.is_constant and (dtype.name not in DTYPES or x.type.dtype not in DTYPES):
        with np.errstate(all="ignore"):
            return ctx.constant(x.data.astype(dtype))
    if dtype.name not in DTYPES:
        raise ctx.unsupported(f"a runtime cast to {dtype.name} (graphcnn computes "
                              f"{list(DTYPES)})")
    return ctx.emit("cast", [_data(ctx)], {"to": dtype.name})


@importer("Slice", (1, 10, 11, 13), ("starts", "ends", "axes", "steps"),
          notes="starts/ends/axes/steps must be constants; negative steps, clamping")
def slice_(ctx: Context) -> Value:
    data = _data(ctx)
    if ctx.version < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        if starts is None or ends is None:
            raise ctx.shape_error("missing required attribute starts or ends")
        axes, steps = ctx.attr("axes"), None
    else:
        starts, ends = ctx.const_ints(1, "starts"), ctx.const_ints(2, "ends")
        axes, steps = ctx.const_ints(3, "axes"), ctx.const_ints(4, "steps")
    return ctx.emit("slice", [data], {"starts": [int(v) for v in starts],
                                      "ends": [int(v) for v in ends],
                                      "axes": None if axes is None else [int(v) for v in axes],
                                      "steps": steps})


@importer("Split", (2, 11, 13, 18), ("axis", "split", "num_outputs"),
          notes="sizes as attribute (< 13) or constant input (>= 13), else equal chunks "
                "(num_outputs from 18: the last chunk smaller)")
def split(ctx: Context) -> list[Value]:
    data = _data(ctx)
    axis = int(ctx.attr("axis", 0))
    if ctx.version >= 13:
        sizes = ctx.const_ints(1, "split")
    else:
        sizes = ctx.attr("split")
        sizes = None if sizes is None else [int(s) for s in sizes]
    if sizes is not None and ctx.has_attr("num_outputs"):
        raise ctx.shape_error("give either split or num_outputs, not both")
    if sizes is not None:
        if any(s == 0 for s in sizes):
            raise ctx.shape_error(f"split {sizes} makes a zero-size output; graphcnn has no "
                                  f"empty tensors")
        if len(sizes) != len(ctx.node.output):
            raise ctx.shape_error(f"split {sizes} has {len(sizes)} sizes for "
                                  f"{len(ctx.node.output)} outputs")
        attrs = {"axis": axis, "split": sizes}
    else:
        n = int(ctx.attr("num_outputs", len(ctx.node.output)))
        if ctx.version >= 18 and not ctx.has_attr("num_outputs"):
            raise ctx.shape_error("opset >= 18 needs split or num_outputs")
        if n != len(ctx.node.output):
            raise ctx.shape_error(f"num_outputs {n} but the node has {len(ctx.node.output)} "
                                  f"outputs")
        rank = data.type.rank
        if ctx.version < 18 and -rank <= axis < rank and data.type.shape[axis] % n:
            raise ctx.shape_error(f"axis {axis} of {data.type} does not split into {n} equal "
                                  f"parts (before opset 18 the parts must be equal)")
        attrs = {"axis": axis, "num_outputs": n}
    return _emit_all(ctx, "split", [data], attrs)


@importer("Expand", (8, 13), notes="the shape input must be a constant")
def expand(ctx: Context) -> Value:
    shape = ctx.const_ints(1, "shape")
    if shape is None:
        raise ctx.shape_error("missing shape")
    if any(d < 0 for d in shape):
        raise ctx.shape_error(f"negative dims in shape {shape}")
    data = ctx.input(0)
    rank = max(len(shape), data.type.rank)
    padded = [1] * (rank - len(shape)) + shape
    # ONNX: a 1 in `shape` keeps the input's dim, a 0 stays 0 (refused by the op: empty)
    return ctx.emit("expand", [_data(ctx)], {"shape": padded})


@importer("Tile", (6, 13), notes="repeats must be a constant")
def tile(ctx: Context) -> Value:
    reps = ctx.const_ints(1, "repeats")
    if reps is None:
        raise ctx.shape_error("missing repeats")
    return ctx.emit("tile", [_data(ctx)], {"repeats": reps})


@importer("Where", (9, 16), notes="bool condition; X and Y broadcast")
def where(ctx: Context) -> Value:
    cond = ctx.input(0)
    folded = _constant_fold(ctx, np.where)
    if folded is not None:
        return folded
    if cond.type.dtype != "bool":
        raise ctx.shape_error(f"condition must be bool, got {cond.type}")
    return ctx.emit("where", [cond, _data(ctx, 1), _data(ctx, 2)])


def _arg(op: str):
    def fn(ctx: Context) -> Value:
        if ctx.version < 12 and ctx.has_attr("select_last_index"):
            raise ctx.shape_error("select_last_index needs opset >= 12")
        return ctx.emit(op, [_data(ctx, 0, ("float32", "int64", "int32"))],
                        {"axis": int(ctx.attr("axis", 0)),
                         "keepdims": int(ctx.attr("keepdims", 1)),
                         "select_last_index": int(ctx.attr("select_last_index", 0))})
    return fn


importer("ArgMax", (1, 11, 12, 13), ("axis", "keepdims", "select_last_index"),
         notes="int64 indices")(_arg("argmax"))
importer("ArgMin", (1, 11, 12, 13), ("axis", "keepdims", "select_last_index"),
         notes="int64 indices")(_arg("argmin"))
