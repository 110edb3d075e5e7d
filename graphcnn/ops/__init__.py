"""The op table. Importing this package registers every op; look them up with `get_op`.

Op families are tables (activation.ACTIVATIONS, elementwise.BINARY_OPS, pool.POOL_OPS) that
the reference, the backends, ONNX import/export and the passes read; the property sets below
are derived from them, so passes and backends ask `op in ELEMENTWISE` instead of repeating lists.
"""
from __future__ import annotations

from . import (  # noqa: F401
    activation,
    conv,
    elementwise,
    indexing,
    layout,
    linear,
    normalization,
    opaque,
    pool,
    reduce,
    spatial,
    tensor,
)
from .activation import (
    ACTIVATIONS,
    EPILOGUE_ACTIVATIONS,
    Activation,
    OnnxActivation,
    VectorMath,
    apply_activation,
    as_epilogue,
    get_activation,
    preserves_zero,
)
from .elementwise import BINARY_OPS, Binary, OnnxBinary
from .pool import POOL_OPS, Pool
from .reduce import REDUCTIONS, Reduction
from .registry import OPS, REQUIRED, OpDef, get_op, register

# one input, same shape out, computed value by value
UNARY_ELEMENTWISE = frozenset(ACTIVATIONS)
# broadcasting arithmetic
BINARY_ELEMENTWISE = frozenset(BINARY_OPS)
# ops that compute nothing at inference time
NO_OPS = frozenset({"identity", "dropout"})
# ops that only reinterpret the buffer (a view in a row-major layout)
VIEWS = frozenset({"flatten", "reshape", "squeeze", "unsqueeze", "identity", "dropout"})
# activations that can be fused into a conv / gemm epilogue
FUSIBLE_ACTIVATIONS = frozenset(name for name, a in ACTIVATIONS.items() if a.fusible)
POOLS = frozenset(POOL_OPS)
# pools that run per channel on the blocked layout (layout="NCHWc")
BLOCKED_POOLS = frozenset(name for name, p in POOL_OPS.items() if p.blockable)

__all__ = [
           "ACTIVATIONS",
           "BINARY_ELEMENTWISE",
           "BINARY_OPS",
           "BLOCKED_POOLS",
           "EPILOGUE_ACTIVATIONS",
           "FUSIBLE_ACTIVATIONS",
           "NO_OPS",
           "OPS",
           "POOLS",
           "POOL_OPS",
           "REDUCTIONS",
           "REQUIRED",
           "UNARY_ELEMENTWISE",
           "VIEWS",
           "Activation",
           "Binary",
           "OnnxActivation",
           "OnnxBinary",
           "OpDef",
           "Pool",
           "Reduction",
           "VectorMath",
           "apply_activation",
           "as_epilogue",
           "get_activation",
           "get_op",
           "preserves_zero",
           "register",
]
