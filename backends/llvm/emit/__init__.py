"""Kernel emitters, one module per op family; importing this package registers them all in
`EMITTERS` (op name -> emitter). See base.py for the task ABI every emitter produces."""
from __future__ import annotations

from graphcnn.ops import VIEWS as VIEW_OPS  # computes nothing: the output aliases the input

from . import conv, elementwise, layout_concat, linear, normalization, pool, reduce, tensor  # noqa: F401
from .base import EMITTERS, EmitContext, Location, Task

__all__ = ["EMITTERS", "VIEW_OPS", "EmitContext", "Location", "Task"]
