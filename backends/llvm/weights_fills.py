"""Uniform stretches of a weights arena stored as (offset, bytes, word) instead of bytes.

An ONNX ConstantOfShape (or an Expand of a constant) is folded into a full constant, and its
packed copy goes into the weights arena: a model file of a few KB can carry hundreds of MB of
one repeated value, which the compile cache and saved models used to write out byte by byte.
`split` finds every run of whole 4 KB blocks that repeat one 8-byte word (a float32, int64 or
bool fill, zeros included) and leaves them out of the stored bytes; the manifest lists them
as `weights_fills`, `[offset, nbytes, word]` in arena order, and `expand` re-creates the arena.

The stored bytes are what `weights_digest` covers and the fills are manifest fields, which
`manifest_digest` covers, so every loaded byte is still checked; `check` validates the fills
(sorted, disjoint, aligned, within the arena) before anything is allocated.
"""
from __future__ import annotations

import mmap

import numpy as np

from graphcnn.hugepages import huge_page_advice

BLOCK = 4096            # the unit of a fill: smaller runs cost more manifest than they save
_SLAB = 4096            # blocks compared at once (16 MB), bounding the temporary memory
MAX_FILLS = 1 << 20     # a manifest lists at most this many (each ~40 bytes of JSON)
_WORD_MAX = (1 << 64) - 1


class FillError(Exception):
    """A malformed `weights_fills` field; the message says what is wrong."""


def split(arena: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """(the bytes to store, the fills) of a uint8 arena. Without fills the arena itself is
    returned, not a copy."""
    a = np.asarray(arena).reshape(-1).view(np.uint8)
    nblocks = len(a) // BLOCK
    if nblocks == 0:
        return a, []
    words = a[:nblocks * BLOCK].view(np.uint64).reshape(nblocks, BLOCK // 8)
    uniform = np.empty(nblocks, dtype=bool)
    for s in range(0, nblocks, _SLAB):
        slab = words[s:s + _SLAB]
        uniform[s:s + _SLAB] = (slab == slab[:, :1]).all(axis=1)
    blocks = np.flatnonzero(uniform)
    if len(blocks) == 0:
        return a, []
    first = words[blocks, 0]
    # a run ends where the next uniform block is not adjacent or repeats another word
    ends = np.flatnonzero((np.diff(blocks) != 1) | (first[1:] != first[:-1])) + 1
    starts = np.concatenate(([0], ends))
    stops = np.concatenate((ends, [len(blocks)]))
    fills = [[int(blocks[i]) * BLOCK, int(j - i) * BLOCK, int(first[i])]
             for i, j in zip(starts, stops)]
    if len(fills) > MAX_FILLS:  # pathological alternation: keep the largest, in order
        fills = sorted(sorted(fills, key=lambda f: -f[1])[:MAX_FILLS])
    parts, at = [], 0
    for offset, nbytes, _ in fills:
        parts.append(a[at:offset])
        at = offset + nbytes
    parts.append(a[at:])
    return np.concatenate(parts), fills


def check(fills: object, stored_bytes: int, limit: int) -> int:
    """The arena size of `stored_bytes` stored bytes plus `fills`, after checking every fill
    (at most `limit` bytes in all); raises FillError."""
    if not isinstance(fills, list) or len(fills) > MAX_FILLS:
        raise FillError("weights_fills is not a list of at most "
                        f"{MAX_FILLS} [offset, nbytes, word] entries")
    end = total = 0
    for fill in fills:
        ok = (isinstance(fill, list) and len(fill) == 3 and all(type(v) is int for v in fill)
              and fill[0] >= end and fill[0] % 8 == 0 and fill[1] > 0 and fill[1] % 8 == 0
              and 0 <= fill[2] <= _WORD_MAX)
        if not ok:
            raise FillError(f"weights fill {fill!r} is malformed, unaligned or out of order")
        end = fill[0] + fill[1]
        total += fill[1]
    arena = stored_bytes + total
    if end > arena or arena > limit:
        raise FillError(f"weights fills end at {end}, past the {arena}-byte arena "
                        f"(at most {limit})")
    return arena


def aligned_readonly(n: int) -> np.ndarray:
    """n bytes of private 64-byte aligned memory (huge pages advised: long-lived, read on every
    call), uninitialised; the caller fills it and makes it read-only."""
    with huge_page_advice(True):
        raw = np.empty(n + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + n]


def _zeroed(n: int) -> np.ndarray:
    """n zero bytes, page aligned: an anonymous mapping, so pages never written cost nothing."""
    try:
        return np.frombuffer(mmap.mmap(-1, max(n, 1)), dtype=np.uint8)[:n]
    except (OSError, ValueError):  # no anonymous mmap
        arena = aligned_readonly(n)
        arena[:] = 0
        return arena


def expand(stored: np.ndarray, fills: list[list[int]], arena_bytes: int) -> np.ndarray:
    """The arena of checked (`check`) fills and the stored bytes between them: aligned,
    read-only. Without fills the stored array is the arena."""
    if not fills:
        return stored
    arena = _zeroed(arena_bytes)
    at = pos = 0
    for offset, nbytes, word in fills:
        gap = offset - at
        arena[at:offset] = stored[pos:pos + gap]
        if word:  # zero fills stay untouched zero pages: no memory until written (never)
            arena[offset:offset + nbytes].view(np.uint64)[:] = np.uint64(word)
        pos += gap
        at = offset + nbytes
    arena[at:] = stored[pos:]
    arena.flags.writeable = False
    return arena
