"""The lesson the product grew from, as data and small graphs: used by `graphcnn demo` and tests.

A 5x5 binary image convolved with a 3x3 filter gives a 3x3 feature map; stride 2 gives 2x2; a 4x4
map max/average/sum pooled 2x2 gives 2x2; a small conv net ends in class probabilities.
"""
from __future__ import annotations

import numpy as np

from .dsl import (
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    ReLU,
    Sequential,
    Softmax,
    SumPool2d,
)
from .ir import Graph

IMAGE = np.array([[1, 1, 1, 0, 0],
                  [0, 1, 1, 1, 0],
                  [0, 0, 1, 1, 1],
                  [0, 0, 1, 1, 0],
                  [0, 1, 1, 0, 0]], np.float32)
FILTER = np.array([[1, 0, 1],
                   [0, 1, 0],
                   [1, 0, 1]], np.float32)
FEATURE_MAP = np.array([[4, 3, 4],
                        [2, 4, 3],
                        [2, 3, 4]], np.float32)
FEATURE_MAP_STRIDE2 = FEATURE_MAP[::2, ::2]

POOL_INPUT = np.array([[1, 1, 2, 4],
                       [5, 6, 7, 8],
                       [3, 2, 1, 0],
                       [1, 2, 3, 4]], np.float32)
POOLED = {
    "max": np.array([[6, 8], [3, 4]], np.float32),
    "average": np.array([[3.25, 5.25], [2, 2]], np.float32),
    "sum": np.array([[13, 21], [8, 8]], np.float32),
}
POOL_LAYERS = {"max": MaxPool2d, "average": AvgPool2d, "sum": SumPool2d}


def convolution_graph(stride: int = 1) -> Graph:
    """The lesson's filter as a one-channel conv without bias."""
    conv = Conv2d(1, 1, 3, stride=stride, bias=False, weight=FILTER.reshape(1, 1, 3, 3))
    return Sequential(conv).build((1, 1, 5, 5), name=f"lesson_conv_s{stride}")


def pooling_graph(kind: str) -> Graph:
    return Sequential(POOL_LAYERS[kind](2)).build((1, 1, 4, 4), name=f"lesson_{kind}_pool")


def classifier(num_classes: int = 3, seed: int = 0) -> Sequential:
    """conv -> relu -> pool -> conv -> relu -> pool -> dense -> softmax on 1x12x12 images."""
    return Sequential(
        Conv2d(1, 4, 3, padding=1, seed=seed), ReLU(), MaxPool2d(2),
        Conv2d(4, 8, 3, padding=1, seed=seed + 1), ReLU(), AvgPool2d(2),
        Flatten(), Dense(8 * 3 * 3, num_classes, seed=seed + 2), Softmax(),
    )


def classifier_inputs(batch: int = 4, seed: int = 0) -> np.ndarray:
    """Noisy pictures of the lesson image's diagonal stripe, and its transposes."""
    rng = np.random.default_rng(seed)
    base = np.kron(IMAGE, np.ones((2, 2), np.float32))[:12, :12]
    base = np.pad(base, ((1, 1), (1, 1)))[:12, :12]
    images = [base if i % 2 == 0 else base.T for i in range(batch)]
    x = np.stack(images)[:, None] + 0.1 * rng.standard_normal((batch, 1, 12, 12))
    return x.astype(np.float32)
