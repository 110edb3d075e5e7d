"""Pointwise activations, and the fused-epilogue form conv and gemm carry after fusion.

A fused epilogue is two attributes: `activation` (one of EPILOGUE_ACTIVATIONS) and
`activation_params` (leaky_relu: (alpha,), clip: (min, max), otherwise ()).
"""
from __future__ import annotations

import numpy as np

from .registry import OpDef, register, require, same


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.float32(0))


def _leaky_relu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x >= 0, x, x * np.float32(alpha)).astype(x.dtype)


def _clip(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.minimum(np.maximum(x, np.float32(lo)), np.float32(hi))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # split by sign so exp never overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


# name -> (function of (x, *params), number of params)
EPILOGUE_ACTIVATIONS = {
    "none": (lambda x: x, 0),
    "relu": (_relu, 0),
    "leaky_relu": (_leaky_relu, 1),
    "clip": (_clip, 2),
    "sigmoid": (_sigmoid, 0),
}


def check_epilogue(attrs: dict) -> None:
    act, params = attrs["activation"], attrs["activation_params"]
    require(act in EPILOGUE_ACTIVATIONS, f"unknown fused activation {act!r}")
    require(len(params) == EPILOGUE_ACTIVATIONS[act][1],
            f"activation {act!r} takes {EPILOGUE_ACTIVATIONS[act][1]} params, got {params}")


def apply_activation(x: np.ndarray, activation: str, params: tuple = ()) -> np.ndarray:
    fn, _ = EPILOGUE_ACTIVATIONS[activation]
    return fn(x, *params)


EPILOGUE_ATTRS = {"activation": "none", "activation_params": ()}


def activation_at_zero(activation: str, params: tuple = ()) -> float:
    """act(0) of a fused epilogue: non-zero (sigmoid, a clip above 0) would fill the zero
    padding lanes of a blocked tensor, which the blocked kernels and passes must mask or avoid."""
    return float(apply_activation(np.zeros(1, np.float32), activation, tuple(params))[0])


def _unary(name: str, attrs: dict, fn, doc: str) -> OpDef:
    return register(OpDef(name, attrs, lambda a, t: same(t[0]), fn, doc=doc))


_unary("relu", {}, lambda a, x: _relu(x), "max(x, 0)")
_unary("leaky_relu", {"alpha": 0.01}, lambda a, x: _leaky_relu(x, a["alpha"]),
       "x if x >= 0 else alpha * x")
_unary("clip", {"min": float("-inf"), "max": float("inf")},
       lambda a, x: _clip(x, a["min"], a["max"]), "min(max(x, min), max); relu6 is clip(0, 6)")
_unary("sigmoid", {}, lambda a, x: _sigmoid(x), "1 / (1 + exp(-x))")

# activation op name + its attrs -> the epilogue it becomes when fused into a producer
def as_epilogue(op: str, attrs: dict) -> tuple[str, tuple] | None:
    if op == "relu":
        return "relu", ()
    if op == "leaky_relu":
        return "leaky_relu", (attrs["alpha"],)
    if op == "clip":
        return "clip", (attrs["min"], attrs["max"])
    if op == "sigmoid":
        return "sigmoid", ()
    return None
