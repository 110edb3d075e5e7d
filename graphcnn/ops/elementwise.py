"""The binary elementwise table: broadcasting arithmetic declared once (add, sub, mul, div,
pow, min, max, prelu and the n-ary sum and mean).

A `Binary` holds the IR op, the numpy function of two arrays (the reference folds a variadic
op left to right with it), the same on vectors against the backend-neutral VectorMath
interface (the llvm elementwise kernels), the ONNX mapping as data, and whether f(0, 0) == 0
(a blocked tensor's zero padding lanes stay zero, so the op may run blocked).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from ..tensor_type import TensorType
from .activation import VectorMath
from .registry import OpDef, register, require


@dataclass(frozen=True)
class OnnxBinary:
    """`legacy_broadcast_before`: below this opset the `broadcast`/`axis` attributes apply."""

    op_type: str
    versions: tuple[int, ...]
    legacy_broadcast_before: int | None = None
    notes: str = ""
    # below this opset a 1-D second input of x's channel count applies per channel (PRelu-6)
    per_channel_before: int | None = None


@dataclass(frozen=True)
class Binary:
    name: str
    numpy: Callable[[np.ndarray, np.ndarray], np.ndarray]
    vector: Callable[[VectorMath, Any, Any], Any]
    onnx: OnnxBinary
    variadic: bool = False          # n inputs folded left to right (sum), else exactly two
    zero_preserving: bool = True    # f(0, 0) == 0
    cost: int = 1
    doc: str = ""
    average: bool = False           # the fold is divided by the number of inputs (mean)
    unidirectional: bool = False    # the output has input 0's shape, input 1 broadcasts into it


def _div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        require(not np.any(y == 0), "integer division by zero")
        return np.trunc(x / y).astype(np.result_type(x, y))  # ONNX truncates toward zero
    with np.errstate(all="ignore"):
        return np.divide(x, y)


def _pow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # the base's type (ONNX Pow); integer powers through float64 (numpy rejects negative ones)
    with np.errstate(all="ignore"):
        if x.dtype.kind in "iu":
            return np.power(x.astype(np.float64), y).astype(x.dtype)
        return np.power(x, y.astype(x.dtype) if y.dtype.kind in "iub" else y).astype(x.dtype)


def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, x * slope).astype(x.dtype)


_LEGACY = "opset 6: legacy broadcast/axis attributes"
BINARY_OPS: dict[str, Binary] = {b.name: b for b in (
    Binary("add", np.add, lambda m, x, y: m.add(x, y), OnnxBinary("Add", (6, 7, 13, 14), 7, _LEGACY),
           doc="x + y"),
    Binary("mul", np.multiply, lambda m, x, y: m.mul(x, y),
           OnnxBinary("Mul", (6, 7, 13, 14), 7, _LEGACY), doc="x * y"),
    Binary("sum", np.add, lambda m, x, y: m.add(x, y), OnnxBinary("Sum", (6, 8, 13)),
           variadic=True, doc="x0 + x1 + ... (left to right)"),
    Binary("sub", np.subtract, lambda m, x, y: m.sub(x, y),
           OnnxBinary("Sub", (6, 7, 13, 14), 7, _LEGACY), doc="x - y"),
    Binary("div", _div, lambda m, x, y: m.div(x, y), OnnxBinary("Div", (6, 7, 13, 14), 7, _LEGACY),
           zero_preserving=False, cost=4, doc="x / y (integers: truncated toward zero)"),
    Binary("pow", _pow, lambda m, x, y: m.pow(x, y), OnnxBinary("Pow", (1, 7, 12, 13, 15), 7,
                      "opset 1: legacy broadcast/axis attributes"),
           zero_preserving=False, cost=40, doc="x ** y (in x's type)"),
    Binary("max", np.maximum, lambda m, x, y: m.max(x, y), OnnxBinary("Max", (6, 8, 12, 13)),
           variadic=True, doc="max(x0, x1, ...)"),
    Binary("min", np.minimum, lambda m, x, y: m.min(x, y), OnnxBinary("Min", (6, 8, 12, 13)),
           variadic=True, doc="min(x0, x1, ...)"),
    Binary("mean", np.add, lambda m, x, y: m.add(x, y), OnnxBinary("Mean", (6, 8, 13)),
           variadic=True, average=True, doc="(x0 + x1 + ...) / n"),
    Binary("prelu", _prelu,
           lambda m, x, y: m.select(m.ge(x, m.zero()), x, m.mul(x, y)),
           OnnxBinary("PRelu", (6, 7, 9, 16), per_channel_before=7,
                      notes="opset 6: a 1-D slope of C values is per channel"),
           unidirectional=True,
           doc="x if x >= 0 else slope * x (the slope broadcasts into x's shape)"),
)}


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        require(len(dims) <= 1, f"shapes {list(shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    return [TensorType(broadcast_shapes(*(x.shape for x in t)), t[0].dtype)]


def _infer_into_first(a: dict, t: list[TensorType]) -> list[TensorType]:
    shape = broadcast_shapes(*(x.shape for x in t))
    require(shape == t[0].shape, f"{t[1]} does not broadcast into the shape of {t[0]}")
    return [TensorType(shape, t[0].dtype)]


def fold(op: Binary, xs: tuple[np.ndarray, ...]) -> np.ndarray:
    """The reference: the op folded left to right over its inputs (divided by n for mean)."""
    y = reduce(op.numpy, xs) + np.zeros((), xs[0].dtype)
    if op.average:
        y = (y / y.dtype.type(len(xs))).astype(y.dtype)
    return y


def _register(op: Binary) -> None:
    infer = _infer_into_first if op.unidirectional else _infer
    if op.variadic:
        register(OpDef(op.name, {}, infer, lambda a, *xs: fold(op, xs), inputs=(1, None),
                       doc=op.doc))
    else:
        register(OpDef(op.name, {}, infer, lambda a, x, y: op.numpy(x, y), inputs=(2, 2),
                       doc=op.doc))


for _op in BINARY_OPS.values():
    _register(_op)
