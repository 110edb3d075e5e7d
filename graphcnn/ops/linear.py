"""Dense layers: gemm (ONNX Gemm, with a fused activation after fusion) and matmul (numpy matmul)."""
from __future__ import annotations

import numpy as np

from ..tensor_type import TensorType
from .activation import EPILOGUE_ATTRS, apply_activation, check_epilogue
from .elementwise import broadcast_shapes
from .registry import OpDef, register, require


def _gemm_infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    A, B = t[0], t[1]
    require(A.rank == 2 and B.rank == 2, f"gemm takes 2-D A and B, got {A} and {B}")
    m, k = A.shape[::-1] if a["transA"] else A.shape
    k2, n = B.shape[::-1] if a["transB"] else B.shape
    require(k == k2, f"inner dims differ: A {A} (transA={a['transA']}) vs B {B} (transB={a['transB']})")
    if len(t) == 3:
        require(broadcast_shapes(t[2].shape, (m, n)) == (m, n),
                f"C {t[2]} does not broadcast to ({m}, {n})")
    check_epilogue(a)
    return [TensorType((m, n), float_result(A, B))]


def float_result(A: TensorType, B: TensorType) -> str:
    """The result dtype of A @ B: A's, but float32 for a bf16 A (the bf16 precision's dense
    layers: bf16 activations, float32 weights and sums)."""
    if A.dtype == "bfloat16":
        require(B.dtype == "float32", f"a bfloat16 A takes float32 B, not {B}")
        return "float32"
    return A.dtype


def _gemm(a: dict, A, B, C=None):
    A = A.astype(np.float32) if A.dtype.name == "bfloat16" else A
    A = A.T if a["transA"] else A
    B = B.T if a["transB"] else B
    y = np.float32(a["alpha"]) * (A @ B)
    if C is not None:
        y = y + np.float32(a["beta"]) * C
    return apply_activation(y.astype(np.float32), a["activation"], a["activation_params"])


def _gemm_normalize(a: dict, t: list[TensorType]) -> dict:
    a["transA"], a["transB"] = int(bool(a["transA"])), int(bool(a["transB"]))
    a["alpha"], a["beta"] = float(a["alpha"]), float(a["beta"])
    return a


register(OpDef("gemm", {"transA": 0, "transB": 0, "alpha": 1.0, "beta": 1.0, **EPILOGUE_ATTRS},
               _gemm_infer, _gemm, inputs=(2, 3), normalize=_gemm_normalize,
               doc="act(alpha * op(A) @ op(B) + beta * C); Dense is gemm with transB=1"))


def matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    require(len(a) >= 1 and len(b) >= 1, "matmul operands must have rank >= 1")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    require(a2[-1] == b2[-2], f"inner dims differ: {a} @ {b}")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _matmul(a: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.matmul(x.astype(np.float32) if x.dtype.name == "bfloat16" else x, y)


register(OpDef("matmul", {}, lambda a, t: [TensorType(matmul_shape(t[0].shape, t[1].shape),
                                                         float_result(t[0], t[1]))],
               _matmul, inputs=(2, 2),
               doc="numpy matmul: batched, broadcasting, 1-D operands promoted"))
