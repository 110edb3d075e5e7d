"""ONNX import of the reductions (graphcnn.ops.REDUCTIONS), LogSoftmax, LpPool / GlobalLpPool
(entries of the pool table) and the normalisations
computed at run time: LayerNormalization, InstanceNormalization and GroupNormalization (one
group_norm op), LpNormalization, MeanVarianceNormalization.

Reductions take `axes` as an attribute before the table's `axes_input_since` opset and as an
optional input from it on; that input must be known at import time (an initializer or a
constant-foldable subgraph), else the node is unsupported. An empty or omitted axes means every
axis, or nothing at all with noop_with_empty_axes=1 (an identity).
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from ..ops.reduce import REDUCTIONS, Reduction
from .onnx_context import Context, importer
from .onnx_ops import import_pool, import_softmax, lp_exponent


def _reduction(r: Reduction) -> None:
    def fn(ctx: Context) -> Value:
        x = ctx.input(0)
        keepdims = ctx.attr("keepdims", 1)
        if keepdims not in (0, 1):
            raise ctx.shape_error(f"keepdims {keepdims} must be 0 or 1")
        if ctx.version < r.axes_input_since:
            axes = [int(a) for a in ctx.attr("axes", [])]
        else:
            axes = ctx.const_ints(1, "axes") or []
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


# ----- normalisations ------------------------------------------------------------------------


def _param(ctx: Context, i: int, shape: tuple[int, ...], what: str, fill: float) -> Value:
    """Input i as a tensor of `shape`: a constant broadcast to it (or `fill` when omitted); a
    runtime input must have the shape already."""
    v = ctx.input(i)
    if v is None:
        return ctx.constant(np.full(shape, fill, np.float32))
    if v.is_constant:
        try:
            data = np.broadcast_to(v.data.astype(np.float32), shape)
        except ValueError:
            raise ctx.shape_error(f"{what} {list(v.shape)} does not broadcast to "
                                  f"{list(shape)}") from None
        return v if v.shape == shape else ctx.constant(np.ascontiguousarray(data))
    if v.shape != shape:
        raise ctx.unsupported(f"a runtime {what} of shape {list(v.shape)} (not {list(shape)})")
    return v


def _epsilon(ctx: Context) -> float:
    eps = float(ctx.attr("epsilon", 1e-5))
    if not eps >= 0:
        raise ctx.shape_error(f"attribute epsilon {eps} must be >= 0 (var + epsilon is under a "
                              f"square root)")
    return eps


@importer("LayerNormalization", (17,), ("axis", "epsilon", "stash_type"),
          notes="computed in float32")
def layer_normalization(ctx: Context) -> Value | list[Value]:
    x = ctx.input(0)
    rank = x.type.rank
    axis = int(ctx.attr("axis", -1))
    if not -rank <= axis < rank:
        raise ctx.shape_error(f"axis {axis} out of range for input {x.type}")
    shape = x.shape[axis % rank:]
    ins = [x, _param(ctx, 1, shape, "scale", 1.0)]
    if ctx.input(2) is not None:
        ins.append(_param(ctx, 2, shape, "bias", 0.0))
    attrs = {"axis": axis % rank, "epsilon": _epsilon(ctx)}
    n = ctx.n_outputs()
    if n == 1:
        return ctx.emit("layer_norm", ins, attrs)
    node = ctx.graph.add_node("layer_norm", ins, {**attrs, "stats": True}, name=ctx.name)
    for out in node.outputs:
        ctx.created.add(id(out))
    return list(node.outputs[:n])


def _channels(ctx: Context) -> int:
    x = ctx.input(0)
    if x.type.rank < 2:
        raise ctx.shape_error(f"input {x.type} must be (N, C, ...)")
    return x.shape[1]


@importer("InstanceNormalization", (1, 6, 22), ("epsilon",))
def instance_normalization(ctx: Context) -> Value:
    c = _channels(ctx)
    if ctx.input(0).type.rank < 3:
        raise ctx.shape_error(f"input {ctx.input(0).type} must be (N, C, *spatial)")
    ins = [ctx.input(0), _param(ctx, 1, (c,), "scale", 1.0), _param(ctx, 2, (c,), "B", 0.0)]
    return ctx.emit("group_norm", ins, {"num_groups": c, "epsilon": _epsilon(ctx)})


@importer("GroupNormalization", (18, 21), ("num_groups", "epsilon", "stash_type"),
          notes="opset 18: scale and bias per group must be constants; computed in float32")
def group_normalization(ctx: Context) -> Value:
    c = _channels(ctx)
    if not ctx.has_attr("num_groups"):
        raise ctx.shape_error("missing required attribute num_groups")
    groups = int(ctx.attr("num_groups"))
    if groups < 1 or c % groups:
        raise ctx.shape_error(f"num_groups {groups} must divide the {c} channels")
    params = []
    for i, what in ((1, "scale"), (2, "bias")):
        v = ctx.input(i)
        if ctx.version < 21:  # one value per group: repeated over the group's channels
            data = ctx.const(i, what)
            if data is None or data.shape != (groups,):
                raise ctx.shape_error(f"{what} must be ({groups},) (one per group)")
            v = ctx.constant(np.repeat(data.astype(np.float32), c // groups))
        params.append(_param_value(ctx, v, (c,), what))
    return ctx.emit("group_norm", [ctx.input(0)] + params,
                    {"num_groups": groups, "epsilon": _epsilon(ctx)})


def _param_value(ctx: Context, v: Value | None, shape: tuple[int, ...], what: str) -> Value:
    if v is None or v.shape != shape:
        raise ctx.shape_error(f"{what} must be {list(shape)}, got "
                              f"{None if v is None else list(v.shape)}")
    return v


@importer("LpNormalization", (1, 22), ("axis", "p"))
def lp_normalization(ctx: Context) -> Value:
    x = ctx.input(0)
    rank = x.type.rank
    axis, p = int(ctx.attr("axis", -1)), int(ctx.attr("p", 2))
    if not -rank <= axis < rank:
        raise ctx.shape_error(f"axis {axis} out of range for input {x.type}")
    if p not in (1, 2):
        raise ctx.shape_error(f"p {p} must be 1 or 2")
    return ctx.emit("lp_norm", [x], {"axis": axis % rank, "p": p})


@importer("MeanVarianceNormalization", (9, 13), ("axes",))
def mean_variance_normalization(ctx: Context) -> Value:
    axes = [int(a) for a in ctx.attr("axes", [0, 2, 3])]
    return ctx.emit("mean_variance_norm", [ctx.input(0)], {"axes": axes})


# ----- Lp pooling (graphcnn.ops.POOL_OPS) ------------------------------------------------------


@importer("LpPool", (1, 2, 11, 18, 22),
          ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "p", "pads", "strides"),
          notes="p a positive integer")
def lp_pool(ctx: Context) -> Value:
    return import_pool(ctx, "lp_pool")


@importer("GlobalLpPool", (1, 2, 22), ("p",), notes="p a positive integer")
def global_lp_pool(ctx: Context) -> Value:
    x = ctx.input(0)
    if x.type.rank < 3:
        raise ctx.shape_error(f"input {x.type} must be (N, C, *spatial)")
    return ctx.emit("global_lp_pool", [x], {"p": lp_exponent(ctx)})
