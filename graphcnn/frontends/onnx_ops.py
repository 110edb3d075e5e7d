"""The ONNX import table for the ops graphcnn runs: one small function per ONNX op type.

Each importer maps one ONNX node onto the IR op table (graphcnn/ops), resolving what graphcnn
keeps static at import time: auto_pad becomes explicit pads from the static shapes, attribute-like
inputs (Reshape's shape, Pad's pads, Clip's bounds, Squeeze's axes, ...) must be constants, and
opset differences (Softmax before 13, BatchNormalization's `spatial`, legacy broadcasting of
Add/Mul-6) are normalised to the one IR form. Versions are the ONNX schema since_versions each
importer implements; a node at another version is reported unsupported.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelLoadError
from ..ir import Value
from ..ops import ACTIVATIONS, BINARY_OPS, Activation, Binary
from ..ops.tensor import PAD_MODES
from .onnx_batch import rebatched_shape
from .onnx_context import Context, importer

# ----- shared helpers -------------------------------------------------------------------------


def _ints(ctx: Context, key: str, n: int, default: int) -> list[int]:
    """A per-spatial-dim int list attribute with `n` entries (default: all `default`)."""
    values = ctx.attr(key)
    if values is None:
        return [default] * n
    values = [int(v) for v in values]
    if len(values) != n:
        raise ctx.shape_error(f"{key} {values} must have {n} entries")
    return values


def window_pads(ctx: Context, spatial: tuple[int, ...], kernel: list[int], strides: list[int],
                dilations: list[int]) -> list[int]:
    """Explicit pads (all begins, then all ends) from `pads` or `auto_pad`.

    SAME_*: output = ceil(input / stride); the total padding needed for it is split evenly, the
    odd cell going to the end (SAME_UPPER) or the beginning (SAME_LOWER). VALID: no padding.
    """
    nd = len(spatial)
    auto = ctx.attr("auto_pad", "NOTSET") or "NOTSET"
    if min(strides, default=1) < 1 or min(dilations, default=1) < 1 or min(kernel) < 1:
        raise ctx.shape_error(f"kernel {kernel}, strides {strides} and dilations {dilations} "
                              f"must be >= 1")
    if auto == "NOTSET":
        return _ints(ctx, "pads", 2 * nd, 0)
    if auto == "VALID":
        return [0] * (2 * nd)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.shape_error(f"unknown auto_pad {auto!r}")
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return begins + ends


def _spatial_input(ctx: Context) -> Value:
    x = ctx.input(0)
    if x.type.rank < 3:
        raise ctx.shape_error(f"input {x.type} must be (N, C, *spatial)")
    return x


def _scalar(ctx: Context, array: np.ndarray, what: str) -> float:
    if array.size != 1:
        raise ctx.shape_error(f"{what} must be a scalar, got shape {list(array.shape)}")
    return float(array.reshape(-1)[0])


def _axes(ctx: Context, input_index: int, what: str = "axes") -> list[int] | None:
    """Axes from the `axes` attribute (old opsets) or a constant input (newer ones)."""
    if ctx.has_attr("axes"):
        return [int(a) for a in ctx.attr("axes")]
    return ctx.const_ints(input_index, what)


# ----- convolution and pooling ------------------------------------------------------------------


@importer("Conv", (1, 11, 22), ("auto_pad", "dilations", "group", "kernel_shape", "pads",
                                "strides"))
def conv(ctx: Context) -> Value:
    x, w, b = _spatial_input(ctx), ctx.input(1), ctx.input(2)
    if w.type.rank != x.type.rank:
        raise ctx.shape_error(f"weight {w.type} must have the input's rank {x.type.rank} "
                              f"(input {x.type})")
    nd = x.type.rank - 2
    kernel = list(w.shape[2:])
    if ctx.has_attr("kernel_shape") and [int(k) for k in ctx.attr("kernel_shape")] != kernel:
        raise ctx.shape_error(f"kernel_shape {ctx.attr('kernel_shape')} differs from the "
                              f"weight's {kernel}")
    strides, dilations = _ints(ctx, "strides", nd, 1), _ints(ctx, "dilations", nd, 1)
    pads = window_pads(ctx, x.shape[2:], kernel, strides, dilations)
    attrs = {"strides": strides, "dilations": dilations, "pads": pads,
             "groups": int(ctx.attr("group", 1))}
    return ctx.emit("conv", [x, w] + ([b] if b is not None else []), attrs)


def import_pool(ctx: Context, op: str) -> Value:
    x = _spatial_input(ctx)
    nd = x.type.rank - 2
    if not ctx.has_attr("kernel_shape"):
        raise ctx.shape_error("missing required attribute kernel_shape")
    kernel = _ints(ctx, "kernel_shape", nd, 1)
    strides, dilations = _ints(ctx, "strides", nd, 1), _ints(ctx, "dilations", nd, 1)
    attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations,
             "pads": window_pads(ctx, x.shape[2:], kernel, strides, dilations),
             "ceil_mode": bool(ctx.attr("ceil_mode", 0))}
    if op == "avg_pool":
        attrs["count_include_pad"] = bool(ctx.attr("count_include_pad", 0))
    if op == "lp_pool":
        attrs["p"] = lp_exponent(ctx)
    return ctx.emit(op, [x], attrs)


def lp_exponent(ctx: Context) -> int:
    """LpPool's / GlobalLpPool's p: a float at opset 1, an int later; a positive integer."""
    p = ctx.attr("p", 2)
    if not float(p) >= 1 or float(p) != int(p):
        raise ctx.shape_error(f"p {p} must be a positive integer")
    return int(p)


@importer("MaxPool", (1, 8, 10, 11, 12, 22),
          ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
           "strides"), notes="the optional Indices output is unsupported")
def max_pool(ctx: Context) -> Value:
    if ctx.n_outputs() > 1:
        raise ctx.unsupported("the Indices output of MaxPool is not supported")
    return import_pool(ctx, "max_pool")


@importer("AveragePool", (1, 7, 10, 11, 19, 22),
          ("auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
           "strides"))
def average_pool(ctx: Context) -> Value:
    return import_pool(ctx, "avg_pool")


@importer("GlobalAveragePool", (1, 22))
def global_average_pool(ctx: Context) -> Value:
    return ctx.emit("global_avg_pool", [_spatial_input(ctx)])


@importer("GlobalMaxPool", (1, 22))
def global_max_pool(ctx: Context) -> Value:
    return ctx.emit("global_max_pool", [_spatial_input(ctx)])


# ----- activations ---------------------------------------------------------------------------


def _activation(acts: list[Activation]) -> None:
    """Register the importer of the table activations (graphcnn.ops.ACTIVATIONS) of one ONNX
    op type from their mapping: params from attributes, or from constant inputs at opsets >=
    inputs_since; several activations of one op type are told apart by a string attribute
    (Gelu's approximate)."""
    onx = acts[0].onnx
    variants = {a.onnx.variant[1]: a for a in acts if a.onnx.variant is not None}

    def fn(ctx: Context) -> Value:
        act = acts[0]
        if variants:
            key, default = onx.variant[0], next(iter(variants))
            value = ctx.attr(key, default)
            if value not in variants:
                raise ctx.shape_error(f"unknown {key} {value!r}; expected one of "
                                      f"{sorted(variants)}")
            act = variants[value]
        if onx.inputs_since is not None and ctx.version >= onx.inputs_since:
            bounds = [ctx.input(k + 1) for k in range(len(onx.attrs))]
            if any(v is not None and not v.is_constant for v in bounds):
                return _runtime_params(ctx, act, bounds)
        params = []
        for k, (key, default) in enumerate(onx.attrs):
            if onx.inputs_since is not None and ctx.version >= onx.inputs_since:
                data = ctx.const(k + 1, key)
                params.append(default if data is None else _scalar(ctx, data, key))
            else:
                params.append(float(ctx.attr(key, default)))
        return ctx.emit(act.name, [ctx.input(0)],
                        {key: p for (key, _), p in zip(act.attrs, params)})

    attrs = [key for key, _ in onx.attrs] + ([onx.variant[0]] if onx.variant else [])
    importer(onx.op_type, onx.versions, attrs, notes=onx.notes)(fn)


def _runtime_params(ctx: Context, act: Activation, params: list[Value | None]) -> Value:
    """An activation whose param inputs are runtime tensors (Clip's min/max): each becomes the
    table's binary op for it (runtime_params), applied in order, constants as scalars."""
    y = ctx.input(0)
    for k, (v, op) in enumerate(zip(params, act.onnx.runtime_params)):
        if v is None:
            continue
        if v.is_constant:
            v = ctx.constant(np.array(_scalar(ctx, v.data, act.onnx.attrs[k][0]), np.float32))
        elif v.type.size != 1:
            raise ctx.shape_error(f"{act.onnx.attrs[k][0]} must be a scalar, got {v.type}")
        y = ctx.emit(op, [y, v], suffix="" if k == len(params) - 1 else f"/{op}")
    return y


_BY_OP_TYPE: dict[str, list[Activation]] = {}
for _act in ACTIVATIONS.values():
    if _act.onnx is not None:
        _BY_OP_TYPE.setdefault(_act.onnx.op_type, []).append(_act)
for _acts in _BY_OP_TYPE.values():
    _activation(_acts)


@importer("Softmax", (1, 11, 13), ("axis",),
          notes="before opset 13: flatten to 2-D at axis, softmax, reshape back")
def softmax(ctx: Context) -> Value:
    return import_softmax(ctx, "softmax")


def import_softmax(ctx: Context, op: str) -> Value:
    """Softmax and LogSoftmax (the softmax family of graphcnn.ops.normalization)."""
    x = ctx.input(0)
    rank = x.type.rank
    axis = int(ctx.attr("axis", -1 if ctx.version >= 13 else 1))
    if not -rank <= axis < rank:
        raise ctx.shape_error(f"axis {axis} out of range for input {x.type}")
    axis %= rank
    if ctx.version >= 13 or axis == rank - 1:  # one axis: the 2-D coercion is the same thing
        return ctx.emit(op, [x], {"axis": axis})
    flat = ctx.emit("flatten", [x], {"axis": axis}, suffix="/flatten")
    soft = ctx.emit(op, [flat], {"axis": 1}, suffix=f"/{op}")
    return ctx.emit("reshape", [soft], {"shape": x.shape})


# ----- dense ---------------------------------------------------------------------------------


@importer("Gemm", (1, 6, 7, 9, 11, 13), ("alpha", "beta", "transA", "transB", "broadcast"),
          notes="C optional (as in opset >= 11); broadcast of C numpy-style")
def gemm(ctx: Context) -> Value:
    a, b, c = ctx.input(0), ctx.input(1), ctx.input(2)
    attrs = {"transA": int(ctx.attr("transA", 0)), "transB": int(ctx.attr("transB", 0)),
             "alpha": float(ctx.attr("alpha", 1.0)), "beta": float(ctx.attr("beta", 1.0))}
    return ctx.emit("gemm", [a, b] + ([c] if c is not None else []), attrs)


@importer("MatMul", (1, 9, 13))
def matmul(ctx: Context) -> Value:
    return ctx.emit("matmul", [ctx.input(0), ctx.input(1)])


# ----- data movement -------------------------------------------------------------------------


@importer("Flatten", (1, 9, 11, 13, 21, 23, 24, 25), ("axis",))
def flatten(ctx: Context) -> Value:
    return ctx.emit("flatten", [ctx.input(0)], {"axis": int(ctx.attr("axis", 1))})


@importer("Reshape", (5, 13, 14, 19, 21, 23, 24, 25), ("shape", "allowzero"),
          notes="the shape input must be a constant")
def reshape(ctx: Context) -> Value:
    shape = ctx.const(1, "shape")
    if shape is None or shape.ndim != 1 or shape.dtype.kind not in "iu":
        raise ctx.shape_error("shape must be a 1-D integer tensor")
    target = [int(d) for d in shape]
    if ctx.rebatch is not None:
        target = rebatched_shape(target, ctx.input(0).shape, *ctx.rebatch)
    return ctx.emit("reshape", [ctx.input(0)], {"shape": target,
                                                  "allowzero": int(ctx.attr("allowzero", 0))})


@importer("Transpose", (1, 13, 21, 23, 24, 25), ("perm",))
def transpose(ctx: Context) -> Value:
    perm = ctx.attr("perm")
    return ctx.emit("transpose", [ctx.input(0)],
                    {"perm": None if perm is None else [int(p) for p in perm]})


@importer("Concat", (1, 4, 11, 13), ("axis",))
def concat(ctx: Context) -> Value:
    inputs = [v for v in ctx.inputs if v is not None]
    return ctx.emit("concat", inputs, {"axis": int(ctx.attr("axis", 1))})


@importer("Pad", (2, 11, 13, 18, 19, 21, 23, 24, 25), ("pads", "mode", "value", "axes"),
          notes="constant, reflect, edge and wrap (from opset 19); pads, constant_value and "
                "axes must be constants")
def pad(ctx: Context) -> Value:
    x = ctx.input(0)
    mode = ctx.attr("mode", "constant")
    modes = PAD_MODES if ctx.version >= 19 else PAD_MODES[:3]
    if mode not in modes:
        raise ctx.shape_error(f"unknown pad mode {mode!r}; known at this opset: {list(modes)}")
    rank = x.type.rank
    if ctx.version < 11:
        pads, value = [int(p) for p in ctx.attr("pads", [])], float(ctx.attr("value", 0.0))
        axes = list(range(rank))
    else:
        data = ctx.const(1, "pads")
        if data is None or data.ndim != 1 or data.dtype.kind not in "iu":
            raise ctx.shape_error("pads must be a 1-D integer tensor")
        pads = [int(p) for p in data]
        value_data = ctx.const(2, "constant_value")
        value = 0.0 if value_data is None else _scalar(ctx, value_data, "constant_value")
        axes = _axes(ctx, 3) if ctx.version >= 18 else None
        axes = list(range(rank)) if axes is None else axes
    if len(pads) != 2 * len(axes):
        raise ctx.shape_error(f"pads {pads} must have {2 * len(axes)} entries")
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        if not -rank <= axis < rank:
            raise ctx.shape_error(f"axis {axis} out of range for input {x.type}")
        full[axis % rank], full[axis % rank + rank] = pads[i], pads[i + len(axes)]
    return ctx.emit("pad", [x], {"pads": full, "value": value, "mode": mode})


@importer("Squeeze", (1, 11, 13, 21, 23, 24, 25), ("axes",),
          notes="opset >= 13: the axes input must be a constant")
def squeeze(ctx: Context) -> Value:
    return ctx.emit("squeeze", [ctx.input(0)], {"axes": _axes(ctx, 1)})


@importer("Unsqueeze", (1, 11, 13, 21, 23, 24, 25), ("axes",),
          notes="opset >= 13: the axes input must be a constant")
def unsqueeze(ctx: Context) -> Value:
    axes = _axes(ctx, 1)
    if axes is None:
        raise ctx.shape_error("missing axes")
    return ctx.emit("unsqueeze", [ctx.input(0)], {"axes": axes})


@importer("Identity", (1, 13, 14, 16, 19, 21, 23, 24, 25))
def identity(ctx: Context) -> Value:
    return ctx.emit("identity", [ctx.input(0)])


@importer("Dropout", (7, 10, 12, 13, 22), ("ratio", "training_mode", "seed"),
          notes="inference only: training_mode=True raises UnsupportedOpError; the mask output "
                "is a constant of ones")
def dropout(ctx: Context) -> list[Value]:
    x = ctx.input(0)
    ratio = float(ctx.attr("ratio", 0.5))
    if ctx.version >= 12:
        if ctx.input(2) is not None:
            training = ctx.const(2, "training_mode")
            if bool(np.any(training)):
                raise ctx.unsupported("training_mode=True is not supported (inference only)")
        ratio_value = ctx.input(1)
        if ratio_value is not None and ratio_value.is_constant:
            ratio = _scalar(ctx, ratio_value.data, "ratio")
    outs = [ctx.emit("dropout", [x], {"ratio": ratio})]
    if ctx.n_outputs() > 1:  # at inference the mask keeps everything
        outs.append(ctx.constant(np.ones(x.shape, dtype=bool)))
    return outs


# ----- arithmetic ------------------------------------------------------------------------------


def _binary(op: Binary) -> None:
    """Register the importer of a table binary op (graphcnn.ops.BINARY_OPS) from its ONNX
    mapping; below `legacy_broadcast_before`, b's dims line up with a's starting at `axis`."""
    onx = op.onnx

    def fn(ctx: Context) -> Value:
        if op.variadic:
            return ctx.emit(op.name, [v for v in ctx.inputs if v is not None])
        a, b = ctx.input(0), ctx.input(1)
        if (onx.legacy_broadcast_before is not None and ctx.version < onx.legacy_broadcast_before
                and ctx.attr("broadcast", 0) and ctx.has_attr("axis")):
            axis = int(ctx.attr("axis"))
            rank = a.type.rank
            axis = axis + rank if axis < 0 else axis
            trailing = rank - axis - b.type.rank
            if axis < 0 or trailing < 0:
                raise ctx.shape_error(f"cannot broadcast {b.type} into {a.type} at axis {axis}")
            b = ctx.emit("reshape", [b], {"shape": b.shape + (1,) * trailing},
                         suffix="/broadcast")
        elif (onx.per_channel_before is not None and ctx.version < onx.per_channel_before
              and b.type.rank == 1 and a.type.rank > 2 and b.shape[0] == a.shape[1] > 1):
            b = ctx.emit("reshape", [b], {"shape": b.shape + (1,) * (a.type.rank - 2)},
                         suffix="/per_channel")
        return ctx.emit(op.name, [a, b])

    importer(onx.op_type, onx.versions, notes=onx.notes)(fn)


for _op in BINARY_OPS.values():
    _binary(_op)


# ----- normalisation ---------------------------------------------------------------------------


@importer("BatchNormalization", (6, 7, 9, 14, 15),
          ("epsilon", "momentum", "spatial", "is_test", "training_mode"),
          notes="inference only; spatial=0 (opsets 6-7) needs constant parameters")
def batch_norm(ctx: Context) -> Value:
    if ctx.n_outputs() > 1 or ctx.attr("training_mode", 0) or \
            (ctx.version < 7 and not ctx.attr("is_test", 0)):
        raise ctx.unsupported("training-mode BatchNormalization (batch statistics, running "
                              "mean/var outputs) is not supported; inference only")
    x, params = ctx.input(0), list(ctx.inputs[1:5])
    if len(params) != 4 or any(p is None for p in params):
        raise ctx.shape_error("takes (X, scale, B, mean, var)")
    eps = float(ctx.attr("epsilon", 1e-5))
    if not eps >= 0:  # onnxruntime: NaN in every channel whose var + epsilon <= 0
        raise ModelLoadError(f"{ctx.where}: attribute 'epsilon' = {eps} must be >= 0 (it is "
                             f"added to the variance under a square root)")
    if ctx.version < 9 and not ctx.attr("spatial", 1) and params[0].type.rank > 1:
        # per-activation statistics: y = x * a + b with a, b of shape (C, D1, ..., Dn)
        if not all(p.is_constant for p in params):
            raise ctx.unsupported("spatial=0 with non-constant parameters is not supported")
        scale, bias, mean, var = (p.data.astype(np.float32) for p in params)
        a = scale / np.sqrt(var + np.float32(eps))
        scaled = ctx.emit("mul", [x, ctx.constant(a)], suffix="/scale")
        return ctx.emit("add", [scaled, ctx.constant(bias - mean * a)])
    return ctx.emit("batch_norm", [x] + params, {"epsilon": eps})


@importer("LRN", (1, 13), ("alpha", "beta", "bias", "size"))
def lrn(ctx: Context) -> Value:
    if not ctx.has_attr("size"):
        raise ctx.shape_error("missing required attribute size")
    return ctx.emit("lrn", [ctx.input(0)], {
        "size": int(ctx.attr("size")), "alpha": float(ctx.attr("alpha", 1e-4)),
        "beta": float(ctx.attr("beta", 0.75)), "bias": float(ctx.attr("bias", 1.0))})


# the helper ops that constant-fold register themselves into the same table
from . import onnx_fold  # noqa: F401
