"""The reduction table: ReduceMean/Max/Min/Sum/Prod/L1/L2/LogSum/LogSumExp/SumSquare as one family.

A `Reduction` says what the reference and the kernels compute, as data: a map applied to each
element (`pre`: abs, square), the combining operation and its identity (`combine`, `init`), and
what is done to the combined value (`post`: divide by the count, square root). LogSumExp is
`log(sum(exp(x - max))) + max` (the max taken first, as onnxruntime does: no overflow).

IR attributes: `axes` (sorted, non-negative after normalisation; empty in the node = every
axis, as in ONNX) and `keepdims`. ONNX's noop_with_empty_axes is resolved at import (an
identity). Reducing over a zero-size axis gives the identity of the combine (sum 0, prod 1,
max -inf, min +inf), as numpy and onnxruntime do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tensor_type import TensorType
from .registry import OpDef, register, require


@dataclass(frozen=True)
class Reduction:
    name: str        # IR op name
    onnx: str        # ONNX op type
    versions: tuple[int, ...]  # ONNX since_versions imported
    axes_input_since: int      # ONNX opset from which axes is an input
    combine: str     # "add" | "mul" | "max" | "min" | "logsumexp"
    init: float      # the combine's identity
    pre: str = "none"    # per element before combining: "none" | "abs" | "square"
    post: str = "none"   # after combining: "none" | "mean" | "sqrt" | "log"
    doc: str = ""


REDUCTIONS: dict[str, Reduction] = {r.name: r for r in (
    Reduction("reduce_mean", "ReduceMean", (1, 11, 13, 18), 18, "add", 0.0, post="mean",
              doc="mean over axes"),
    Reduction("reduce_sum", "ReduceSum", (1, 11, 13), 13, "add", 0.0, doc="sum over axes"),
    Reduction("reduce_max", "ReduceMax", (1, 11, 12, 13, 18, 20), 18, "max", float("-inf"),
              doc="max over axes"),
    Reduction("reduce_min", "ReduceMin", (1, 11, 12, 13, 18, 20), 18, "min", float("inf"),
              doc="min over axes"),
    Reduction("reduce_prod", "ReduceProd", (1, 11, 13, 18), 18, "mul", 1.0,
              doc="product over axes"),
    Reduction("reduce_l1", "ReduceL1", (1, 11, 13, 18), 18, "add", 0.0, pre="abs",
              doc="sum of |x| over axes"),
    Reduction("reduce_l2", "ReduceL2", (1, 11, 13, 18), 18, "add", 0.0, pre="square",
              post="sqrt", doc="sqrt(sum of x^2) over axes"),
    Reduction("reduce_sum_square", "ReduceSumSquare", (1, 11, 13, 18), 18, "add", 0.0,
              pre="square", doc="sum of x^2 over axes"),
    Reduction("reduce_log_sum", "ReduceLogSum", (1, 11, 13, 18, 28), 18, "add", 0.0, post="log",
              doc="log(sum(x)) over axes"),
    Reduction("reduce_log_sum_exp", "ReduceLogSumExp", (1, 11, 13, 18, 28), 18, "logsumexp",
              float("-inf"), doc="log(sum(exp(x - max))) + max over axes"),
)}


def reduce_axes(axes, rank: int) -> tuple[int, ...]:
    """Axes as sorted non-negative ints; empty = all. Out of range or repeated: ShapeError."""
    axes = tuple(int(a) for a in (axes or ()))
    for a in axes:
        require(-rank <= a < rank or (rank == 0 and a in (0, -1)),
                f"axis {a} out of range for rank {rank}")
    norm = tuple(a % rank if rank else 0 for a in axes)
    require(len(set(norm)) == len(norm), f"axes {list(axes)} repeat an axis")
    return tuple(sorted(norm)) if norm else tuple(range(rank))


def _normalize(a: dict, t: list[TensorType]) -> dict:
    a["axes"] = reduce_axes(a["axes"], t[0].rank)
    require(a["keepdims"] in (0, 1, True, False), f"keepdims {a['keepdims']} must be 0 or 1")
    a["keepdims"] = int(a["keepdims"])
    return a


def reduced_shape(a: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    if a["keepdims"]:
        return tuple(1 if i in a["axes"] else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in a["axes"])


def _infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    return [TensorType(reduced_shape(a, t[0].shape), t[0].dtype)]


def reduce_numpy(r: Reduction, a: dict, x: np.ndarray) -> np.ndarray:
    """The reference: numpy over the table's pre / combine / post."""
    axes, keep = a["axes"], bool(a["keepdims"])
    out_shape = reduced_shape(a, x.shape)
    if x.ndim == 0:
        x = x.reshape(1)
        axes = (0,)
    if any(x.shape[i] == 0 for i in axes):
        empty = {"mean": np.nan, "log": -np.inf}.get(r.post, r.init)
        return np.full(out_shape, empty, np.float32)
    v = np.abs(x) if r.pre == "abs" else np.square(x) if r.pre == "square" else x
    with np.errstate(all="ignore"):
        if r.combine == "add":
            y = v.sum(axis=axes, keepdims=keep, dtype=np.float32)
        elif r.combine == "mul":
            y = v.prod(axis=axes, keepdims=keep, dtype=np.float32)
        elif r.combine == "max":
            y = v.max(axis=axes, keepdims=keep)
        elif r.combine == "min":
            y = v.min(axis=axes, keepdims=keep)
        else:  # logsumexp, shifted by the max (a max of -inf shifts by 0)
            m = v.max(axis=axes, keepdims=True)
            m = np.where(np.isfinite(m), m, np.float32(0)).astype(np.float32)
            s = np.exp(v - m).sum(axis=axes, keepdims=True, dtype=np.float32)
            y = np.log(s) + m
            y = y if keep else y.reshape(out_shape)
        if r.post == "mean":
            y = y / np.float32(np.prod([x.shape[i] for i in axes]))
        elif r.post == "sqrt":
            y = np.sqrt(y)
        elif r.post == "log":
            y = np.log(y)
    return np.asarray(y, np.float32).reshape(out_shape)


def _register(r: Reduction) -> None:
    register(OpDef(r.name, {"axes": (), "keepdims": 1}, _infer,
                   lambda a, x: reduce_numpy(r, a, x), normalize=_normalize, doc=r.doc))


for _r in REDUCTIONS.values():
    _register(_r)
