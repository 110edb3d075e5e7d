"""Data movement: flatten, reshape, transpose, concat, pad, squeeze, unsqueeze, identity, dropout,
channel_shuffle.

Shape-like arguments are static attributes here (frontends fold shape computations), and
normalisation resolves them to concrete values: reshape's 0 and -1, negative axes.
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor_type import TensorType
from .layout import LAYOUTS, from_blocked, to_blocked
from .registry import REQUIRED, OpDef, norm_axis, register, require, same


def _identity(a, x):
    return x


register(OpDef("identity", {}, lambda a, t: same(t[0]), _identity, doc="y = x"))
register(OpDef("dropout", {"ratio": 0.5}, lambda a, t: same(t[0]), _identity,
               doc="inference: identity"))


# ----- flatten ------------------------------------------------------------------------------
def _flatten_normalize(a: dict, t: list[TensorType]) -> dict:
    rank = t[0].rank
    require(-rank <= a["axis"] <= rank, f"axis {a['axis']} out of range for rank {rank}")
    a["axis"] = a["axis"] % rank if a["axis"] < 0 else a["axis"]
    return a


def _flatten_shape(a: dict, shape: tuple[int, ...]) -> tuple[int, int]:
    return math.prod(shape[:a["axis"]]), math.prod(shape[a["axis"]:])


register(OpDef("flatten", {"axis": 1},
               lambda a, t: [TensorType(_flatten_shape(a, t[0].shape), t[0].dtype)],
               lambda a, x: x.reshape(_flatten_shape(a, x.shape)), normalize=_flatten_normalize,
               doc="2-D (prod(dims[:axis]), prod(dims[axis:]))"))


# ----- reshape ------------------------------------------------------------------------------
def resolve_reshape(shape: tuple[int, ...], target: tuple[int, ...], allowzero: bool = False):
    """ONNX Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred."""
    out = [shape[i] if d == 0 and not allowzero and i < len(shape) else d
           for i, d in enumerate(target)]
    require(all(d >= -1 for d in out), f"reshape target {target} has negative dims")
    require(out.count(-1) <= 1, f"reshape target {target} has more than one -1")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        require(known > 0 and math.prod(shape) % known == 0,
                f"cannot reshape {shape} to {target}")
        out[out.index(-1)] = math.prod(shape) // known
    require(math.prod(out) == math.prod(shape), f"cannot reshape {shape} ({math.prod(shape)} "
            f"elements) to {tuple(out)}")
    return tuple(out)


def _reshape_normalize(a: dict, t: list[TensorType]) -> dict:
    a["shape"] = resolve_reshape(t[0].shape, tuple(a["shape"]), bool(a.pop("allowzero", 0)))
    return a


register(OpDef("reshape", {"shape": REQUIRED, "allowzero": 0},
               lambda a, t: [TensorType(a["shape"], t[0].dtype)],
               lambda a, x: x.reshape(a["shape"]), normalize=_reshape_normalize,
               doc="reshape to a static shape (0 and -1 resolved at node creation)"))


# ----- transpose ----------------------------------------------------------------------------
def _transpose_normalize(a: dict, t: list[TensorType]) -> dict:
    rank = t[0].rank
    perm = tuple(a["perm"]) if a["perm"] is not None else tuple(reversed(range(rank)))
    perm = tuple(norm_axis(p, rank, "perm entry") for p in perm)
    require(sorted(perm) == list(range(rank)), f"perm {perm} is not a permutation of rank {rank}")
    a["perm"] = perm
    return a


register(OpDef("transpose", {"perm": None},
               lambda a, t: [TensorType(tuple(t[0].shape[p] for p in a["perm"]), t[0].dtype)],
               lambda a, x: np.transpose(x, a["perm"]), normalize=_transpose_normalize,
               doc="permute dims (default: reverse)"))


# ----- channel_shuffle ----------------------------------------------------------------------
# ShuffleNet's reshape (N, g, C/g, *S) -> transpose -> reshape (N, C, *S) as one op (the llvm
# pipeline's fuse-channel-shuffle pass), so it can run on the blocked layout: output channel
# i*g + j is input channel j*(C/g) + i. layout="NCHWc": input and output are blocked and
# `channels` says how many of the blocked channels are real.
def channel_shuffle_sources(channels: int, groups: int) -> np.ndarray:
    """The input channel each output channel reads."""
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


def _shuffle_normalize(a: dict, t: list[TensorType]) -> dict:
    require(a["layout"] in LAYOUTS, f"layout {a['layout']!r} must be one of {LAYOUTS}")
    if a["layout"] == "NCHW":
        require(t[0].rank >= 2, f"channel_shuffle needs (N, C, *S), got {t[0]}")
        a["channels"] = a["channels"] or t[0].shape[1]
    return a


def _shuffle_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    x, c, g = t[0], a["channels"], a["groups"]
    if a["layout"] == "NCHWc":
        require(x.rank >= 4 and c >= 1 and -(-c // x.shape[-1]) == x.shape[1],
                f"{c} channels do not fill the blocked {x}")
    else:
        require(c == x.shape[1], f"channels={c} but the input {x} has {x.shape[1]}")
    require(g >= 1 and c % g == 0, f"groups={g} must divide the {c} channels")
    return [x]


def _shuffle_compute(a: dict, x: np.ndarray) -> np.ndarray:
    sources = channel_shuffle_sources(a["channels"], a["groups"])
    if a["layout"] == "NCHWc":
        return to_blocked(from_blocked(x, a["channels"])[:, sources], x.shape[-1])
    return np.ascontiguousarray(x[:, sources])


register(OpDef("channel_shuffle", {"groups": REQUIRED, "channels": 0, "layout": "NCHW"},
               _shuffle_infer, _shuffle_compute, normalize=_shuffle_normalize,
               doc="ShuffleNet's channel shuffle: channel i*groups + j <- j*(C/groups) + i"))


# ----- concat -------------------------------------------------------------------------------
def _concat_normalize(a: dict, t: list[TensorType]) -> dict:
    a["axis"] = norm_axis(a["axis"], t[0].rank)
    return a


def _concat_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    ax = a["axis"]
    for x in t[1:]:
        require(x.rank == t[0].rank and all(x.shape[i] == t[0].shape[i]
                                            for i in range(x.rank) if i != ax),
                f"cannot concat {t[0]} and {x} on axis {ax}")
    shape = list(t[0].shape)
    shape[ax] = sum(x.shape[ax] for x in t)
    return [TensorType(tuple(shape), t[0].dtype)]


register(OpDef("concat", {"axis": REQUIRED}, _concat_infer,
               lambda a, *xs: np.concatenate(xs, axis=a["axis"]), inputs=(1, None),
               normalize=_concat_normalize, doc="join along axis"))


# ----- pad ----------------------------------------------------------------------------------
PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    x = t[0]
    p, r = a["pads"], x.rank
    require(len(p) == 2 * r, f"pads {p} must have {2 * r} entries for {x}")
    require(a["mode"] in PAD_MODES, f"pad mode {a['mode']!r} must be one of {PAD_MODES}")
    shape = tuple(x.shape[i] + p[i] + p[i + r] for i in range(r))
    require(all(d >= 1 for d in shape), f"pads {p} leave an empty tensor from {x}")
    if a["mode"] == "reflect":  # ONNX: a reflection never repeats the border or wraps around
        for i in range(r):
            kept = x.shape[i] - max(0, -p[i]) - max(0, -p[i + r])
            require(max(p[i], p[i + r]) <= kept - 1 or max(p[i], p[i + r]) <= 0,
                    f"reflect pads {p} on axis {i} need at most {kept - 1} (the dim is {kept})")
    return [TensorType(shape, x.dtype)]


def pad_sources(size: int, begin: int, end: int, mode: str) -> np.ndarray:
    """The input index each output index of one axis reads, -1 for the constant fill: negative
    pads crop first, then the mode pads (as np.pad does on the cropped axis)."""
    kept = np.arange(size)[max(0, -begin):size - max(0, -end)]
    widths = (max(0, begin), max(0, end))
    if mode == "constant":
        return np.pad(kept, widths, constant_values=-1)
    return np.pad(kept, widths, mode={"edge": "edge", "reflect": "reflect", "wrap": "wrap"}[mode])


def _pad(a: dict, x: np.ndarray) -> np.ndarray:
    r, p = x.ndim, a["pads"]
    # negative pads crop
    crop = tuple(slice(max(0, -p[i]), x.shape[i] - max(0, -p[i + r])) for i in range(r))
    widths = [(max(0, p[i]), max(0, p[i + r])) for i in range(r)]
    if a["mode"] != "constant":
        return np.pad(x[crop], widths, mode=a["mode"])
    return np.pad(x[crop], widths, constant_values=np.float32(a["value"]))


register(OpDef("pad", {"pads": REQUIRED, "value": 0.0, "mode": "constant"}, _pad_infer, _pad,
               doc="constant, reflect, edge or wrap padding; pads all-begins then all-ends, "
                   "negative pads crop"))


# ----- squeeze / unsqueeze ------------------------------------------------------------------
def _squeeze_normalize(a: dict, t: list[TensorType]) -> dict:
    shape = t[0].shape
    if a["axes"] is None:
        a["axes"] = tuple(i for i, d in enumerate(shape) if d == 1)
    a["axes"] = tuple(sorted(norm_axis(x, len(shape)) for x in a["axes"]))
    for ax in a["axes"]:
        require(shape[ax] == 1, f"cannot squeeze axis {ax} of size {shape[ax]}")
    return a


def _unsqueeze_normalize(a: dict, t: list[TensorType]) -> dict:
    rank = t[0].rank + len(a["axes"])
    a["axes"] = tuple(sorted(norm_axis(x, rank) for x in a["axes"]))
    require(len(set(a["axes"])) == len(a["axes"]), f"repeated axes {a['axes']}")
    return a


def _unsqueeze_shape(a: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    out = list(shape)
    for ax in a["axes"]:
        out.insert(ax, 1)
    return tuple(out)


register(OpDef("squeeze", {"axes": None},
               lambda a, t: [TensorType(tuple(d for i, d in enumerate(t[0].shape)
                                              if i not in a["axes"]), t[0].dtype)],
               lambda a, x: np.squeeze(x, axis=a["axes"]), normalize=_squeeze_normalize,
               doc="drop size-1 axes"))
register(OpDef("unsqueeze", {"axes": REQUIRED},
               lambda a, t: [TensorType(_unsqueeze_shape(a, t[0].shape), t[0].dtype)],
               lambda a, x: x.reshape(_unsqueeze_shape(a, x.shape)),
               normalize=_unsqueeze_normalize, doc="insert size-1 axes"))
