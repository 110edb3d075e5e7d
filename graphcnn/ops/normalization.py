"""Normalisations: the softmax family (softmax, log_softmax: one axis, ONNX opset-13 semantics),
inference batch norm, LRN."""
from __future__ import annotations

import numpy as np

from ..tensor_type import TensorType
from .activation import EPILOGUE_ATTRS, apply_activation, check_epilogue
from .layout import LAYOUTS, blockable
from .registry import OpDef, norm_axis, register, require, same


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
