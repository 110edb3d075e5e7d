"""Normalisations: the softmax family (softmax, log_softmax: one axis, ONNX opset-13 semantics),
inference batch norm, LRN, and the statistics normalisations computed at run time: layer_norm,
group_norm (InstanceNormalization is its one-group-per-channel case), lp_norm and
mean_variance_norm."""
from __future__ import annotations

import numpy as np

from ..tensor_type import TensorType
from .activation import EPILOGUE_ATTRS, apply_activation, check_epilogue
from .layout import LAYOUTS, blockable, from_blocked, to_blocked
from .registry import REQUIRED, OpDef, norm_axis, register, require, same


def _softmax_normalize(a: dict, t: list[TensorType]) -> dict:
    a["axis"] = norm_axis(a["axis"], t[0].rank)
    return a


def _softmax(a: dict, x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=a["axis"], keepdims=True))  # shift by the max: no overflow
    return (e / e.sum(axis=a["axis"], keepdims=True)).astype(x.dtype)


def _log_softmax(a: dict, x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=a["axis"], keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=a["axis"], keepdims=True))).astype(x.dtype)


# the softmax family: op name -> (numpy semantics, doc); the llvm emitter and the importer
# are shared, the log form differing only in its last step
SOFTMAX_OPS = {
    "softmax": (_softmax, "exp(x - max) / sum(exp(x - max)) along axis"),
    "log_softmax": (_log_softmax, "x - max - log(sum(exp(x - max))) along axis"),
}
for _name, (_fn, _doc) in SOFTMAX_OPS.items():
    register(OpDef(_name, {"axis": -1}, lambda a, t: same(t[0]), _fn,
                   normalize=_softmax_normalize, doc=_doc))


def _bn_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    x = t[0]
    require(x.rank >= 2, f"batch_norm input must be (N, C, ...), got {x}")
    require(a["epsilon"] >= 0, f"attribute epsilon {a['epsilon']} must be >= 0 (and not NaN): "
            f"var + epsilon is under a square root")
    for name, p in zip(("scale", "bias", "mean", "var"), t[1:]):
        require(p.shape == (x.shape[1],), f"{name} {p} must be ({x.shape[1]},) for input {x}")
    return same(x)


def _batch_norm(a: dict, x, scale, bias, mean, var):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = (scale / np.sqrt(var + np.float32(a["epsilon"]))).reshape(shape)
    y = ((x - mean.reshape(shape)) * inv + bias.reshape(shape)).astype(x.dtype)
    return apply_activation(y, a["activation"], a["activation_params"])


def _bn_normalize(a: dict, t: list[TensorType]) -> dict:
    require(a["layout"] in LAYOUTS, f"layout must be one of {LAYOUTS}")
    check_epilogue(a)
    return a


# layout="NCHWc": x is blocked (N, Cb, *S, b) and the parameters cover all Cb*b channels (the
# layout pass pads them with scale 0, bias 0, mean 0, var 1, which keeps padding channels 0)
# activation: a fused epilogue (passes/fuse_activation.py), as on conv
register(OpDef("batch_norm", {"epsilon": 1e-5, "layout": "NCHW", **EPILOGUE_ATTRS},
               blockable(_bn_infer), blockable(_batch_norm), inputs=(5, 5),
               normalize=_bn_normalize,
               doc="act((x - mean) / sqrt(var + eps) * scale + bias), per channel (inference)"))


def _lrn_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    require(t[0].rank >= 3, f"lrn input must be (N, C, *spatial), got {t[0]}")
    require(a["size"] >= 1, f"size {a['size']} must be >= 1")
    return same(t[0])


def _lrn(a: dict, x: np.ndarray) -> np.ndarray:
    size = a["size"]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2  # channels [c - lo, c + hi]
    sq = np.pad(np.square(x), [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    csum = np.cumsum(sq, axis=1, dtype=np.float64)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    window = (csum[:, size:] - csum[:, :-size]).astype(np.float32)
    return (x / (np.float32(a["bias"]) + np.float32(a["alpha"] / size) * window)
            ** np.float32(a["beta"])).astype(x.dtype)


register(OpDef("lrn", {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}, _lrn_infer, _lrn,
               doc="x / (bias + alpha/size * sum of squares over `size` channels) ** beta"))


# ----- statistics normalisations: y = (x - mean) / sqrt(var + eps) * scale + bias ----------------
# mean and variance are two-pass (the variance of x - mean), in float32, as the llvm kernels
def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float32)
    centered = x - mean
    var = np.square(centered).mean(axis=axes, keepdims=True, dtype=np.float32)
    return (centered / np.sqrt(var + np.float32(eps))).astype(np.float32)


def _check_epsilon(a: dict) -> None:
    require(a["epsilon"] >= 0, f"attribute epsilon {a['epsilon']} must be >= 0 (and not NaN): "
            f"var + epsilon is under a square root")


def _ln_normalize(a: dict, t: list[TensorType]) -> dict:
    a["axis"] = norm_axis(a["axis"], t[0].rank)
    return a


def _ln_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    _check_epsilon(a)
    x = t[0]
    for name, p in zip(("scale", "bias"), t[1:]):
        require(p.shape == x.shape[a["axis"]:], f"{name} {p} must have the normalized shape "
                f"{list(x.shape[a['axis']:])} of input {x}")
    if not a["stats"]:
        return same(x)
    stat = TensorType(x.shape[:a["axis"]] + (1,) * (x.rank - a["axis"]), x.dtype)
    return [same(x)[0], stat, stat]


def _layer_norm(a: dict, x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None = None):
    axes = tuple(range(a["axis"], x.ndim))
    y = _standardize(x, axes, a["epsilon"]) * scale
    y = (y if bias is None else y + bias).astype(x.dtype)
    if not a["stats"]:
        return y
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float32)
    var = np.square(x - mean).mean(axis=axes, keepdims=True, dtype=np.float32)
    return y, mean, (np.float32(1) / np.sqrt(var + np.float32(a["epsilon"]))).astype(x.dtype)


# stats=True: two more outputs, the mean and 1 / sqrt(var + eps) of each normalized slice
register(OpDef("layer_norm", {"axis": -1, "epsilon": 1e-5, "stats": False}, _ln_infer,
               _layer_norm, inputs=(2, 3), normalize=_ln_normalize,
               doc="standardized over dims[axis:], times scale plus bias (of those dims)"))


def _gn_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    _check_epsilon(a)
    x = t[0]
    require(x.rank >= 2, f"group_norm input must be (N, C, ...), got {x}")
    c, g = x.shape[1], a["num_groups"]
    require(g >= 1 and c % g == 0, f"num_groups {g} must divide the {c} channels of {x}")
    for name, p in zip(("scale", "bias"), t[1:]):
        require(p.shape == (c,), f"{name} {p} must be ({c},) for input {x}")
    return same(x)


def _group_norm(a: dict, x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    n, c, g = x.shape[0], x.shape[1], a["num_groups"]
    grouped = _standardize(x.reshape(n, g, -1), (2,), a["epsilon"]).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return (grouped * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype)


def _gn_normalize(a: dict, t: list[TensorType]) -> dict:
    require(a["layout"] in LAYOUTS, f"layout must be one of {LAYOUTS}")
    if a["layout"] == "NCHWc":
        x = t[0]
        require(x.rank >= 4 and a["num_groups"] == x.shape[1] * x.shape[-1] and a["epsilon"] > 0,
                f"a blocked group_norm is an instance norm over every blocked channel "
                f"(num_groups {x.shape[1] * x.shape[-1]}) with epsilon > 0, got {a} for {x}")
    return a


# InstanceNormalization is the group norm with one group per channel. layout="NCHWc" (an
# instance norm only): x is blocked (N, Cb, *S, b), every one of the Cb*b channels its own
# group, scale and bias padded with zeros (a zero padding channel normalises to 0 when eps > 0)
register(OpDef("group_norm", {"num_groups": REQUIRED, "epsilon": 1e-5, "layout": "NCHW"},
               blockable(_gn_infer), blockable(_group_norm), inputs=(3, 3),
               normalize=_gn_normalize, doc="standardized per (image, group of channels), "
               "times scale plus bias per channel"))


def _lp_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    require(a["p"] in (1, 2), f"p {a['p']} must be 1 or 2")
    return same(t[0])


def _lp_norm(a: dict, x: np.ndarray) -> np.ndarray:
    v = np.abs(x) if a["p"] == 1 else np.square(x)
    norm = v.sum(axis=a["axis"], keepdims=True, dtype=np.float32)
    norm = norm if a["p"] == 1 else np.sqrt(norm)
    with np.errstate(all="ignore"):  # a zero norm gives 0, as onnx's reference
        return np.where(norm == 0, np.float32(0), x / norm).astype(x.dtype)


register(OpDef("lp_norm", {"axis": -1, "p": 2}, _lp_infer, _lp_norm,
               normalize=_softmax_normalize, doc="x / ||x||_p along axis (p 1 or 2)"))

MVN_EPSILON = 1e-9  # added to the standard deviation (ONNX's function body)


def _mvn_normalize(a: dict, t: list[TensorType]) -> dict:
    rank = t[0].rank
    axes = [norm_axis(int(ax), rank, "axis") for ax in a["axes"]]
    require(len(set(axes)) == len(axes), f"axes {list(a['axes'])} repeat an axis")
    a["axes"] = tuple(sorted(axes))
    return a


def _mvn(a: dict, x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=a["axes"], keepdims=True, dtype=np.float32)
    centered = x - mean
    std = np.sqrt(np.square(centered).mean(axis=a["axes"], keepdims=True, dtype=np.float32))
    return (centered / (std + np.float32(MVN_EPSILON))).astype(x.dtype)


register(OpDef("mean_variance_norm", {"axes": (0, 2, 3)}, lambda a, t: same(t[0]), _mvn,
               normalize=_mvn_normalize,
               doc="(x - mean) / (std + 1e-9) over axes (mean and std over those axes)"))


# channel_norm: the layer norm over the channels at each position of (N, C, *S): ConvNeXt's
# LayerNorm2d, which exporters write as transpose -> LayerNormalization(axis=-1) -> transpose.
# layout="NCHWc": input and output blocked (N, Cb, *S, b), `channels` of the Cb*b real (the
# statistics skip the padding lanes; scale and bias are padded with zeros, which keeps them 0)
def _cn_normalize(a: dict, t: list[TensorType]) -> dict:
    require(a["layout"] in LAYOUTS, f"layout must be one of {LAYOUTS}")
    if a["layout"] == "NCHW":
        a["channels"] = a["channels"] or t[0].shape[1]
    return a


def _cn_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    _check_epsilon(a)
    x, c = t[0], a["channels"]
    blocked = a["layout"] == "NCHWc"
    require(x.rank >= 3 + blocked, f"channel_norm input must be (N, C, *spatial), got {x}")
    width = x.shape[1] * x.shape[-1] if blocked else x.shape[1]
    require(0 < c <= width and (not blocked or -(-c // x.shape[-1]) == x.shape[1]),
            f"channels={c} do not fit the input {x}")
    for name, p in zip(("scale", "bias"), t[1:]):
        require(p.shape == (width,), f"{name} {p} must be ({width},) for input {x}")
    return same(x)


def _channel_norm(a: dict, x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    blocked = a["layout"] == "NCHWc"
    plain = from_blocked(x, a["channels"]) if blocked else x
    c = a["channels"]
    shape = (1, c) + (1,) * (plain.ndim - 2)
    y = _standardize(plain, (1,), a["epsilon"]) * scale[:c].reshape(shape) + \
        bias[:c].reshape(shape)
    return to_blocked(y.astype(x.dtype), x.shape[-1]) if blocked else y.astype(x.dtype)


register(OpDef("channel_norm", {"epsilon": 1e-5, "layout": "NCHW", "channels": 0}, _cn_infer,
               _channel_norm, inputs=(3, 3), normalize=_cn_normalize,
               doc="standardized over the channels at each position, times scale plus bias "
                   "per channel"))
