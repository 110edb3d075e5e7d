"""Blocked channel layout NCHW[x]c: the layout the native conv kernels compute in.

to_blocked {block=b}:      (N, C, *S)        -> (N, ceil(C/b), *S, b), channel c at [:, c//b, ..., c%b]
from_blocked {channels=C}: (N, Cb, *S, b)    -> (N, C, *S)
Channels past C in the last block are zero. Elementwise ops, concat on axis 1 (when every C is a
multiple of b) and add work on blocked tensors unchanged; conv and the pools take
`layout="NCHWc"` to say their input and output are blocked.
"""
from __future__ import annotations

import numpy as np

from ..ir import TensorType
from .registry import REQUIRED, OpDef, register, require

LAYOUTS = ("NCHW", "NCHWc")


def blocked_shape(shape: tuple[int, ...], block: int) -> tuple[int, ...]:
    return (shape[0], -(-shape[1] // block)) + tuple(shape[2:]) + (block,)


def to_blocked(x: np.ndarray, block: int) -> np.ndarray:
    n, c = x.shape[:2]
    cb = -(-c // block)
    padded = np.zeros((n, cb * block) + x.shape[2:], x.dtype)
    padded[:, :c] = x
    y = padded.reshape((n, cb, block) + x.shape[2:])
    return np.ascontiguousarray(np.moveaxis(y, 2, -1))


def from_blocked(x: np.ndarray, channels: int) -> np.ndarray:
    n, cb, block = x.shape[0], x.shape[1], x.shape[-1]
    y = np.moveaxis(x, -1, 2).reshape((n, cb * block) + x.shape[2:-1])
    return np.ascontiguousarray(y[:, :channels])


def _to_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    require(t[0].rank >= 3 and a["block"] >= 1, f"to_blocked needs (N, C, *S) and block >= 1, got {t[0]}")
    return [TensorType(blocked_shape(t[0].shape, a["block"]), t[0].dtype)]


def _from_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    x, c = t[0], a["channels"]
    require(x.rank >= 4, f"from_blocked needs (N, Cb, *S, b), got {x}")
    require(-(-c // x.shape[-1]) == x.shape[1], f"{c} channels do not fill {x}")
    return [TensorType((x.shape[0], c) + x.shape[2:-1], x.dtype)]


register(OpDef("to_blocked", {"block": REQUIRED}, _to_infer,
               lambda a, x: to_blocked(x, a["block"]), doc="NCHW -> NCHW[b]c, zero-padded"))
register(OpDef("from_blocked", {"channels": REQUIRED}, _from_infer,
               lambda a, x: from_blocked(x, a["channels"]), doc="NCHW[b]c -> NCHW"))


def unblocked_type(t: TensorType, channels: int) -> TensorType:
    """The logical NCHW type of a blocked tensor holding `channels` channels."""
    return TensorType((t.shape[0], channels) + t.shape[2:-1], t.dtype)
