"""OpDef and the op table: each op is defined once, with its attribute schema, shape rule and
numpy semantics side by side. Backends and frontends look ops up here; nothing falls through."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ShapeError, UnsupportedOpError
from ..tensor_type import TensorType

REQUIRED = object()  # marks an attribute without default

Infer = Callable[[dict, list[TensorType]], list[TensorType]]
Compute = Callable[..., Any]
Normalize = Callable[[dict, list[TensorType]], dict]


@dataclass(frozen=True)
class OpDef:
    """One op: `infer(attrs, in_types) -> out_types`, `compute(attrs, *arrays) -> array(s)`.

    `normalize` fills per-rank defaults (e.g. strides of ones) once, at node creation, so every
    consumer sees complete attributes.
    """

    name: str
    attrs: dict[str, Any]
    infer: Infer
    compute: Compute
    inputs: tuple[int, int | None] = (1, 1)  # (min, max); max None = variadic
    normalize: Normalize | None = None
    doc: str = ""

    def normalized(self, attrs: dict, in_types: Sequence[TensorType]) -> dict:
        lo, hi = self.inputs
        if len(in_types) < lo or (hi is not None and len(in_types) > hi):
            want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
            raise ShapeError(f"takes {want} inputs, got {len(in_types)}")
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise ShapeError(f"unknown attribute(s) {sorted(unknown)}; known: {sorted(self.attrs)}")
        full = {}
        for key, default in self.attrs.items():
            if key in attrs and attrs[key] is not None:
                full[key] = attrs[key]
            elif default is REQUIRED:
                raise ShapeError(f"missing required attribute {key!r}")
            else:
                full[key] = default
        return self.normalize(full, list(in_types)) if self.normalize else full

    def run(self, attrs: dict, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        out = self.compute(attrs, *arrays)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


OPS: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    if opdef.name in OPS:
        raise ValueError(f"op {opdef.name!r} defined twice")
    OPS[opdef.name] = opdef
    return opdef


def get_op(op: str, node_name: str | None = None) -> OpDef:
    try:
        return OPS[op]
    except KeyError:
        who = f"node {node_name!r}: " if node_name else ""
        raise UnsupportedOpError(f"{who}unknown op {op!r}", {op: [node_name or "?"]}) from None


def same(t: TensorType) -> list[TensorType]:
    return [TensorType(t.shape, t.dtype)]


def require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    require(-rank <= axis < rank, f"{what} {axis} out of range for rank {rank}")
    return axis % rank
