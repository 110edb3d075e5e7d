"""ONNX import of the spatial resampling ops (graphcnn/ops/spatial.py): ConvTranspose, Resize,
Upsample, DepthToSpace, SpaceToDepth.

Everything shape-like is resolved here from the static shapes: ConvTranspose's auto_pad and
output_shape become explicit (possibly negative) pads, Resize's scales / sizes / axes /
keep_aspect_ratio_policy become the full output shape and per-axis scales, and the opset
differences (Resize-10 and Upsample: asymmetric coordinates, ORT's "simple" nearest rounding)
become the one IR form.
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from ..ops.spatial import COORDINATE_MODES, NEAREST_MODES
from .onnx_batch import rebatched_shape
from .onnx_context import Context, importer
from .onnx_ops import _ints, _spatial_input


@importer("ConvTranspose", (1, 11, 22),
          ("auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape",
           "pads", "strides"),
          notes="output_shape and auto_pad resolve to explicit pads from the static shapes")
def conv_transpose(ctx: Context) -> Value:
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
    out_pad = _ints(ctx, "output_padding", nd, 0)
    if min(strides) < 1 or min(dilations) < 1:
        raise ctx.shape_error(f"strides {strides} and dilations {dilations} must be >= 1")
    groups = int(ctx.attr("group", 1))
    if groups < 1 or x.shape[1] % groups:
        raise ctx.shape_error(f"group {groups} must divide the input channels {x.shape[1]}")
    auto = ctx.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ctx.shape_error(f"unknown auto_pad {auto!r}")
    pads = _ints(ctx, "pads", 2 * nd, 0) if auto == "NOTSET" else [0] * (2 * nd)
    target = None
    if ctx.has_attr("output_shape"):
        target = [int(v) for v in ctx.attr("output_shape")]
        if len(target) == nd + 2:  # some exporters give the full (N, M, *S) shape
            target = target[2:]
        if len(target) != nd or min(target) < 1:
            raise ctx.shape_error(f"output_shape {target} must be {nd} sizes >= 1")
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        target = [x.shape[2 + i] * strides[i] for i in range(nd)]
    if target is not None:  # the spec's total padding, split by auto_pad
        begins, ends = [], []
        for i in range(nd):
            natural = strides[i] * (x.shape[2 + i] - 1) + out_pad[i] + \
                (kernel[i] - 1) * dilations[i] + 1
            total = natural - target[i]
            if -total >= max(strides[i], dilations[i]):  # more than output_padding could add
                raise ctx.shape_error(f"output_shape {target} is larger than strides "
                                      f"{strides} and kernel {kernel} can reach from "
                                      f"{list(x.shape[2:])}")
            small, big = total // 2, total - total // 2
            begins.append(small if auto == "SAME_UPPER" else big)
            ends.append(big if auto == "SAME_UPPER" else small)
        pads = begins + ends
    attrs = {"strides": strides, "dilations": dilations, "pads": pads,
             "output_padding": out_pad, "groups": groups}
    return ctx.emit("conv_transpose", [x, w] + ([b] if b is not None else []), attrs)


# ----- Resize / Upsample ------------------------------------------------------------------------


def _floats(ctx: Context, i: int, what: str) -> list[float] | None:
    data = ctx.const(i, what)
    if data is None or data.size == 0:  # an empty tensor stands for "not given"
        return None
    if data.ndim != 1 or data.dtype.kind != "f":
        raise ctx.shape_error(f"{what} must be a 1-D float tensor, got {data.dtype}"
                              f"{list(data.shape)}")
    return [float(v) for v in data]


def _emit_resize(ctx: Context, x: Value, attrs: dict, scales: list[float] | None,
                 sizes: list[int] | None, axes: list[int], roi: list[float] | None,
                 policy: str = "stretch") -> Value:
    """The resize node from scales or sizes over `axes` (ONNX's output-size rules)."""
    rank = x.type.rank
    full_scales = [1.0] * rank
    full_sizes = list(x.shape)
    if (scales is None) == (sizes is None):
        raise ctx.shape_error("give exactly one of scales and sizes")
    given = scales if scales is not None else sizes
    if len(given) != len(axes):
        raise ctx.shape_error(f"{'scales' if scales is not None else 'sizes'} {given} must "
                              f"have {len(axes)} entries (one per axis of {list(axes)})")
    if scales is not None:
        if not all(s > 0 for s in scales):
            raise ctx.shape_error(f"scales {scales} must all be > 0")
        for a, s in zip(axes, scales):
            full_scales[a] = s
            full_sizes[a] = int(np.floor(x.shape[a] * s))
        if min(full_sizes) < 1:
            raise ctx.shape_error(f"scales {scales} make an empty output from {x.type}")
    else:
        if not all(s >= 1 for s in sizes):
            raise ctx.shape_error(f"sizes {sizes} must all be >= 1")
        if policy not in ("stretch", "not_larger", "not_smaller"):
            raise ctx.shape_error(f"unknown keep_aspect_ratio_policy {policy!r}")
        ratios = [s / x.shape[a] for a, s in zip(axes, sizes)]
        if policy != "stretch":
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            ratios = [scale] * len(axes)
            sizes = [int(scale * x.shape[a] + 0.5) for a in axes]
        elif ctx.rebatch is not None and axes and axes[0] == 0:
            sizes = rebatched_shape(sizes, x.shape, *ctx.rebatch)
            ratios[0] = sizes[0] / x.shape[0]
        for a, s, r in zip(axes, sizes, ratios):
            full_sizes[a], full_scales[a] = s, r
    full_roi = None
    if roi is not None and attrs["coordinate_transformation_mode"] == "tf_crop_and_resize":
        if len(roi) != 2 * len(axes):
            raise ctx.shape_error(f"roi {roi} must have {2 * len(axes)} entries")
        full_roi = [0.0] * rank + [1.0] * rank
        for i, a in enumerate(axes):
            full_roi[a], full_roi[a + rank] = roi[i], roi[i + len(axes)]
    elif attrs["coordinate_transformation_mode"] == "tf_crop_and_resize":
        raise ctx.shape_error("tf_crop_and_resize needs the roi input")
    return ctx.emit("resize", [x], {**attrs, "sizes": full_sizes, "scales": full_scales,
                                    "roi": full_roi})


def _mode(ctx: Context, key: str, default: str, allowed) -> str:
    value = ctx.attr(key, default)
    if value not in allowed:
        raise ctx.shape_error(f"unknown {key} {value!r}; known: {list(allowed)}")
    return value


def _legacy_attrs(ctx: Context, scales: list[float]) -> dict:
    """Upsample and Resize-10: asymmetric coordinates; nearest rounds down when enlarging and
    up when shrinking (onnxruntime's "simple" rounding, the same on every axis)."""
    mode = ctx.attr("mode", "nearest")
    mode = {"bilinear": "linear", "trilinear": "linear"}.get(mode, mode)
    if mode not in ("nearest", "linear"):
        raise ctx.shape_error(f"unknown mode {mode!r}; known: ['nearest', 'linear']")
    shrinking = [s < 1 for s in scales if s != 1]
    if shrinking and any(shrinking) != all(shrinking):
        raise ctx.unsupported(f"nearest with scales {scales} both enlarging and shrinking")
    return {"mode": mode, "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "ceil" if shrinking and all(shrinking) else "floor"}


@importer("Upsample", (7, 9, 10), ("mode", "scales"),
          notes="as Resize with asymmetric coordinates; nearest rounds down; the deprecated "
                "schema 10 (opsets >= 10) as 9")
def upsample(ctx: Context) -> Value:
    x = ctx.input(0)
    if ctx.version < 9:
        scales = ctx.attr("scales")
        if scales is None:
            raise ctx.shape_error("missing required attribute scales")
        scales = [float(s) for s in scales]
    else:
        scales = _floats(ctx, 1, "scales")
        if scales is None:
            raise ctx.shape_error("missing scales")
    if any(s < 1 for s in scales):
        raise ctx.shape_error(f"scales {scales} must be >= 1 (Upsample only enlarges)")
    return _emit_resize(ctx, x, _legacy_attrs(ctx, scales), scales, None,
                        list(range(x.type.rank)), None)


@importer("Resize", (10, 11, 13, 18, 19),
          ("antialias", "axes", "coordinate_transformation_mode", "cubic_coeff_a",
           "exclude_outside", "extrapolation_value", "keep_aspect_ratio_policy", "mode",
           "nearest_mode", "roi", "scales", "sizes"),
          notes="roi, scales and sizes must be constants; antialias=1 is unsupported")
def resize(ctx: Context) -> Value:
    x = ctx.input(0)
    rank = x.type.rank
    if ctx.version < 11:
        scales = _floats(ctx, 1, "scales")
        if scales is None:
            raise ctx.shape_error("missing scales")
        return _emit_resize(ctx, x, _legacy_attrs(ctx, scales), scales, None,
                            list(range(rank)), None)
    if int(ctx.attr("antialias", 0)):
        raise ctx.unsupported("antialias=1 is not supported")
    mode = _mode(ctx, "mode", "nearest", ("nearest", "linear", "cubic"))
    attrs = {"mode": mode,
             "coordinate_transformation_mode": _mode(
                 ctx, "coordinate_transformation_mode", "half_pixel", COORDINATE_MODES),
             "nearest_mode": _mode(ctx, "nearest_mode", "round_prefer_floor", NEAREST_MODES),
             "cubic_coeff_a": float(ctx.attr("cubic_coeff_a", -0.75)),
             "exclude_outside": int(ctx.attr("exclude_outside", 0)),
             "extrapolation_value": float(ctx.attr("extrapolation_value", 0.0))}
    axes = list(range(rank))
    if ctx.has_attr("axes"):
        axes = [int(a) for a in ctx.attr("axes")]
        if any(not -rank <= a < rank for a in axes):
            raise ctx.shape_error(f"axes {axes} out of range for {x.type}")
        axes = [a % rank for a in axes]
        if len(set(axes)) != len(axes):
            raise ctx.shape_error(f"repeated axes {axes}")
    roi = _floats(ctx, 1, "roi")
    scales = _floats(ctx, 2, "scales")
    sizes = ctx.const_ints(3, "sizes")
    if sizes is not None and not sizes:
        sizes = None
    return _emit_resize(ctx, x, attrs, scales, sizes, axes, roi,
                        ctx.attr("keep_aspect_ratio_policy", "stretch"))


# ----- DepthToSpace / SpaceToDepth ------------------------------------------------------------


def _blocks(ctx: Context, op: str) -> Value:
    x = ctx.input(0)
    if x.type.rank != 4:
        raise ctx.shape_error(f"input {x.type} must be (N, C, H, W)")
    if not ctx.has_attr("blocksize"):
        raise ctx.shape_error("missing required attribute blocksize")
    bs = int(ctx.attr("blocksize"))
    mode = ctx.attr("mode", "DCR")
    if bs < 1:
        raise ctx.shape_error(f"blocksize {bs} must be >= 1")
    if mode not in ("DCR", "CRD"):
        raise ctx.shape_error(f"unknown mode {mode!r}; known: ['DCR', 'CRD']")
    _, c, h, w = x.shape
    if op == "depth_to_space" and c % (bs * bs):
        raise ctx.shape_error(f"blocksize {bs}: {bs * bs} does not divide the {c} channels")
    if op == "space_to_depth" and (h % bs or w % bs):
        raise ctx.shape_error(f"blocksize {bs} does not divide the spatial dims {h}x{w}")
    return ctx.emit(op, [x], {"blocksize": bs, "mode": mode})


@importer("DepthToSpace", (1, 11, 13, 28), ("blocksize", "mode"))
def depth_to_space(ctx: Context) -> Value:
    return _blocks(ctx, "depth_to_space")


@importer("SpaceToDepth", (1, 13, 28), ("blocksize", "mode"),
          notes="mode (DCR, CRD) as DepthToSpace's")
def space_to_depth(ctx: Context) -> Value:
    return _blocks(ctx, "space_to_depth")
