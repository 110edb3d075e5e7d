"""Spatial resampling: conv_transpose, resize, depth_to_space, space_to_depth.

conv_transpose(x, w[, b]): x (N, C, *S), w (C, M/groups, *kernel), b (M,). Each input pixel
scatters kernel * x into the output at stride `strides`; pads (all begins, then all ends) crop
the full result, a negative pad extends it (ONNX's output_shape larger than the natural size),
output_padding adds cells at the end of each dim. out = s*(in-1) + op + (k-1)*d + 1 - pb - pe.

resize(x): separable interpolation over every axis whose size, scale or roi differs from
identity. `sizes` is the output shape, `scales` the per-axis scale the coordinate transform uses
(ONNX: out/in when sizes were given), `roi` the per-axis (start..., end...) of
tf_crop_and_resize. `resize_taps` gives one axis' gather indices and weights; the reference and
the llvm kernel both read them, so they cannot disagree on coordinates.

depth_to_space / space_to_depth: ONNX's (DCR or CRD) channel <-> block rearrangement.
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor_type import TensorType
from .registry import REQUIRED, OpDef, register, require

# ----- conv_transpose -------------------------------------------------------------------------


def conv_transpose_size(size: int, kernel: int, stride: int, dilation: int, pad_begin: int,
                        pad_end: int, output_padding: int) -> int:
    return stride * (size - 1) + output_padding + (kernel - 1) * dilation + 1 - pad_begin - pad_end


def _ct_normalize(a: dict, t: list[TensorType]) -> dict:
    x = t[0]
    require(x.rank >= 3, f"input must be (N, C, *spatial), got {x}")
    nd = x.rank - 2
    for key in ("strides", "dilations"):
        a[key] = tuple(int(v) for v in a[key]) if a[key] else (1,) * nd
        require(len(a[key]) == nd and min(a[key]) >= 1, f"{key} {a[key]} must be {nd} ints >= 1")
    a["pads"] = tuple(int(v) for v in a["pads"]) if a["pads"] else (0,) * (2 * nd)
    require(len(a["pads"]) == 2 * nd, f"pads {a['pads']} must have {2 * nd} entries")
    op = a["output_padding"]
    a["output_padding"] = tuple(int(v) for v in op) if op else (0,) * nd
    require(len(a["output_padding"]) == nd, f"output_padding {a['output_padding']} must have "
            f"{nd} entries")
    for p, s, d in zip(a["output_padding"], a["strides"], a["dilations"]):
        # ONNX: output_padding must be smaller than the stride or the dilation
        require(0 <= p < max(s, d), f"output_padding {a['output_padding']} must be >= 0 and "
                f"smaller than the stride {a['strides']} or dilation {a['dilations']}")
    return a


def _ct_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    x, w = t[0], t[1]
    nd = x.rank - 2
    g = a["groups"]
    require(w.rank == x.rank, f"weight {w} must have the input's rank {x.rank} (input {x})")
    require(g >= 1 and x.shape[1] % g == 0,
            f"groups={g} must divide the input channels {x.shape[1]}")
    require(w.shape[0] == x.shape[1], f"weight {w} must have the input's {x.shape[1]} channels "
            f"first (C, M/groups, *kernel)")
    require(min(w.shape) >= 1, f"zero-size dims in weight {w}")
    m = w.shape[1] * g
    if len(t) == 3:
        require(t[2].shape == (m,), f"bias {t[2]} must be ({m},)")
    out = tuple(conv_transpose_size(x.shape[2 + i], w.shape[2 + i], a["strides"][i],
                                    a["dilations"][i], a["pads"][i], a["pads"][i + nd],
                                    a["output_padding"][i]) for i in range(nd))
    require(min(out) >= 1, f"pads {a['pads']} leave no output from {x} (output {out})")
    return [TensorType((x.shape[0], m) + out, x.dtype)]


def _ct_compute(a: dict, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None):
    nd, g = x.ndim - 2, a["groups"]
    s, d, p, op = a["strides"], a["dilations"], a["pads"], a["output_padding"]
    k = w.shape[2:]
    full = [s[i] * (x.shape[2 + i] - 1) + (k[i] - 1) * d[i] + 1 + op[i] for i in range(nd)]
    # negative pads extend the output: room for them before and after
    lo = [max(0, -p[i]) for i in range(nd)]
    hi = [max(0, -p[i + nd]) for i in range(nd)]
    cg, mg = x.shape[1] // g, w.shape[1]
    y = np.zeros((x.shape[0], mg * g) + tuple(f + a_ + b_ for f, a_, b_ in zip(full, lo, hi)))
    xd, wd = x.astype(np.float64), w.astype(np.float64)
    for tap in np.ndindex(*k):
        region = (slice(None), slice(None)) + tuple(
            slice(lo[i] + tap[i] * d[i], lo[i] + tap[i] * d[i] + s[i] * (x.shape[2 + i] - 1) + 1,
                  s[i]) for i in range(nd))
        for gi in range(g):
            xg = xd[:, gi * cg:(gi + 1) * cg]
            wg = wd[(slice(gi * cg, (gi + 1) * cg), slice(None)) + tap]
            contrib = np.moveaxis(np.tensordot(xg, wg, axes=([1], [0])), -1, 1)
            sub = (region[0], slice(gi * mg, (gi + 1) * mg)) + region[2:]
            y[sub] += contrib
    crop = (slice(None), slice(None)) + tuple(
        slice(max(0, p[i]), y.shape[2 + i] - max(0, p[i + nd])) for i in range(nd))
    y = y[crop]
    if b is not None:
        y = y + b.astype(np.float64).reshape((1, -1) + (1,) * nd)
    return np.ascontiguousarray(y).astype(x.dtype)


register(OpDef(
    "conv_transpose",
    {"strides": None, "pads": None, "dilations": None, "output_padding": None, "groups": 1},
    _ct_infer, _ct_compute, inputs=(2, 3), normalize=_ct_normalize,
    doc="N-d transposed convolution with groups, dilations, output_padding; optional bias",
))


# ----- resize ---------------------------------------------------------------------------------
RESIZE_MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _source_coords(mode: str, out_len: int, in_len: int, scale: float, roi: tuple[float, float]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each output index's source coordinate, and whether it lies outside the input (only
    tf_crop_and_resize extrapolates). ONNX's formulas and reference, whose output width is
    scale * in (fractional when the scale was given; onnxruntime's corner-aligned modes use the
    integer length instead, which differs only for scales with a fractional output width)."""
    y = np.arange(out_len, dtype=np.float64)
    width = scale * in_len
    outside = np.zeros(out_len, bool)
    if mode == "align_corners":
        x = np.zeros(out_len) if width == 1 else y * (in_len - 1) / (width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        start, end = roi
        if width == 1:
            x = np.full(out_len, (end - start) * (in_len - 1) / 2)
        else:
            x = y * (end - start) * (in_len - 1) / (width - 1)
        x = x + start * (in_len - 1)
        outside = (x < 0) | (x > in_len - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out_len, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    else:  # half_pixel_symmetric
        offset = in_len / 2 * (1 - out_len / width)
        x = offset + (y + 0.5) / scale - 0.5
    return x, outside


def _cubic(r: np.ndarray, a: float) -> np.ndarray:
    """The 4 cubic convolution weights at fractional offset r (ONNX's cubic_coeff_a)."""
    def near(t):  # |t| <= 1
        return ((a + 2) * t - (a + 3)) * t * t + 1

    def far(t):  # 1 < |t| < 2
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.stack([far(r + 1), near(r), near(1 - r), far(2 - r)], axis=-1)


def resize_taps(attrs: dict, axis: int, in_len: int) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray] | None:
    """(indices (out, T), weights (out, T) float64, outside (out,)) for one axis; None when the
    axis is left as it is (same size, scale 1, full roi). Indices are clamped to the input
    (ONNX pads with edge values); `outside` marks outputs set to extrapolation_value."""
    out_len, scale = attrs["sizes"][axis], float(attrs["scales"][axis])
    rank = len(attrs["sizes"])
    roi = (0.0, 1.0)
    if attrs["roi"]:
        roi = (float(attrs["roi"][axis]), float(attrs["roi"][axis + rank]))
    if out_len == in_len and math.isclose(scale, 1.0) and (
            attrs["coordinate_transformation_mode"] != "tf_crop_and_resize" or
            (math.isclose(roi[0], 0.0) and math.isclose(roi[1], 1.0))):
        return None
    x, outside = _source_coords(attrs["coordinate_transformation_mode"], out_len, in_len,
                                scale, roi)
    base = np.floor(x)
    r = x - base
    base = base.astype(np.int64)
    mode = attrs["mode"]
    if mode == "nearest":
        nm = attrs["nearest_mode"]
        up = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5,
              "floor": np.zeros_like(r, bool), "ceil": r > 0}[nm]
        idx = (base + up)[:, None]
        w = np.ones((out_len, 1))
    elif mode == "linear":
        idx = base[:, None] + np.arange(2)[None, :]
        w = np.stack([1 - r, r], axis=-1)
    else:
        idx = base[:, None] + np.arange(-1, 3)[None, :]
        w = _cubic(r, float(attrs["cubic_coeff_a"]))
        if attrs["exclude_outside"]:
            w = np.where((idx < 0) | (idx >= in_len), 0.0, w)
            total = w.sum(axis=-1, keepdims=True)
            w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, in_len - 1), w, outside


def _resize_normalize(a: dict, t: list[TensorType]) -> dict:
    x = t[0]
    rank = x.rank
    require(a["mode"] in RESIZE_MODES, f"mode {a['mode']!r} must be one of {RESIZE_MODES}")
    require(a["coordinate_transformation_mode"] in COORDINATE_MODES,
            f"coordinate_transformation_mode {a['coordinate_transformation_mode']!r} must be "
            f"one of {COORDINATE_MODES}")
    require(a["nearest_mode"] in NEAREST_MODES,
            f"nearest_mode {a['nearest_mode']!r} must be one of {NEAREST_MODES}")
    a["sizes"] = tuple(int(s) for s in a["sizes"])
    require(len(a["sizes"]) == rank and min(a["sizes"]) >= 1,
            f"sizes {a['sizes']} must be {rank} sizes >= 1 for {x}")
    a["scales"] = tuple(float(s) for s in a["scales"]) if a["scales"] else tuple(
        o / i for o, i in zip(a["sizes"], x.shape))
    require(len(a["scales"]) == rank and all(s > 0 for s in a["scales"]),
            f"scales {a['scales']} must be {rank} scales > 0 for {x}")
    a["roi"] = tuple(float(r) for r in a["roi"] or ())
    require(not a["roi"] or len(a["roi"]) == 2 * rank, f"roi {a['roi']} must have {2 * rank} "
            f"entries")
    a["exclude_outside"] = int(a["exclude_outside"])
    return a


def _resize_compute(a: dict, x: np.ndarray) -> np.ndarray:
    y = x.astype(np.float64)
    for axis in range(x.ndim):
        taps = resize_taps(a, axis, x.shape[axis])
        if taps is None:
            continue
        idx, w, outside = taps
        shape = (1,) * axis + w.shape + (1,) * (x.ndim - axis - 1)
        y = (np.take(y, idx, axis=axis) * w.reshape(shape)).sum(axis=axis + 1)
        if outside.any():
            mask = outside.reshape((1,) * axis + (-1,) + (1,) * (x.ndim - axis - 1))
            y = np.where(mask, float(a["extrapolation_value"]), y)
    return y.astype(x.dtype)


register(OpDef(
    "resize",
    {"sizes": REQUIRED, "scales": None, "roi": None, "mode": "nearest",
     "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_floor",
     "cubic_coeff_a": -0.75, "exclude_outside": 0, "extrapolation_value": 0.0},
    lambda a, t: [TensorType(a["sizes"], t[0].dtype)], _resize_compute,
    normalize=_resize_normalize,
    doc="nearest / linear / cubic interpolation to `sizes`, ONNX coordinate transforms",
))


# ----- depth_to_space / space_to_depth --------------------------------------------------------
def _blocks_normalize(a: dict, t: list[TensorType]) -> dict:
    require(a["mode"] in ("DCR", "CRD"), f"mode {a['mode']!r} must be DCR or CRD")
    require(t[0].rank == 4, f"input must be (N, C, H, W), got {t[0]}")
    require(a["blocksize"] >= 1, f"blocksize {a['blocksize']} must be >= 1")
    return a


def _d2s_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    n, c, h, w = t[0].shape
    bs = a["blocksize"]
    require(c % (bs * bs) == 0, f"blocksize {bs}: {bs * bs} does not divide the {c} channels")
    return [TensorType((n, c // (bs * bs), h * bs, w * bs), t[0].dtype)]


def depth_to_space_perm(mode: str) -> tuple[int, ...]:
    """The transpose of depth_to_space's 6-D view (d2s_split_shape)."""
    return (0, 1, 4, 2, 5, 3) if mode == "CRD" else (0, 3, 4, 1, 5, 2)


def d2s_split_shape(a: dict, shape) -> tuple[int, ...]:
    """depth_to_space's view of the input: DCR splits C as (b, b, C'), CRD as (C', b, b)."""
    n, c, h, w = shape
    bs = a["blocksize"]
    cc = c // (bs * bs)
    return (n, bs, bs, cc, h, w) if a["mode"] == "DCR" else (n, cc, bs, bs, h, w)


def _d2s_compute(a: dict, x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    bs = a["blocksize"]
    y = np.transpose(x.reshape(d2s_split_shape(a, x.shape)), depth_to_space_perm(a["mode"]))
    return np.ascontiguousarray(y.reshape(n, c // (bs * bs), h * bs, w * bs))


def _s2d_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    n, c, h, w = t[0].shape
    bs = a["blocksize"]
    require(h % bs == 0 and w % bs == 0,
            f"blocksize {bs} does not divide the spatial dims {h}x{w}")
    return [TensorType((n, c * bs * bs, h // bs, w // bs), t[0].dtype)]


def space_to_depth_perm(mode: str) -> tuple[int, ...]:
    """The transpose of the (N, C, H/b, b, W/b, b) view: DCR puts the blocks first."""
    return (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)


def _s2d_compute(a: dict, x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    bs = a["blocksize"]
    y = np.transpose(x.reshape(n, c, h // bs, bs, w // bs, bs), space_to_depth_perm(a["mode"]))
    return np.ascontiguousarray(y.reshape(n, c * bs * bs, h // bs, w // bs))


register(OpDef("depth_to_space", {"blocksize": REQUIRED, "mode": "DCR"}, _d2s_infer,
               _d2s_compute, normalize=_blocks_normalize,
               doc="(N, C*b*b, H, W) -> (N, C, H*b, W*b), DCR or CRD channel order"))
register(OpDef("space_to_depth", {"blocksize": REQUIRED, "mode": "DCR"}, _s2d_infer,
               _s2d_compute, normalize=_blocks_normalize,
               doc="(N, C, H*b, W*b) -> (N, C*b*b, H, W), DCR or CRD channel order"))
