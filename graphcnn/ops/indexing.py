"""Indexing and dtype ops on runtime data: gather, slice, split, expand, tile, cast, where,
argmax, argmin.

Every index-like argument except gather's indices is a static attribute (frontends fold shape
computations); normalisation resolves it once (negative axes, slice bounds clamped as ONNX
says), so the shape rule and the kernels read concrete values. These ops take any of the
dtypes in DTYPES (float32, int64, int32, bool) where their ONNX counterparts do.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError, ShapeError
from ..tensor_type import TensorType
from .registry import REQUIRED, OpDef, norm_axis, register, require

DTYPES = ("float32", "int64", "int32", "bool")
INDEX_DTYPES = ("int64", "int32")


def _dtype(t: TensorType, what: str, allowed: tuple[str, ...] = DTYPES) -> None:
    require(t.dtype in allowed, f"{what} has dtype {t.dtype}; expected one of {list(allowed)}")


# ----- gather -------------------------------------------------------------------------------
def _gather_normalize(a: dict, t: list[TensorType]) -> dict:
    require(t[0].rank >= 1, f"data {t[0]} must have rank >= 1")
    a["axis"] = norm_axis(a["axis"], t[0].rank)
    return a


def _gather_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    data, idx = t
    _dtype(data, "data")
    _dtype(idx, "indices", INDEX_DTYPES)
    ax = a["axis"]
    return [TensorType(data.shape[:ax] + idx.shape + data.shape[ax + 1:], data.dtype)]


def check_indices(indices: np.ndarray, n: int) -> None:
    """Gather indices must lie in [-n, n); anything else is bad input (an InputError), never a
    read outside the gathered axis."""
    if indices.size and (indices.min() < -n or indices.max() >= n):
        bad = indices[(indices < -n) | (indices >= n)].reshape(-1)[0]
        raise InputError(f"index {int(bad)} is outside [{-n}, {n}) for the gathered axis of "
                         f"size {n}")


def _gather(a: dict, data: np.ndarray, indices: np.ndarray) -> np.ndarray:
    n = data.shape[a["axis"]]
    check_indices(indices, n)
    return np.take(data, indices.astype(np.int64) % n, axis=a["axis"])


register(OpDef("gather", {"axis": 0}, _gather_infer, _gather, inputs=(2, 2),
               normalize=_gather_normalize,
               doc="take along axis; indices in [-n, n), negative ones wrap (InputError outside)"))


# ----- slice --------------------------------------------------------------------------------
def slice_bounds(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX Slice on one axis of size `dim`: (first index, element count) after clamping."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        count = max(0, -(-(end - start) // step))
    else:
        start, end = min(max(start, -1), dim - 1), min(max(end, -1), dim - 1)
        count = max(0, -(-(start - end) // -step))
    return start, count


def _slice_normalize(a: dict, t: list[TensorType]) -> dict:
    """Full per-axis `starts` (first index read), `steps` and the output `shape` (given
    `shape`, the attributes are normalised already)."""
    rank = t[0].rank
    if a["shape"] is not None:
        require(a["steps"] is not None, "a normalised slice (given `shape`) needs `steps`")
        require(len(a["shape"]) == len(a["starts"]) == len(a["steps"]) == rank,
                f"normalised slice attributes do not fit {t[0]}")
        return a
    require(a["ends"] is not None, "missing required attribute 'ends'")
    starts, ends = [int(v) for v in a["starts"]], [int(v) for v in a["ends"]]
    axes = list(range(len(starts))) if a["axes"] is None else [int(v) for v in a["axes"]]
    steps = [1] * len(starts) if a["steps"] is None else [int(v) for v in a["steps"]]
    require(len(starts) == len(ends) == len(axes) == len(steps),
            f"starts {starts}, ends {ends}, axes {axes} and steps {steps} must have the same "
            f"length")
    axes = [norm_axis(ax, rank) for ax in axes]
    require(len(set(axes)) == len(axes), f"repeated axes {axes}")
    first, step_of, shape = [0] * rank, [1] * rank, list(t[0].shape)
    for ax, start, end, step in zip(axes, starts, ends, steps):
        require(step != 0, f"steps {steps} must be non-zero")
        first[ax], shape[ax] = slice_bounds(t[0].shape[ax], start, end, step)
        step_of[ax] = step
    require(all(d >= 1 for d in shape), f"the slice of {t[0]} is empty ({shape})")
    return {"starts": tuple(first), "steps": tuple(step_of), "shape": tuple(shape),
            "ends": None, "axes": None}


def _slice(a: dict, x: np.ndarray) -> np.ndarray:
    index = tuple(slice(s, s + st * n if s + st * n >= 0 else None, st)
                  for s, st, n in zip(a["starts"], a["steps"], a["shape"]))
    return x[index]


register(OpDef("slice", {"starts": REQUIRED, "ends": None, "axes": None, "steps": None,
                         "shape": None},
               lambda a, t: [TensorType(a["shape"], t[0].dtype)], _slice,
               normalize=_slice_normalize,
               doc="ONNX Slice; normalised to per-axis first index, step and output shape"))


# ----- split --------------------------------------------------------------------------------
def _split_normalize(a: dict, t: list[TensorType]) -> dict:
    rank = t[0].rank
    axis = norm_axis(a["axis"], rank)
    dim = t[0].shape[axis]
    if a["split"] is not None:
        sizes = tuple(int(s) for s in a["split"])
        require(len(sizes) >= 1 and all(s >= 1 for s in sizes),
                f"split sizes {list(sizes)} must be >= 1")
        require(sum(sizes) == dim, f"split sizes {list(sizes)} sum to {sum(sizes)}, not the "
                                   f"size {dim} of axis {axis}")
    else:
        n = int(a["num_outputs"])
        require(1 <= n <= dim, f"num_outputs {n} must be in [1, {dim}] (the size of axis "
                               f"{axis})")
        chunk = -(-dim // n)  # ONNX: equal chunks of ceil(dim / n), the last one smaller
        sizes = tuple(min(chunk, dim - k * chunk) for k in range(n))
        require(all(s >= 1 for s in sizes), f"num_outputs {n} leaves an empty chunk of axis "
                                            f"{axis} (size {dim})")
    return {"axis": axis, "split": sizes, "num_outputs": len(sizes)}


def _split_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    out = []
    for size in a["split"]:
        shape = list(t[0].shape)
        shape[a["axis"]] = size
        out.append(TensorType(tuple(shape), t[0].dtype))
    return out


def split_offsets(sizes: tuple[int, ...]) -> list[int]:
    return [sum(sizes[:k]) for k in range(len(sizes))]


def _split(a: dict, x: np.ndarray) -> list[np.ndarray]:
    bounds = split_offsets(a["split"])[1:]
    return [np.ascontiguousarray(p) for p in np.split(x, bounds, axis=a["axis"])]


register(OpDef("split", {"axis": 0, "split": None, "num_outputs": None}, _split_infer, _split,
               normalize=_split_normalize,
               doc="split along axis by sizes, or into num_outputs chunks (the last smaller)"))


# ----- expand / tile ------------------------------------------------------------------------
def _expand_normalize(a: dict, t: list[TensorType]) -> dict:
    target = tuple(int(d) for d in a["shape"])
    require(all(d >= 1 for d in target), f"shape {list(target)} must have dims >= 1")
    try:
        out = np.broadcast_shapes(t[0].shape, target)
    except ValueError:
        raise ShapeError(f"cannot expand {t[0]} to {list(target)}") from None
    a["shape"] = tuple(out)
    return a


register(OpDef("expand", {"shape": REQUIRED},
               lambda a, t: [TensorType(a["shape"], t[0].dtype)],
               lambda a, x: np.ascontiguousarray(np.broadcast_to(x, a["shape"])),
               normalize=_expand_normalize, doc="numpy broadcast to shape (ONNX Expand)"))


def _tile_normalize(a: dict, t: list[TensorType]) -> dict:
    reps = tuple(int(r) for r in a["repeats"])
    require(len(reps) == t[0].rank, f"repeats {list(reps)} must have one entry per dim of "
                                    f"{t[0]}")
    require(all(r >= 1 for r in reps), f"repeats {list(reps)} must be >= 1")
    a["repeats"] = reps
    return a


register(OpDef("tile", {"repeats": REQUIRED},
               lambda a, t: [TensorType(tuple(d * r for d, r in zip(t[0].shape, a["repeats"])),
                                        t[0].dtype)],
               lambda a, x: np.tile(x, a["repeats"]), normalize=_tile_normalize,
               doc="repeat the whole tensor repeats[i] times along dim i"))


# ----- cast ---------------------------------------------------------------------------------
# bfloat16 only to and from float32: the llvm target's bf16 precision (passes/precision.py)
CAST_DTYPES = DTYPES + ("bfloat16",)


def _cast_normalize(a: dict, t: list[TensorType]) -> dict:
    to = np.dtype(a["to"]).name if not isinstance(a["to"], str) else a["to"]
    require(to in CAST_DTYPES,
            f"cast to {to!r} is not supported; expected one of {list(CAST_DTYPES)}")
    a["to"] = to
    return a


def _cast_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    _dtype(t[0], "input", CAST_DTYPES)
    if "bfloat16" in (t[0].dtype, a["to"]):
        require({t[0].dtype, a["to"]} <= {"float32", "bfloat16"},
                f"bfloat16 casts only to and from float32, not {t[0].dtype} -> {a['to']}")
    return [TensorType(t[0].shape, a["to"])]


def _cast(a: dict, x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # float -> int truncates toward zero, as ONNX says
        return x.astype(a["to"])


register(OpDef("cast", {"to": REQUIRED}, _cast_infer, _cast, normalize=_cast_normalize,
               doc="convert the dtype; float -> int truncates toward zero, x != 0 -> bool"))


# ----- where --------------------------------------------------------------------------------
def _where_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    cond, x, y = t
    _dtype(cond, "condition", ("bool",))
    _dtype(x, "X")
    require(x.dtype == y.dtype, f"X {x} and Y {y} must have the same dtype")
    try:
        shape = np.broadcast_shapes(cond.shape, x.shape, y.shape)
    except ValueError:
        raise ShapeError(f"condition {cond}, X {x} and Y {y} do not broadcast") from None
    return [TensorType(tuple(shape), x.dtype)]


register(OpDef("where", {}, _where_infer, lambda a, c, x, y: np.where(c, x, y), inputs=(3, 3),
               doc="X where condition else Y, numpy broadcasting"))


# ----- argmax / argmin ----------------------------------------------------------------------
def _arg_normalize(a: dict, t: list[TensorType]) -> dict:
    a["axis"] = norm_axis(a["axis"], t[0].rank)
    a["keepdims"], a["select_last_index"] = int(bool(a["keepdims"])), \
        int(bool(a["select_last_index"]))
    return a


def _arg_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    _dtype(t[0], "input", ("float32", "int64", "int32"))
    shape = list(t[0].shape)
    if a["keepdims"]:
        shape[a["axis"]] = 1
    else:
        del shape[a["axis"]]
    return [TensorType(tuple(shape), "int64")]


def _arg(pick):
    def compute(a: dict, x: np.ndarray) -> np.ndarray:
        ax = a["axis"]
        if a["select_last_index"]:
            last = x.shape[ax] - 1
            out = last - pick(np.flip(x, axis=ax), axis=ax)
        else:
            out = pick(x, axis=ax)
        out = out.astype(np.int64)
        return np.expand_dims(out, ax) if a["keepdims"] else out
    return compute


_ARG_ATTRS = {"axis": 0, "keepdims": 1, "select_last_index": 0}
register(OpDef("argmax", dict(_ARG_ATTRS), _arg_infer, _arg(np.argmax), normalize=_arg_normalize,
               doc="int64 index of the largest value along axis (first, or last if asked)"))
register(OpDef("argmin", dict(_ARG_ATTRS), _arg_infer, _arg(np.argmin), normalize=_arg_normalize,
               doc="int64 index of the smallest value along axis (first, or last if asked)"))

# ops whose output count is an attribute (the IR infers it)
MULTI_OUTPUT = frozenset({"split"})
__all__ = ["DTYPES", "INDEX_DTYPES", "MULTI_OUTPUT", "check_indices", "slice_bounds",
           "split_offsets"]
