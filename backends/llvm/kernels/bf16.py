"""Packing for the bf16 kernels (AVX512-BF16): weights as pairs of bf16 in 32-bit words, the
operand layout of vdpbf16ps, stored in the float32 weights arena as bit patterns."""
from __future__ import annotations

import ml_dtypes
import numpy as np


def pair_words(pairs: np.ndarray) -> np.ndarray:
    """An array whose last axis holds pairs (size 2), rounded to bf16 (nearest even), as one
    float32 bit pattern per pair: shape without the last axis, C-contiguous."""
    if pairs.shape[-1] != 2:
        raise ValueError(f"pairs need a last axis of 2, got shape {pairs.shape}")
    words = np.ascontiguousarray(pairs, dtype=ml_dtypes.bfloat16)
    return words.view(np.uint16).view(np.float32).reshape(words.shape[:-1])
