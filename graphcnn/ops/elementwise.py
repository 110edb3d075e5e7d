"""The binary elementwise table: broadcasting arithmetic declared once (add, mul, sum).

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


_LEGACY = "opset 6: legacy broadcast/axis attributes"
BINARY_OPS: dict[str, Binary] = {b.name: b for b in (
    Binary("add", np.add, lambda m, x, y: m.add(x, y), OnnxBinary("Add", (6, 7, 13, 14), 7, _LEGACY),
           doc="x + y"),
    Binary("mul", np.multiply, lambda m, x, y: m.mul(x, y),
           OnnxBinary("Mul", (6, 7, 13, 14), 7, _LEGACY), doc="x * y"),
    Binary("sum", np.add, lambda m, x, y: m.add(x, y), OnnxBinary("Sum", (6, 8, 13)),
           variadic=True, doc="x0 + x1 + ... (left to right)"),
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


def _register(op: Binary) -> None:
    if op.variadic:
        register(OpDef(op.name, {}, _infer,
                       lambda a, *xs: reduce(op.numpy, xs) + np.zeros((), xs[0].dtype),
                       inputs=(1, None), doc=op.doc))
    else:
        register(OpDef(op.name, {}, _infer, lambda a, x, y: op.numpy(x, y), inputs=(2, 2),
                       doc=op.doc))


for _op in BINARY_OPS.values():
    _register(_op)
