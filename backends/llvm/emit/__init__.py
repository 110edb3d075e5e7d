"""Kernel emitters, one module per op family; importing this package registers them all in
`EMITTERS` (op name -> emitter). See base.py for the task ABI every emitter produces."""
from __future__ import annotations

from . import conv, elementwise, linear, normalization, pool, tensor  # noqa: F401
from .base import EMITTERS, EmitContext, Location, Task

# ops that compute nothing: their output aliases their input's buffer
VIEW_OPS = frozenset({"flatten", "reshape", "squeeze", "unsqueeze", "identity", "dropout"})

__all__ = ["EMITTERS", "VIEW_OPS", "EmitContext", "Location", "Task"]
