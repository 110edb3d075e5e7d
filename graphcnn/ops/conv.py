"""Convolution (1-D/2-D/3-D) and the spatial-window arithmetic pools share with it.

conv(x, w[, b[, residual]]): x (N, C, *spatial), w (OC, C/groups, *kernel), b (OC,).
pads are ONNX-ordered: all begins, then all ends. After fusion a conv may carry an epilogue:
y = act(conv(x, w) + b + residual), `residual=True` marking the 4th input, and then a max pool
whose window is its stride, `pool` (one size per spatial dim, floor mode, no pads; () for
none: the llvm backend fuses a following 2x2/2 max pool into the kernels that take it).
With layout="NCHWc" the input, residual and output are blocked (see ops/layout.py): the input's
block is its last dim, the output's is `out_block`; weight and bias stay logical.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..tensor_type import TensorType
from .activation import EPILOGUE_ATTRS, apply_activation, check_epilogue
from .layout import LAYOUTS, blocked_shape, from_blocked, to_blocked, unblocked_type
from .registry import OpDef, register, require


def spatial_defaults(attrs: dict, nd: int, keys: tuple[str, ...] = ("strides", "dilations")) -> dict:
    """Fill per-dimension defaults (ones; zero pads) and check their lengths."""
    for key in keys:
        attrs[key] = tuple(attrs[key]) if attrs[key] else (1,) * nd
        require(len(attrs[key]) == nd, f"{key} {attrs[key]} must have {nd} entries")
        require(all(s >= 1 for s in attrs[key]), f"{key} {attrs[key]} must be >= 1")
    attrs["pads"] = tuple(attrs["pads"]) if attrs["pads"] else (0,) * (2 * nd)
    require(len(attrs["pads"]) == 2 * nd, f"pads {attrs['pads']} must have {2 * nd} entries")
    require(all(p >= 0 for p in attrs["pads"]), f"pads {attrs['pads']} must be >= 0")
    return attrs


def window_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                       dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a sliding window; with ceil_mode a window must start inside input+pad_begin."""
    span = (kernel - 1) * dilation + 1
    padded = size + pad_begin + pad_end
    require(padded >= span, f"kernel extent {span} is larger than the padded input {padded}")
    if not ceil_mode:
        return (padded - span) // stride + 1
    out = -(-(padded - span) // stride) + 1
    if (out - 1) * stride >= size + pad_begin:  # last window would start in the end padding
        out -= 1
    return out


def windows(xp: np.ndarray, kernel, strides, dilations, out_shape) -> np.ndarray:
    """View (N, C, *out, *kernel) of the padded input xp: no copy, strides and dilation applied."""
    nd = len(kernel)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    view = sliding_window_view(xp, span, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None))
    index += tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out_shape, strides))
    index += tuple(slice(None, None, d) for d in dilations)
    return view[index]


def _normalize(attrs: dict, t: list[TensorType]) -> dict:
    x = t[0]
    require(attrs["layout"] in LAYOUTS, f"layout {attrs['layout']!r} must be one of {LAYOUTS}")
    blocked = attrs["layout"] == "NCHWc"
    require(x.rank >= 3 + blocked, f"input must be (N, C, *spatial), got {x}")
    require(not blocked or attrs["out_block"] >= 1, "a blocked conv needs out_block >= 1")
    attrs = spatial_defaults(attrs, x.rank - 2 - blocked)
    require(attrs["out_dtype"] in ("", "bfloat16"),
            f"out_dtype {attrs['out_dtype']!r} must be '' (the computed type) or 'bfloat16'")
    attrs["pool"] = tuple(attrs["pool"] or ())
    require(not attrs["pool"] or (len(attrs["pool"]) == x.rank - 2 - blocked
                                  and min(attrs["pool"]) >= 1),
            f"pool {attrs['pool']} must have one size >= 1 per spatial dim")
    return attrs


def _infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    if a["layout"] == "NCHWc":  # check the logical conv, then block its output
        x, w = t[0], t[1]
        c_in = w.shape[1] * a["groups"]
        require(-(-c_in // x.shape[-1]) == x.shape[1],
                f"blocked input {x} does not hold the weight's {c_in} input channels")
        logical = [unblocked_type(x, c_in)] + list(t[1:3])
        if a["residual"]:
            logical.append(unblocked_type(t[3], w.shape[0]))
        y = _infer({**a, "layout": "NCHW"}, logical)[0]
        return [TensorType(blocked_shape(y.shape, a["out_block"]), y.dtype)]
    x, w = t[0], t[1]
    nd = x.rank - 2
    require(w.rank == x.rank, f"weight {w} must have the input's rank {x.rank} (input {x})")
    g = a["groups"]
    require(g >= 1 and x.shape[1] % g == 0 and w.shape[0] % g == 0,
            f"groups={g} must divide input channels {x.shape[1]} and output channels {w.shape[0]}")
    require(w.shape[1] * g == x.shape[1],
            f"input {x} has {x.shape[1]} channels but weight {w} expects {w.shape[1] * g}")
    require(min(w.shape) >= 1 and min(x.shape) >= 1, f"zero-size dims in input {x} / weight {w}")
    check_epilogue(a)
    has_bias = len(t) >= 3
    if a["residual"]:
        require(len(t) == 4, "a residual conv takes (x, w, b, residual)")
    else:
        require(len(t) <= 3, "a conv without residual takes (x, w[, b])")
    if has_bias:
        require(t[2].shape == (w.shape[0],), f"bias {t[2]} must be ({w.shape[0]},)")
    out = tuple(window_output_size(x.shape[2 + i], w.shape[2 + i], a["strides"][i], a["pads"][i],
                                   a["pads"][i + nd], a["dilations"][i]) for i in range(nd))
    dtype = x.dtype
    if x.dtype == "bfloat16":  # the bf16 precision: bf16 activations, float32 weights and sums
        require(w.dtype == "float32", f"a bfloat16 input takes float32 weights, not {w}")
        dtype = "float32"
    if a["out_dtype"]:  # the bf16 precision: the float32 result stored rounded to bf16
        require(dtype == "float32", f"out_dtype {a['out_dtype']} needs a float32 result, not "
                                    f"{dtype}")
        dtype = a["out_dtype"]
    y = TensorType((x.shape[0], w.shape[0]) + out, dtype)
    if a["residual"]:
        require(t[3].shape == y.shape, f"residual {t[3]} must match the output {y}")
    if a["pool"]:
        require(all(o >= p for o, p in zip(out, a["pool"])),
                f"pool {a['pool']} is larger than the conv's output {out}")
        y = TensorType(y.shape[:2] + tuple(o // p for o, p in zip(out, a["pool"])), dtype)
    return [y]


def conv_nd(x: np.ndarray, w: np.ndarray, strides, pads, dilations, groups: int) -> np.ndarray:
    """Grouped N-d convolution as one GEMM per group over an im2col view (no pixel loops)."""
    nd = x.ndim - 2
    kernel = w.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    out_shape = tuple(window_output_size(x.shape[2 + i], kernel[i], strides[i], pads[i],
                                         pads[i + nd], dilations[i]) for i in range(nd))
    win = windows(xp, kernel, strides, dilations, out_shape)  # N, C, *out, *k
    cg, og = w.shape[1], w.shape[0] // groups
    k_axes = list(range(2 + nd, 2 + 2 * nd))
    parts = []
    for g in range(groups):
        wg = w[g * og:(g + 1) * og]
        xg = win[:, g * cg:(g + 1) * cg]
        # contract channel + kernel taps: (N, *out, og)
        # in float64: every output channel then rounds to float32 alike, whatever order BLAS
        # sums it in (channels with equal weights must give equal outputs, e.g. ONNX's light models)
        parts.append(np.tensordot(xg.astype(np.float64), wg.astype(np.float64),
                                  axes=([1] + k_axes, [1] + list(range(2, 2 + nd)))))
    y = np.concatenate(parts, axis=-1) if groups > 1 else parts[0]
    dtype = np.float32 if x.dtype.name == "bfloat16" else x.dtype  # as _infer says
    return np.ascontiguousarray(np.moveaxis(y, -1, 1)).astype(dtype, copy=False)


def _compute(a: dict, x, w, b=None, r=None):
    if a["layout"] == "NCHWc":
        x = from_blocked(x, w.shape[1] * a["groups"])
        r = None if r is None else from_blocked(r, w.shape[0])
        return to_blocked(_compute({**a, "layout": "NCHW"}, x, w, b, r), a["out_block"])
    y = conv_nd(x, w, a["strides"], a["pads"], a["dilations"], a["groups"])
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * (x.ndim - 2))
    if r is not None:
        y = y + r
    y = max_pool_windows(apply_activation(y, a["activation"], a["activation_params"]), a["pool"])
    return y.astype(a["out_dtype"]) if a["out_dtype"] else y


def max_pool_windows(y: np.ndarray, pool: tuple[int, ...]) -> np.ndarray:
    """Max over non-overlapping windows of `pool` (the stride), floor mode; () is none."""
    if not pool:
        return y
    out = [s // p for s, p in zip(y.shape[2:], pool)]
    y = y[(slice(None), slice(None)) + tuple(slice(0, o * p) for o, p in zip(out, pool))]
    split = y.shape[:2] + tuple(d for o, p in zip(out, pool) for d in (o, p))
    return y.reshape(split).max(axis=tuple(3 + 2 * i for i in range(len(pool))))


register(OpDef(
    "conv",
    {"strides": None, "pads": None, "dilations": None, "groups": 1, "residual": False,
     "layout": "NCHW", "out_block": 0, "pool": (), "out_dtype": "", **EPILOGUE_ATTRS},
    _infer, _compute, inputs=(2, 4), normalize=_normalize,
    doc="N-d convolution with groups; optional bias, fused residual add, activation and max pool",
))
