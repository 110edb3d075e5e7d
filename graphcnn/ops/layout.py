"""Blocked channel layout NCHW[x]c: the layout the native conv kernels compute in.

to_blocked {block=b}:      (N, C, *S)        -> (N, ceil(C/b), *S, b), channel c at [:, c//b, ..., c%b]
from_blocked {channels=C}: (N, Cb, *S, b)    -> (N, C, *S)
Channels past C in the last block are zero. Elementwise ops, concat on axis 1 (when every C is a
multiple of b) and add work on blocked tensors unchanged; conv, the pools and batch_norm take
`layout="NCHWc"` to say their input and output are blocked.
"""
from __future__ import annotations

import numpy as np

from ..tensor_type import TensorType
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


def _as_channels(t: TensorType) -> TensorType:
    """A blocked (N, Cb, *S, b) type seen as the NCHW type (N, Cb*b, *S)."""
    return TensorType((t.shape[0], t.shape[1] * t.shape[-1]) + t.shape[2:-1], t.dtype)


def blockable(infer_or_compute):
    """Wrap a per-channel op's shape rule or kernel so it also takes layout="NCHWc": the
    blocked (N, Cb, *S, b) input is computed as the (N, Cb*b, *S) tensor it holds (the pools,
    batch_norm with Cb*b parameters); further inputs pass through unchanged."""
    def wrapped(a, first, *rest):
        if a.get("layout", "NCHW") != "NCHWc":
            return infer_or_compute(a, first, *rest)
        if isinstance(first, list):  # shape rule
            y = infer_or_compute(a, [_as_channels(first[0])] + first[1:])[0]
            b = first[0].shape[-1]
            return [TensorType((y.shape[0], y.shape[1] // b) + y.shape[2:] + (b,), y.dtype)]
        x = first
        n, cb, b = x.shape[0], x.shape[1], x.shape[-1]
        flat = np.moveaxis(x, -1, 2).reshape((n, cb * b) + x.shape[2:-1])
        y = infer_or_compute(a, flat, *rest)
        return np.ascontiguousarray(np.moveaxis(y.reshape((n, cb, b) + y.shape[2:]), 2, -1))
    return wrapped


def unblocked_type(t: TensorType, channels: int) -> TensorType:
    """The logical NCHW type of a blocked tensor holding `channels` channels."""
    return TensorType((t.shape[0], channels) + t.shape[2:-1], t.dtype)


def group_input_blocks(c_in: int, c_out: int, groups: int, in_block: int, out_block: int
                       ) -> list[tuple[int, int]]:
    """A grouped conv on blocked tensors: for each output-channel block, the input-channel
    blocks [start, start + count) covering the groups its channels belong to. A block whose
    channels span several groups reads all of their inputs (its weights are zero outside each
    channel's own group); groups=1 gives every block all input blocks."""
    cin_g, cout_g = c_in // groups, c_out // groups
    ranges = []
    for first in range(0, c_out, out_block):
        last = min(first + out_block, c_out) - 1
        lo, hi = (first // cout_g) * cin_g, (last // cout_g + 1) * cin_g
        start = lo // in_block
        ranges.append((start, -(-hi // in_block) - start))
    return ranges


def grouped_overhead(c_in: int, c_out: int, groups: int, in_block: int, out_block: int
                     ) -> float:
    """Multiply-adds a blocked grouped conv computes per useful one (>= 1): lanes of padding
    and of other groups' channels."""
    ranges = group_input_blocks(c_in, c_out, groups, in_block, out_block)
    done = sum(count for _, count in ranges) * in_block * out_block
    return done / (c_out * (c_in // groups))


# blocked_concat: the channel concat of blocked tensors whose channel counts do not fill their
# blocks (a DenseNet's growth of 8 or 24 channels): input i is blocked (N, Cb_i, *S, b_i) holding
# channels[i] real channels; the output is blocked with block `block`, the real channels packed
# one after another and the last block's padding zero. (Counts that fill every block concat
# the blocked tensors directly, on axis 1.)
def _bc_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    chans, block = tuple(a["channels"]), a["block"]
    require(len(chans) == len(t) and block >= 1, f"channels {list(chans)} must give one count "
            f"per input ({len(t)}) and block {block} must be >= 1")
    first = t[0]
    for x, c in zip(t, chans):
        require(x.rank == first.rank >= 4 and x.shape[0] == first.shape[0]
                and x.shape[2:-1] == first.shape[2:-1] and x.dtype == first.dtype,
                f"inputs {[str(v) for v in t]} must be blocked tensors of one batch and size")
        require(0 < c and -(-c // x.shape[-1]) == x.shape[1], f"{c} channels do not fill {x}")
    total = sum(chans)
    return [TensorType(blocked_shape((first.shape[0], total) + first.shape[2:-1], block),
                       first.dtype)]


def _blocked_concat(a: dict, *xs: np.ndarray) -> np.ndarray:
    plain = [from_blocked(x, c) for x, c in zip(xs, a["channels"])]
    return to_blocked(np.concatenate(plain, axis=1), a["block"])


register(OpDef("blocked_concat", {"channels": REQUIRED, "block": REQUIRED}, _bc_infer,
               _blocked_concat, inputs=(1, None),
               doc="concat on the channels of blocked tensors, repacked into `block` lanes"))


# blocked_split: the inverse, a channel split of one blocked tensor (N, Cb, *S, b) holding
# sum(channels) real channels into parts of `channels[i]` channels that do not fill whole
# blocks (ShuffleNet-v2's halves of 58 channels), each repacked into `block` lanes, padding zero.
def _bs_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    chans, block, x = tuple(a["channels"]), a["block"], t[0]
    require(len(chans) >= 1 and all(c > 0 for c in chans) and block >= 1,
            f"channels {list(chans)} must be counts > 0 and block {block} >= 1")
    require(x.rank >= 4 and -(-sum(chans) // x.shape[-1]) == x.shape[1],
            f"{sum(chans)} channels do not fill {x}")
    return [TensorType(blocked_shape((x.shape[0], c) + x.shape[2:-1], block), x.dtype)
            for c in chans]


def _blocked_split(a: dict, x: np.ndarray) -> list[np.ndarray]:
    plain = from_blocked(x, sum(a["channels"]))
    bounds = np.cumsum(a["channels"])[:-1]
    return [to_blocked(p, a["block"]) for p in np.split(plain, bounds, axis=1)]


register(OpDef("blocked_split", {"channels": REQUIRED, "block": REQUIRED}, _bs_infer,
               _blocked_split,
               doc="split of a blocked tensor's channels, each part repacked into `block` lanes"))
