"""The activation table: every pointwise activation declared once, and the fused-epilogue form
conv, gemm and batch_norm carry after fusion.

An `Activation` holds what every layer needs: the IR op and its attributes (the epilogue's
params, in order), the numpy function (the reference), a vector expression written against the
backend-neutral `VectorMath` interface (the llvm backend's epilogues and elementwise kernels),
the ONNX mapping as data (import and export), and the properties the passes read:
epilogue-fusible, zero-preserving (act(0) == 0, which keeps a blocked tensor's padding lanes
zero) and a cost per element (how much work an elementwise kernel counts).

A fused epilogue is two attributes: `activation` (a name of ACTIVATIONS, or "none") and
`activation_params` (the activation's attribute values in declaration order).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import UnsupportedOpError
from .registry import OpDef, register, require, same


class VectorMath(Protocol):
    """What a vector expression may call; a backend supplies it (the llvm one emits IR).

    Values are opaque to the expression; every operation is float32 lane by lane. `max`/`min`
    follow IEEE maxNum/minNum, comparisons are ordered, `select(c, a, b)` is `c ? a : b`.
    """

    def const(self, value: float) -> Any: ...
    def zero(self) -> Any: ...
    def add(self, x: Any, y: Any) -> Any: ...
    def sub(self, x: Any, y: Any) -> Any: ...
    def mul(self, x: Any, y: Any) -> Any: ...
    def div(self, x: Any, y: Any) -> Any: ...
    def neg(self, x: Any) -> Any: ...
    def max(self, x: Any, y: Any) -> Any: ...
    def min(self, x: Any, y: Any) -> Any: ...
    def exp(self, x: Any) -> Any: ...
    def gt(self, x: Any, y: Any) -> Any: ...
    def ge(self, x: Any, y: Any) -> Any: ...
    def select(self, cond: Any, x: Any, y: Any) -> Any: ...


VectorExpr = Callable[[VectorMath, Any, tuple], Any]  # (m, x, params) -> act(x)


@dataclass(frozen=True)
class OnnxActivation:
    """The ONNX op an activation imports from and exports to.

    `attrs` are the ONNX attribute names, one per param in order, with the ONNX defaults.
    From opset `inputs_since` on (Clip-11) the params are optional constant inputs 1, 2, ...
    instead of attributes. `versions` are the schema since_versions the importer implements.
    """

    op_type: str
    versions: tuple[int, ...]
    attrs: tuple[tuple[str, float], ...] = ()
    inputs_since: int | None = None
    notes: str = ""


@dataclass(frozen=True)
class Activation:
    name: str                                   # IR op name and epilogue name
    numpy: Callable[..., np.ndarray]            # (x, *params) -> act(x), the reference
    vector: VectorExpr                          # the same function on vectors (backends)
    onnx: OnnxActivation | None
    attrs: tuple[tuple[str, float], ...] = ()   # IR attributes = params, with defaults
    zero_preserving: bool | Callable[[tuple], bool] = True  # act(0) == 0 (for these params)
    fusible: bool = True                        # may become a conv / gemm / bn epilogue
    cost: int = 1                               # work per element, relative to an add
    doc: str = ""

    def params(self, attrs: dict) -> tuple:
        """The epilogue params of an op node's attributes."""
        return tuple(attrs[key] for key, _ in self.attrs)

    def preserves_zero(self, params: tuple) -> bool:
        z = self.zero_preserving
        return z(tuple(params)) if callable(z) else z


# ----- numpy semantics ------------------------------------------------------------------------
def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.float32(0))


def _leaky_relu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x >= 0, x, x * np.float32(alpha)).astype(x.dtype)


def _clip(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.minimum(np.maximum(x, np.float32(lo)), np.float32(hi))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # split by sign so exp never overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.maximum(np.float32(0), np.minimum(np.float32(1),
                                                x * np.float32(alpha) + np.float32(beta)))


def _hard_swish(x: np.ndarray) -> np.ndarray:
    return x * _hard_sigmoid(x, 1 / 6, 0.5)


def _hard_sigmoid_vec(m: VectorMath, x: Any, alpha: float, beta: float) -> Any:
    t = m.add(m.mul(x, m.const(alpha)), m.const(beta))
    return m.max(m.min(t, m.const(1.0)), m.zero())


# ----- the table ------------------------------------------------------------------------------
ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("relu", _relu, lambda m, x, p: m.max(x, m.zero()),
               OnnxActivation("Relu", (6, 13, 14)), doc="max(x, 0)"),
    Activation("leaky_relu", _leaky_relu,
               lambda m, x, p: m.select(m.ge(x, m.zero()), x, m.mul(x, m.const(p[0]))),
               OnnxActivation("LeakyRelu", (6, 16), (("alpha", 0.01),)),
               attrs=(("alpha", 0.01),), doc="x if x >= 0 else alpha * x"),
    Activation("clip", _clip, lambda m, x, p: m.min(m.max(x, m.const(p[0])), m.const(p[1])),
               OnnxActivation("Clip", (6, 11, 12, 13),
                              (("min", float("-inf")), ("max", float("inf"))), inputs_since=11,
                              notes="opset >= 11: min/max inputs must be constants"),
               attrs=(("min", float("-inf")), ("max", float("inf"))),
               zero_preserving=lambda p: p[0] <= 0 <= p[1],
               doc="min(max(x, min), max); relu6 is clip(0, 6)"),
    # 1 / (1 + exp(-x)): the vector exp saturates, so no sign split is needed
    Activation("sigmoid", _sigmoid,
               lambda m, x, p: m.div(m.const(1.0), m.add(m.exp(m.neg(x)), m.const(1.0))),
               OnnxActivation("Sigmoid", (6, 13)), zero_preserving=False, cost=20,
               doc="1 / (1 + exp(-x))"),
    Activation("hard_sigmoid", _hard_sigmoid, lambda m, x, p: _hard_sigmoid_vec(m, x, *p),
               OnnxActivation("HardSigmoid", (6, 22), (("alpha", 0.2), ("beta", 0.5))),
               attrs=(("alpha", 0.2), ("beta", 0.5)),
               zero_preserving=lambda p: p[1] <= 0, cost=2,
               doc="max(0, min(1, alpha * x + beta))"),
    Activation("hard_swish", _hard_swish,
               lambda m, x, p: m.mul(x, _hard_sigmoid_vec(m, x, 1 / 6, 0.5)),
               OnnxActivation("HardSwish", (14, 22)), cost=3,
               doc="x * max(0, min(1, x / 6 + 0.5))"),
)}

# the fused epilogue that computes nothing
_NONE = Activation("none", lambda x: x, lambda m, x, p: x, None, fusible=False)


def get_activation(name: str) -> Activation:
    """The table entry of an activation op or epilogue name ("none" included)."""
    if name == "none":
        return _NONE
    act = ACTIVATIONS.get(name)
    if act is None:
        raise UnsupportedOpError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}",
                                 {name: ["?"]})
    return act


# name -> (function of (x, *params), number of params), "none" included
EPILOGUE_ACTIVATIONS = {a.name: (a.numpy, len(a.attrs)) for a in (_NONE, *ACTIVATIONS.values())}


def check_epilogue(attrs: dict) -> None:
    act, params = attrs["activation"], attrs["activation_params"]
    require(act in EPILOGUE_ACTIVATIONS, f"unknown fused activation {act!r}")
    require(len(params) == EPILOGUE_ACTIVATIONS[act][1],
            f"activation {act!r} takes {EPILOGUE_ACTIVATIONS[act][1]} params, got {params}")


def apply_activation(x: np.ndarray, activation: str, params: tuple = ()) -> np.ndarray:
    fn, _ = EPILOGUE_ACTIVATIONS[activation]
    return fn(x, *params)


EPILOGUE_ATTRS = {"activation": "none", "activation_params": ()}


def preserves_zero(activation: str, params: tuple = ()) -> bool:
    """act(0) == 0 for a fused epilogue or an activation op's params: a non-zero act(0)
    (sigmoid, a clip above 0) would fill the zero padding lanes of a blocked tensor, which the
    blocked kernels and passes must mask or avoid."""
    return get_activation(activation).preserves_zero(tuple(params))


def as_epilogue(op: str, attrs: dict) -> tuple[str, tuple] | None:
    """Activation op name + its attrs -> the epilogue it becomes when fused into a producer."""
    act = ACTIVATIONS.get(op)
    return (act.name, act.params(attrs)) if act is not None and act.fusible else None


def _register(act: Activation) -> None:
    register(OpDef(act.name, dict(act.attrs), lambda a, t: same(t[0]),
                   lambda a, x: act.numpy(x, *act.params(a)), doc=act.doc))


for _act in ACTIVATIONS.values():
    _register(_act)
