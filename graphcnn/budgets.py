"""Resource budgets, checked before the work or the allocation they bound, so that a model too
big for them is a typed error naming what is big, never a MemoryError or minutes of compiling.

- nodes: a graph (or an ONNX file) of more than GRAPHCNN_MAX_NODES nodes (default 100k; compile
  time is linear in the node count) is refused at import and at compile;
- time: a compile running longer than GRAPHCNN_COMPILE_TIMEOUT seconds (default 600; 0 turns it
  off) stops at the next pass or lowered node (`deadline` / `check_time`);
- weights: the constants of a graph compiled natively, together at most GRAPHCNN_MAX_WEIGHTS
  bytes (default 2G: VGG-19's are 0.55 GiB), checked before they are packed;
- workspace: the activation arena of a compiled model at most GRAPHCNN_MAX_WORKSPACE bytes
  (default 4G), checked after the memory plan, before the arena is allocated.
Sizes are written as GRAPHCNN_CACHE_MAX's: `500M`, `2G`, `1.5T` or plain bytes.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator

from .errors import CompileError, InvalidOptionError

DEFAULT_MAX_NODES = 100_000
DEFAULT_COMPILE_TIMEOUT_S = 600.0
DEFAULT_MAX_WEIGHTS = 2 << 30
DEFAULT_MAX_WORKSPACE = 4 << 30
LISTED = 5  # the largest tensors an error names

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, variable: str) -> int:
    """Bytes from `4G`, `500M`, `1.5g`, `64KiB` or `123456`; a positive size or
    InvalidOptionError naming `variable`."""
    match = _SIZE.fullmatch(text)
    size = int(float(match[1]) * _UNITS[match[2].lower()]) if match else 0
    if size <= 0:
        raise InvalidOptionError(
            f"{variable}={text!r} is not a size: give a positive number of bytes with an "
            "optional K, M, G or T suffix (e.g. 500M, 4G)")
    return size


def _size(variable: str, default: int) -> int:
    text = os.environ.get(variable, "")
    return parse_size(text, variable) if text.strip() else default


def max_weights() -> int:
    return _size("GRAPHCNN_MAX_WEIGHTS", DEFAULT_MAX_WEIGHTS)


def max_workspace() -> int:
    return _size("GRAPHCNN_MAX_WORKSPACE", DEFAULT_MAX_WORKSPACE)


def max_nodes() -> int:
    text = os.environ.get("GRAPHCNN_MAX_NODES", "").strip()
    if not text:
        return DEFAULT_MAX_NODES
    if not text.isdigit() or int(text) <= 0:
        raise InvalidOptionError(f"GRAPHCNN_MAX_NODES={text!r} is not a positive node count")
    return int(text)


def compile_timeout() -> float:
    """Seconds a compile may take (math.inf when GRAPHCNN_COMPILE_TIMEOUT is 0)."""
    text = os.environ.get("GRAPHCNN_COMPILE_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_COMPILE_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or math.isnan(seconds):
        raise InvalidOptionError(f"GRAPHCNN_COMPILE_TIMEOUT={text!r} is not a number of "
                                 "seconds (0 turns the limit off)")
    return seconds or math.inf


def check_nodes(count: int, what: str, error: type[Exception] = CompileError) -> None:
    limit = max_nodes()
    if count > limit:
        raise error(f"{what} has {count} nodes, over the budget of {limit} "
                    "(GRAPHCNN_MAX_NODES raises it)")


def human(n: int) -> str:
    """Bytes for people: 1.5 GiB, 603.2 MiB, 12 B."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def largest(tensors: Iterable[tuple[str, int]]) -> str:
    """'name (1.20 GiB), ...' for the LISTED largest of (description, bytes) pairs."""
    top = sorted(tensors, key=lambda t: -t[1])[:LISTED]
    return ", ".join(f"{name} ({human(n)})" for name, n in top)


def check_bytes(total: int, limit: int, what: str, variable: str,
                tensors: Iterable[tuple[str, int]], error: type[Exception] = CompileError
                ) -> None:
    if total > limit:
        raise error(f"{what} need {human(total)}, over the budget of {human(limit)} "
                    f"({variable} raises it); the largest: {largest(tensors)}")


# ----- the compile deadline -------------------------------------------------------------------
_deadline: contextvars.ContextVar[tuple[float, float] | None] = \
    contextvars.ContextVar("graphcnn_compile_deadline", default=None)


@contextlib.contextmanager
def deadline() -> Iterator[None]:
    """The compile inside runs under GRAPHCNN_COMPILE_TIMEOUT (an enclosing one's deadline
    stands: a re-batching compile inside a compile shares its budget)."""
    if _deadline.get() is not None:
        yield
        return
    limit = compile_timeout()
    token = _deadline.set((time.monotonic() + limit, limit))
    try:
        yield
    finally:
        _deadline.reset(token)


def check_time(where: str | Callable[[], str]) -> None:
    """CompileError if the running compile is past its deadline; `where` (or what it returns,
    asked only then) says at what."""
    current = _deadline.get()
    if current is not None and time.monotonic() > current[0]:
        where = where if isinstance(where, str) else where()
        raise CompileError(f"compile stopped at {where}: it ran over its budget of "
                           f"{current[1]:g} s (GRAPHCNN_COMPILE_TIMEOUT raises it)")


__all__ = ["check_bytes", "check_nodes", "check_time", "compile_timeout", "deadline", "human",
           "largest", "max_nodes", "max_weights", "max_workspace", "parse_size"]
