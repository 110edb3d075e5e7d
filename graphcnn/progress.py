"""Progress of long work: ONNX import, each pass, each kernel-module compile.

The layers report through `report(stage, done, total, detail)`, which does nothing unless a
caller installed a sink with `reporting(sink)` (a context variable, so no layer takes a
display argument and threads or other callers are not affected). A sink is any callable
`sink(stage, done, total, detail)`; stages arrive in order, each ending with done == total:

    "import"   per ONNX node imported           (gc.from_onnx)
    "passes"   per pass, before it runs          (the pass manager; done == total at the end)
    "lower"    0 then 1 of 1, around lowering    (the llvm backend, on a cache miss)
    "compile"  per kernel module compiled        (the llvm backend, on a cache miss)

`TerminalProgress` is the sink of the CLI (not with --quiet) and of `progress=True` on
gc.from_onnx / gc.compile: one line on stderr, rewritten in place, erased when a stage ends,
and nothing at all when stderr is not a terminal (logs and pipes stay clean).
"""
from __future__ import annotations

import contextvars
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

Sink = Callable[[str, int, "int | None", str], None]
_sink: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("graphcnn_progress",
                                                                     default=None)
BAR = 20
REDRAW_SECONDS = 0.05  # a terminal redrawn per ONNX node would cost more than the import


def report(stage: str, done: int, total: int | None = None, detail: str = "") -> None:
    """Tell the installed sink (if any) that `done` of `total` steps of `stage` are done."""
    sink = _sink.get()
    if sink is not None:
        sink(stage, done, total, detail)


def active() -> bool:
    """Whether anyone listens (skip building details nobody reads)."""
    return _sink.get() is not None


@contextmanager
def reporting(sink: Sink | None) -> Iterator[None]:
    """Send the reports made inside to `sink` (None: keep the current one)."""
    if sink is None:
        yield
        return
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
        close = getattr(sink, "close", None)
        if close is not None:
            close()


def sink_for(progress: object) -> Sink | None:
    """The sink a `progress=` argument asks for: True a TerminalProgress, False or None
    nothing, a callable itself."""
    if progress is True:
        return TerminalProgress()
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    from .errors import InvalidOptionError

    raise InvalidOptionError(f"progress must be True, False or a callable "
                             f"fn(stage, done, total, detail), got {progress!r}")


def format_line(stage: str, done: int, total: int | None, detail: str = "",
                width: int = 80) -> str:
    """`graphcnn passes   [#######-------------]  12/31 fuse-conv-activation`, at most
    `width` characters."""
    if total:
        filled = min(BAR, BAR * done // total)
        line = f"graphcnn {stage:<8} [{'#' * filled}{'-' * (BAR - filled)}] {done:>3}/{total}"
    else:
        line = f"graphcnn {stage:<8} {done}"
    if detail:
        line += f" {detail}"
    return line if len(line) <= width else line[:max(width - 3, 0)] + "..."


class TerminalProgress:
    """One updating line on `stream` (stderr by default) when it is a terminal."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.enabled = bool(self.stream.isatty())
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            self.enabled = False
        self._shown = False
        self._last = 0.0
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int | None, detail: str = "") -> None:
        if not self.enabled:
            return
        finished = total is not None and done >= total
        now = time.monotonic()
        if not finished and stage == self._stage and now - self._last < REDRAW_SECONDS:
            return  # a new stage is always drawn: it may be the long one
        self._last, self._stage = now, stage
        if finished:
            self._erase()  # the next stage, or the command's own output, starts clean
            return
        width = shutil.get_terminal_size((80, 24)).columns - 1
        self.stream.write("\r\x1b[K" + format_line(stage, done, total, detail, width))
        self.stream.flush()
        self._shown = True

    def _erase(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def close(self) -> None:
        if self.enabled:
            self._erase()
