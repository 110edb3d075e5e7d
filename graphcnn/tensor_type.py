"""TensorType: a static tensor type (concrete shape, numpy dtype name).

Its own module so the op table (graphcnn/ops) can name types without importing the IR, which
imports the op table for its shape rules (the one declared tie between the two).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes  # noqa: F401  (registers numpy's "bfloat16" dtype: the bf16 precision's)
import numpy as np

# numpy's canonical names of the numeric dtypes: TensorType keeps these as given
_CANONICAL_DTYPES = frozenset(np.dtype(code).name for code in "?bBhHiIlLqQefdgFDG") | {"bfloat16"}
_DTYPE_SHORT = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "bool": "b1",
                "bfloat16": "bf16"}


@dataclass(frozen=True)
class TensorType:
    """A static tensor type: a concrete shape and a numpy dtype name."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in _CANONICAL_DTYPES:  # spelled otherwise ("f4", np.float32, ...)
            object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def __str__(self) -> str:
        return f"{_DTYPE_SHORT.get(self.dtype, self.dtype)}[{','.join(map(str, self.shape))}]"
