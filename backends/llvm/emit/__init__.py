"""Kernel emitters, one module per op family; importing this package registers them all in
`EMITTERS` (op name -> emitter). See base.py for the task ABI every emitter produces."""
from __future__ import annotations

from graphcnn.ops import VIEWS as VIEW_OPS  # computes nothing: the output aliases the input

from . import (  # noqa: F401
    conv,
    elementwise,
    indexing,
    layout_concat,
    linear,
    normalization,
    pool,
    reduce,
    spatial,
    tensor,
)
from .base import ELEMENT_TYPES, EMITTERS, EmitContext, Location, Task
from .indexing import ANY_DTYPE_OPS

__all__ = ["ANY_DTYPE_OPS", "ELEMENT_TYPES", "EMITTERS", "VIEW_OPS", "EmitContext", "Location",
           "Task"]
