"""Static memory plan: every intermediate tensor gets a fixed offset in one workspace arena.

Each buffer lives from the node that writes it to the last node that reads it (views extend
the life of the buffer they alias). Two buffers may share bytes only if their lives do not
overlap, inclusively: a kernel never writes an output over one of its own inputs (except a conv
onto the residual it adds, merged by lower._residuals_in_place before planning). Offsets are
chosen greedily, largest buffer first, each at the best-fitting (smallest sufficient) gap among
the buffers already placed whose lives overlap its own; offsets and sizes are 64-byte aligned.
The arena is allocated once per compiled model; nothing is allocated per call.
"""
from __future__ import annotations

from dataclasses import dataclass

ALIGN = 64


@dataclass
class Buffer:
    key: int          # caller's id for the buffer
    size: int         # bytes
    first: int        # index of the node that writes it
    last: int         # index of the last node that reads it
    offset: int = -1


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plan(buffers: list[Buffer]) -> int:
    """Assign `offset` to every buffer; return the arena size in bytes. The placed buffers are
    indexed by the steps they live in, so finding those that overlap a buffer's life costs its
    life's length, not the number placed (a chain of 20k layers plans in linear time)."""
    live: dict[int, list[tuple[int, int]]] = {}  # step -> (offset, end) of buffers placed there
    for buf in sorted(buffers, key=lambda x: (-x.size, x.first, x.key)):
        size = align(buf.size)
        seen: set[int] = set()
        busy = []
        for t in range(buf.first, buf.last + 1):
            for span in live.get(t, ()):
                if id(span) not in seen:
                    seen.add(id(span))
                    busy.append(span)
        busy.sort()
        best, best_gap, cursor = None, None, 0
        for start, end in busy:
            gap = start - cursor
            if gap >= size and (best_gap is None or gap < best_gap):
                best, best_gap = cursor, gap
            cursor = max(cursor, end)
        buf.offset = best if best is not None else cursor
        span = (buf.offset, buf.offset + size)
        for t in range(buf.first, buf.last + 1):
            live.setdefault(t, []).append(span)
    return max((b.offset + align(b.size) for b in buffers), default=0)


def check(buffers: list[Buffer]) -> None:
    """Raise AssertionError if two live-overlapping buffers share bytes (tests, debugging)."""
    for i, p in enumerate(buffers):
        for q in buffers[i + 1:]:
            if p.first <= q.last and q.first <= p.last:
                assert (p.offset + p.size <= q.offset or q.offset + q.size <= p.offset), (p, q)
