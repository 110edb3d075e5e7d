"""Turning off numpy's transparent-huge-page advice while graphcnn allocates model-sized arrays.

numpy advises the kernel to back every array of 4 MB or more with huge pages
(madvise(MADV_HUGEPAGE)). Where the kernel's THP defrag setting is "madvise" (its default),
the first touch of such memory may compact memory synchronously, and in a process whose heap
is fragmented (one that has already built, run or exported a model) that made reading a
100 MB model file and decoding its weights ~0.2 s slower, about as long as the import itself.
Importing and compiling a model allocate hundreds of MB of short-lived arrays, for which huge
pages buy nothing; `no_huge_page_advice()` switches the advice off around that work and
restores the caller's setting (a process-wide numpy flag: arrays other threads allocate
meanwhile only miss the advice, never anything else). A compiled model's workspace, long-lived
and touched on every call, keeps it (`huge_page_advice(True)`).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def _setter():
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    return getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)


@contextmanager
def huge_page_advice(on: bool) -> Iterator[None]:
    """numpy's advice on (long-lived, hot memory: a compiled model's workspace) or off."""
    setter = _setter()
    if setter is None:  # a numpy without the switch: nothing to change
        yield
        return
    previous = setter(on)
    try:
        yield
    finally:
        setter(previous)


def no_huge_page_advice():
    return huge_page_advice(False)
