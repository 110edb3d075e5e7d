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

import math
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
    # the math library: within a few ulp of numpy's float32 functions
    def sqrt(self, x: Any) -> Any: ...
    def abs(self, x: Any) -> Any: ...
    def floor(self, x: Any) -> Any: ...
    def ceil(self, x: Any) -> Any: ...
    def round(self, x: Any) -> Any: ...          # half to even (np.rint)
    def log(self, x: Any) -> Any: ...
    def log1p(self, x: Any) -> Any: ...
    def tanh(self, x: Any) -> Any: ...
    def erf(self, x: Any) -> Any: ...
    def pow(self, x: Any, y: Any) -> Any: ...


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
    # (string attribute, value): several activations share the op type (Gelu's approximate)
    variant: tuple[str, str] | None = None
    # binary ops (graphcnn.ops.BINARY_OPS) a param given as a runtime input becomes, per param
    runtime_params: tuple[str, ...] = ()


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
    check: Callable[[tuple], str | None] | None = None  # params -> what is wrong with them

    def validate(self, params: tuple) -> None:
        """A ShapeError (named with the node by the graph) for params the function rejects."""
        problem = self.check(tuple(params)) if self.check is not None else None
        require(problem is None, f"{self.name}: {problem}")

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


def _f32(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A numpy function whose float results stay in the input's dtype."""
    def wrapped(x: np.ndarray, *params: float) -> np.ndarray:
        with np.errstate(all="ignore"):
            y = fn(x, *params)
        return y.astype(x.dtype) if x.dtype.kind == "f" else y
    return wrapped


_erf_scalar = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x: np.ndarray) -> np.ndarray:
    # numpy has no erf: the correctly rounded float64 one, rounded to the input's type
    return _erf_scalar(x).astype(x.dtype)


_SQRT1_2, _SQRT_2_PI = 0.7071067811865476, 0.7978845608028654


def _gelu(x: np.ndarray) -> np.ndarray:
    # onnxruntime's formula, in the input's precision
    return x * x.dtype.type(0.5) * (1 + _erf(x * x.dtype.type(_SQRT1_2)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    t = x.dtype.type
    return x * t(0.5) * (1 + np.tanh(t(_SQRT_2_PI) * (x + t(0.044715) * x * x * x)))


def _softplus(x: np.ndarray) -> np.ndarray:
    # split by sign so exp never overflows
    return np.where(x > 0, x + np.log1p(np.exp(-x)), np.log1p(np.exp(np.minimum(x, 0))))


def _softplus_vec(m: VectorMath, x: Any) -> Any:
    return m.add(m.max(x, m.zero()), m.log1p(m.exp(m.neg(m.abs(x)))))


def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x >= 0, x, x.dtype.type(alpha) * (np.exp(np.minimum(x, 0)) - 1))


def _elu_vec(m: VectorMath, x: Any, alpha: float) -> Any:
    neg = m.mul(m.const(alpha), m.sub(m.exp(m.min(x, m.zero())), m.const(1.0)))
    return m.select(m.ge(x, m.zero()), x, neg)


def _celu(x: np.ndarray, alpha: float) -> np.ndarray:
    t = x.dtype.type
    return np.maximum(t(0), x) + np.minimum(t(0), t(alpha) * (np.exp(x / t(alpha)) - 1))


def _sign(x: np.ndarray) -> np.ndarray:
    return np.sign(x)


def _sign_vec(m: VectorMath, x: Any) -> Any:
    # x itself for 0 (and NaN)
    return m.select(m.gt(x, m.zero()), m.const(1.0),
                    m.select(m.gt(m.zero(), x), m.const(-1.0), x))


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
                              runtime_params=("max", "min"),
                              notes="opset >= 11: runtime min/max become max/min ops"),
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
    # x * sigmoid(x): passes/fuse_silu.py makes it from the exporters' Mul(x, Sigmoid(x))
    Activation("silu", _f32(lambda x: x * _sigmoid(x)),
               lambda m, x, p: m.div(x, m.add(m.exp(m.neg(x)), m.const(1.0))), None, cost=20,
               doc="x * sigmoid(x) (SiLU, swish)"),
    Activation("tanh", _f32(np.tanh), lambda m, x, p: m.tanh(x), OnnxActivation("Tanh", (6, 13)), cost=20,
               doc="tanh(x)"),
    Activation("erf", _f32(_erf), lambda m, x, p: m.erf(x), OnnxActivation("Erf", (9, 13)),
               cost=20, doc="erf(x)"),
    Activation("gelu", _f32(_gelu),
               lambda m, x, p: m.mul(m.mul(x, m.const(0.5)),
                                     m.add(m.const(1.0), m.erf(m.mul(x, m.const(_SQRT1_2))))),
               OnnxActivation("Gelu", (20,), variant=("approximate", "none")), cost=22,
               doc="x / 2 * (1 + erf(x / sqrt(2)))"),
    Activation("gelu_tanh", _f32(_gelu_tanh),
               lambda m, x, p: m.mul(m.mul(x, m.const(0.5)), m.add(m.const(1.0), m.tanh(
                   m.mul(m.const(_SQRT_2_PI),
                         m.add(x, m.mul(m.mul(m.mul(m.const(0.044715), x), x), x)))))),
               OnnxActivation("Gelu", (20,), variant=("approximate", "tanh")), cost=24,
               doc="x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))"),
    Activation("mish", _f32(lambda x: x * np.tanh(_softplus(x))),
               lambda m, x, p: m.mul(x, m.tanh(_softplus_vec(m, x))),
               OnnxActivation("Mish", (18, 22)), cost=45, doc="x * tanh(softplus(x))"),
    Activation("softplus", _f32(_softplus), lambda m, x, p: _softplus_vec(m, x),
               OnnxActivation("Softplus", (1, 22)), zero_preserving=False, cost=25,
               doc="log(1 + exp(x))"),
    Activation("softsign", _f32(lambda x: x / (1 + np.abs(x))),
               lambda m, x, p: m.div(x, m.add(m.const(1.0), m.abs(x))),
               OnnxActivation("Softsign", (1, 22)), cost=3, doc="x / (1 + |x|)"),
    Activation("elu", _f32(_elu), lambda m, x, p: _elu_vec(m, x, p[0]),
               OnnxActivation("Elu", (6, 22), (("alpha", 1.0),)), attrs=(("alpha", 1.0),),
               cost=20, doc="x if x >= 0 else alpha * (exp(x) - 1)"),
    Activation("selu", _f32(lambda x, alpha, gamma: x.dtype.type(gamma) * _elu(x, alpha)),
               lambda m, x, p: m.mul(m.const(p[1]), _elu_vec(m, x, p[0])),
               OnnxActivation("Selu", (6, 22), (("alpha", 1.6732632423543772),
                                                ("gamma", 1.0507009873554805))),
               attrs=(("alpha", 1.6732632423543772), ("gamma", 1.0507009873554805)), cost=21,
               doc="gamma * (x if x >= 0 else alpha * (exp(x) - 1))"),
    Activation("celu", _f32(_celu),
               lambda m, x, p: m.add(m.max(m.zero(), x), m.min(m.zero(), m.mul(
                   m.const(p[0]), m.sub(m.exp(m.div(x, m.const(p[0]))), m.const(1.0))))),
               OnnxActivation("Celu", (12, 28), (("alpha", 1.0),),
                              notes="alpha = 0 is a ShapeError"),
               attrs=(("alpha", 1.0),), cost=21,
               doc="max(0, x) + min(0, alpha * (exp(x / alpha) - 1))",
               check=lambda p: "alpha must be non-zero (x / alpha)" if p[0] == 0 else None),
    Activation("thresholded_relu", _f32(lambda x, alpha: np.where(x > alpha, x, 0)),
               lambda m, x, p: m.select(m.gt(x, m.const(p[0])), x, m.zero()),
               OnnxActivation("ThresholdedRelu", (10, 22), (("alpha", 1.0),)),
               attrs=(("alpha", 1.0),), doc="x if x > alpha else 0"),
    # the math functions (ONNX's unary elementwise ops)
    Activation("sqrt", _f32(np.sqrt), lambda m, x, p: m.sqrt(x), OnnxActivation("Sqrt", (6, 13)),
               cost=4, doc="sqrt(x)"),
    Activation("exp", _f32(np.exp), lambda m, x, p: m.exp(x), OnnxActivation("Exp", (6, 13)),
               zero_preserving=False, cost=15, doc="exp(x)"),
    Activation("log", _f32(np.log), lambda m, x, p: m.log(x), OnnxActivation("Log", (6, 13)),
               zero_preserving=False, cost=15, doc="log(x)"),
    Activation("abs", np.abs, lambda m, x, p: m.abs(x), OnnxActivation("Abs", (6, 13)),
               doc="|x|"),
    Activation("neg", np.negative, lambda m, x, p: m.neg(x), OnnxActivation("Neg", (6, 13)),
               doc="-x"),
    Activation("reciprocal", _f32(lambda x: 1 / x),
               lambda m, x, p: m.div(m.const(1.0), x), OnnxActivation("Reciprocal", (6, 13)),
               zero_preserving=False, cost=4, doc="1 / x"),
    Activation("floor", np.floor, lambda m, x, p: m.floor(x), OnnxActivation("Floor", (6, 13)),
               doc="floor(x)"),
    Activation("ceil", np.ceil, lambda m, x, p: m.ceil(x), OnnxActivation("Ceil", (6, 13)),
               doc="ceil(x)"),
    Activation("round", np.rint, lambda m, x, p: m.round(x), OnnxActivation("Round", (11, 22)),
               doc="x rounded to the nearest integer, halves to even"),
    Activation("sign", _sign, lambda m, x, p: _sign_vec(m, x), OnnxActivation("Sign", (9, 13)),
               doc="-1, 0 or 1 by the sign of x"),
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
    get_activation(act).validate(params)


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
    def normalize(attrs: dict, types: list) -> dict:
        act.validate(act.params(attrs))
        return attrs
    register(OpDef(act.name, dict(act.attrs), lambda a, t: same(t[0]),
                   lambda a, x: act.numpy(x, *act.params(a)),
                   normalize=normalize if act.check is not None else None, doc=act.doc))


for _act in ACTIVATIONS.values():
    _register(_act)
