"""The op table. Importing this package registers every op; look them up with `get_op`.

Op properties live here as sets of names, so passes and backends ask `op in ELEMENTWISE` instead
of repeating lists.
"""
from __future__ import annotations

from . import activation, conv, elementwise, layout, linear, normalization, pool, tensor  # noqa: F401
from .activation import (
    EPILOGUE_ACTIVATIONS,
    activation_at_zero,
    apply_activation,
    as_epilogue,
)
from .registry import OPS, REQUIRED, OpDef, get_op, register

# one input, same shape out, computed value by value
UNARY_ELEMENTWISE = frozenset({"relu", "leaky_relu", "clip", "sigmoid"})
# broadcasting arithmetic
BINARY_ELEMENTWISE = frozenset({"add", "mul", "sum"})
# ops that compute nothing at inference time
NO_OPS = frozenset({"identity", "dropout"})
# ops that only reinterpret the buffer (a view in a row-major layout)
VIEWS = frozenset({"flatten", "reshape", "squeeze", "unsqueeze", "identity", "dropout"})
# activations that can be fused into a conv / gemm epilogue
FUSIBLE_ACTIVATIONS = frozenset({"relu", "leaky_relu", "clip", "sigmoid"})
POOLS = frozenset({"max_pool", "avg_pool", "sum_pool", "global_avg_pool", "global_max_pool"})

__all__ = [
           "BINARY_ELEMENTWISE",
           "EPILOGUE_ACTIVATIONS",
           "FUSIBLE_ACTIVATIONS",
           "NO_OPS",
           "OPS",
           "POOLS",
           "REQUIRED",
           "UNARY_ELEMENTWISE",
           "VIEWS",
           "OpDef",
           "activation_at_zero",
           "apply_activation",
           "as_epilogue",
           "get_op",
           "register",
]
