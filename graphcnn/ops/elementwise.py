"""Binary and variadic elementwise arithmetic with numpy broadcasting: add, mul, sum."""
from __future__ import annotations

from functools import reduce

import numpy as np

from ..tensor_type import TensorType
from .registry import OpDef, register, require


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


register(OpDef("add", {}, _infer, lambda a, x, y: np.add(x, y), inputs=(2, 2), doc="x + y"))
register(OpDef("mul", {}, _infer, lambda a, x, y: np.multiply(x, y), inputs=(2, 2), doc="x * y"))
register(OpDef("sum", {}, _infer, lambda a, *xs: reduce(np.add, xs) + np.zeros((), xs[0].dtype),
               inputs=(1, None), doc="x0 + x1 + ... (left to right)"))
