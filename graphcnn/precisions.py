"""The precisions and their check, named once for the front door (gc.compile), the llvm
backend and the pass pipeline, none of which need to import another for it (a cache hit
imports no passes)."""
from __future__ import annotations

from .errors import InvalidOptionError

PRECISIONS = ("fp32", "bf16")  # what bf16 computes in: graphcnn.passes.precision


def check_precision(precision: object) -> str:
    """`precision` if it is one of PRECISIONS, else an InvalidOptionError naming them."""
    if precision not in PRECISIONS:
        raise InvalidOptionError(f"precision must be one of {list(PRECISIONS)}, "
                                 f"got {precision!r}")
    return precision
