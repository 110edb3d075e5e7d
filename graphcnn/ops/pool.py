"""Pooling: max / average / sum / Lp over sliding windows (1-D/2-D/3-D), and the global pools.

Window placement follows ONNX (and PyTorch): pads are all-begins then all-ends; with ceil_mode the
last window may hang over the end but must start inside input + begin pad. Average pooling divides
by the window's cells inside input + pads (count_include_pad) or inside the input alone.
Max pooling starts from the lowest float, as onnxruntime's loop does: a window entirely in
padding (dilation, ceil_mode) gives -3.4028235e38, and so does a window of -inf inputs (as in
onnxruntime's 1-D and 3-D pools; its 2-D kernel keeps -inf in windows clear of padding).
Sum pooling has no ONNX op; it is the sum over the same window (zero padding).
Lp pooling is (sum of |x|^p over the window) ^ (1/p), padding counting as zeros (ONNX LpPool);
p is a positive integer.
With layout="NCHWc" the input and output are blocked (N, Cb, *S, b): the block is one more
channel axis, so the windows are computed on the equivalent (N, Cb*b, *S) tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tensor_type import TensorType
from .conv import spatial_defaults, window_output_size, windows
from .layout import LAYOUTS, blockable
from .registry import REQUIRED, OpDef, register, require


@dataclass(frozen=True)
class Pool:
    """One pool op: what it reduces, whether over every spatial position, its ONNX op type
    (None: no ONNX op, exported another way) and whether it runs on the blocked layout."""

    name: str
    reduce: str  # "max" | "avg" | "sum" | "lp"
    is_global: bool
    onnx: str | None
    blockable: bool = True  # per-channel: layout="NCHWc" runs on the blocked twin


POOL_OPS: dict[str, Pool] = {p.name: p for p in (
    Pool("max_pool", "max", False, "MaxPool"),
    Pool("avg_pool", "avg", False, "AveragePool"),
    Pool("sum_pool", "sum", False, None),  # a depthwise ones-kernel conv in ONNX
    Pool("global_avg_pool", "avg", True, "GlobalAveragePool"),
    Pool("global_max_pool", "max", True, "GlobalMaxPool"),
    Pool("lp_pool", "lp", False, "LpPool"),
    Pool("global_lp_pool", "lp", True, "GlobalLpPool"),
)}

POOL_ATTRS = {"kernel_shape": REQUIRED, "strides": None, "pads": None, "dilations": None,
              "ceil_mode": False, "layout": "NCHW"}


def _normalize(attrs: dict, t: list[TensorType]) -> dict:
    require(attrs.get("layout", "NCHW") in LAYOUTS, f"layout must be one of {LAYOUTS}")
    blocked = attrs.get("layout") == "NCHWc"
    require(t[0].rank >= 3 + blocked, f"input must be (N, C, *spatial), got {t[0]}")
    nd = t[0].rank - 2 - blocked
    attrs["kernel_shape"] = tuple(attrs["kernel_shape"])
    require(len(attrs["kernel_shape"]) == nd and min(attrs["kernel_shape"]) >= 1,
            f"kernel_shape {attrs['kernel_shape']} must be {nd} positive sizes")
    attrs["ceil_mode"] = bool(attrs["ceil_mode"])
    if "count_include_pad" in attrs:
        attrs["count_include_pad"] = bool(attrs["count_include_pad"])
    return spatial_defaults(attrs, nd)


def pool_output_shape(a: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    nd = len(shape) - 2
    return tuple(window_output_size(shape[2 + i], a["kernel_shape"][i], a["strides"][i],
                                    a["pads"][i], a["pads"][i + nd], a["dilations"][i],
                                    a["ceil_mode"]) for i in range(nd))


def _infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    x = t[0]
    nd = x.rank - 2
    for i in range(nd):
        require(a["pads"][i] < (a["kernel_shape"][i] - 1) * a["dilations"][i] + 1 and
                a["pads"][i + nd] < (a["kernel_shape"][i] - 1) * a["dilations"][i] + 1,
                f"pads {a['pads']} must be smaller than the kernel extent {a['kernel_shape']}")
    require(min(x.shape) >= 1, f"zero-size dims in input {x}")
    return [TensorType(x.shape[:2] + pool_output_shape(a, x.shape), x.dtype)]


def _padded_windows(a: dict, x: np.ndarray, fill: float):
    """Windows over x padded with `fill`, plus the per-dim padding actually applied."""
    nd = x.ndim - 2
    out = pool_output_shape(a, x.shape)
    widths = []
    for i in range(nd):
        span = (a["kernel_shape"][i] - 1) * a["dilations"][i] + 1
        begin = a["pads"][i]
        # ceil_mode windows may reach past the declared end padding
        end = max(a["pads"][i + nd], (out[i] - 1) * a["strides"][i] + span - x.shape[2 + i] - begin)
        widths.append((begin, end))
    xp = np.pad(x, [(0, 0), (0, 0)] + widths, constant_values=fill)
    return windows(xp, a["kernel_shape"], a["strides"], a["dilations"], out), widths, out


def _reduce_axes(nd: int) -> tuple[int, ...]:
    return tuple(range(2 + nd, 2 + 2 * nd))


def _max_pool(a: dict, x: np.ndarray) -> np.ndarray:
    # onnxruntime's loop starts from the lowest float: a window entirely in padding gives it
    win, _, _ = _padded_windows(a, x, -np.inf)
    return np.maximum(win.max(axis=_reduce_axes(x.ndim - 2)), np.finfo(x.dtype).min)


def _sum_pool(a: dict, x: np.ndarray) -> np.ndarray:
    win, _, _ = _padded_windows(a, x, 0.0)
    return win.sum(axis=_reduce_axes(x.ndim - 2), dtype=np.float32)


def _avg_pool(a: dict, x: np.ndarray) -> np.ndarray:
    nd = x.ndim - 2
    win, widths, out = _padded_windows(a, x, 0.0)
    total = win.sum(axis=_reduce_axes(nd), dtype=np.float32)
    # the divisor: window cells that fall in the counted region (input, plus pads if included)
    mask = np.ones((1, 1) + x.shape[2:], np.float32)
    if a["count_include_pad"]:
        mask = np.pad(mask, [(0, 0), (0, 0)] + [(a["pads"][i], a["pads"][i + nd]) for i in range(nd)],
                      constant_values=1.0)
        grown = [(0, widths[i][1] - a["pads"][i + nd]) for i in range(nd)]
    else:
        grown = widths
    mask = np.pad(mask, [(0, 0), (0, 0)] + grown)
    count = windows(mask, a["kernel_shape"], a["strides"], a["dilations"], out).sum(
        axis=_reduce_axes(nd), dtype=np.float32)
    return (total / np.maximum(count, 1)).astype(x.dtype)


def lp_power(x: np.ndarray, p: int) -> np.ndarray:
    return np.abs(x) if p == 1 else np.abs(x) ** np.float32(p)


def lp_root(total: np.ndarray, p: int) -> np.ndarray:
    if p == 1:
        return total
    return np.sqrt(total) if p == 2 else total ** np.float32(1 / p)


def _lp_pool(a: dict, x: np.ndarray) -> np.ndarray:
    win, _, _ = _padded_windows(a, lp_power(x, a["p"]), 0.0)
    return lp_root(win.sum(axis=_reduce_axes(x.ndim - 2), dtype=np.float32), a["p"]).astype(
        x.dtype)


def _lp_infer(infer):
    def checked(a: dict, t: list[TensorType]) -> list[TensorType]:
        require(int(a["p"]) == a["p"] and a["p"] >= 1, f"p {a['p']} must be a positive integer")
        return infer(a, t)
    return checked


register(OpDef("max_pool", dict(POOL_ATTRS), blockable(_infer), blockable(_max_pool),
               normalize=_normalize, doc="max over each window (padding never wins)"))
register(OpDef("avg_pool", {**POOL_ATTRS, "count_include_pad": False}, blockable(_infer),
               blockable(_avg_pool), normalize=_normalize, doc="mean over each window"))
register(OpDef("sum_pool", dict(POOL_ATTRS), blockable(_infer), blockable(_sum_pool),
               normalize=_normalize, doc="sum over each window (zero padding)"))
register(OpDef("lp_pool", {**POOL_ATTRS, "p": 2}, _lp_infer(blockable(_infer)),
               blockable(_lp_pool), normalize=_normalize,
               doc="(sum of |x|^p over each window) ^ (1/p), zero padding"))


def _global_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    require(t[0].rank >= 3, f"input must be (N, C, *spatial), got {t[0]}")
    return [TensorType(t[0].shape[:2] + (1,) * (t[0].rank - 2), t[0].dtype)]


def _spatial(x: np.ndarray) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


register(OpDef("global_avg_pool", {"layout": "NCHW"}, blockable(_global_infer),
               blockable(lambda a, x: x.mean(axis=_spatial(x), keepdims=True, dtype=np.float32)),
               doc="mean over all spatial dims"))
register(OpDef("global_max_pool", {"layout": "NCHW"}, blockable(_global_infer),
               blockable(lambda a, x: x.max(axis=_spatial(x), keepdims=True)),
               doc="max over all spatial dims"))

register(OpDef("global_lp_pool", {"layout": "NCHW", "p": 2}, _lp_infer(blockable(_global_infer)),
               blockable(lambda a, x: lp_root(lp_power(x, a["p"]).sum(
                   axis=_spatial(x), keepdims=True, dtype=np.float32), a["p"]).astype(x.dtype)),
               doc="(sum of |x|^p over all spatial dims) ^ (1/p)"))


# ----- adaptive average pooling ---------------------------------------------------------------
def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's bins: output i averages [floor(i * size / out), ceil((i + 1) * size / out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    x = t[0]
    nd = x.rank - 2
    out = tuple(int(o) for o in a["output_size"])
    require(x.rank >= 3, f"input must be (N, C, *spatial), got {x}")
    require(len(out) == nd and min(out) >= 1,
            f"output_size {list(out)} must be {nd} positive sizes for input {x}")
    return [TensorType(x.shape[:2] + out, x.dtype)]


def _adaptive_avg_pool(a: dict, x: np.ndarray) -> np.ndarray:
    out = tuple(a["output_size"])
    bins = [adaptive_bins(x.shape[2 + i], o) for i, o in enumerate(out)]
    y = np.empty(x.shape[:2] + out, np.float32)
    for index in np.ndindex(*out):
        window = tuple(slice(*bins[i][j]) for i, j in enumerate(index))
        y[(slice(None), slice(None)) + index] = x[(slice(None), slice(None)) + window].mean(
            axis=tuple(range(2, x.ndim)), dtype=np.float32)
    return y


# per channel, so it also runs on the blocked layout (layout="NCHWc")
register(OpDef("adaptive_avg_pool", {"output_size": REQUIRED, "layout": "NCHW"},
               blockable(_adaptive_infer), blockable(_adaptive_avg_pool),
               doc="mean over PyTorch's adaptive bins (AdaptiveAvgPool): any output size"))
