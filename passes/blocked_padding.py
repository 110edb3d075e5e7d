"""Padding lanes of blocked tensors, for the layout pass (passes/layout.py rules 2b and 3).

A blocked tensor's channels past the real ones are zero; the blocked kernels rely on it. An
activation with act(0) != 0 (sigmoid) fills them with act(0): a "dirty" value, which only a
binary op that maps the padding back to zero may read. Constants a binary op reads are padded
to the blocked channels with a value that keeps the output's padding zero.
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from graphcnn.ir import Value
from graphcnn.ops import ACTIVATIONS
from graphcnn.ops.elementwise import Binary


def is_dirty(t: Value) -> bool:
    """A blocked value whose padding lanes are act(0) != 0 (rule 2b)."""
    node = t.producer
    if node is None or node.op not in ACTIVATIONS:
        return False
    act = ACTIVATIONS[node.op]
    return not act.preserves_zero(act.params(node.attrs))


def padding_value(t: Value) -> float:
    """What the padding lanes of blocked value t hold: 0, or act(0) for a dirty twin."""
    if not is_dirty(t):
        return 0.0
    act = ACTIVATIONS[t.producer.op]
    return float(act.numpy(np.zeros(1, np.float32), *act.params(t.producer.attrs))[0])


def per_channel(v: Value, channels: int) -> np.ndarray | None:
    """A constant's values per channel when it broadcasts as a scalar or along channels only
    against a 4-D (N, channels, H, W) tensor, else None."""
    if not v.is_constant or v.type.rank > 4:
        return None
    shape = (1,) * (4 - v.type.rank) + v.shape
    if shape == (1, 1, 1, 1):
        return np.full(channels, v.data.reshape(()), np.float32)
    if shape == (1, channels, 1, 1):
        return np.asarray(v.data, np.float32).reshape(channels)
    return None


def zero_fill(op: Binary, pads: list[float], constant: list[bool]) -> float | None:
    """A padding value z for the constant inputs that makes f(padding lanes) exactly 0."""
    for z in (0.0, 1.0):
        args = [np.float32(z if c else p) for p, c in zip(pads, constant)]
        with np.errstate(all="ignore"):
            out = reduce(op.numpy, args)
        if out == 0:
            return z
    return None
