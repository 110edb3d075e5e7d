"""Whole networks: DSL -> ONNX -> onnxruntime equals the reference interpreter.

Each network is run unoptimised and after gc.optimize (fused conv epilogues, folded batch norm,
blocked layouts), so the exported forms of the fused ops are exercised end to end.
"""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.onnx.export import to_onnx

import graphcnn as gc


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def bn(c: int, rng: np.random.Generator) -> gc.BatchNorm2d:
    """Batch norm with non-trivial statistics, so folding it is not a no-op."""
    return gc.BatchNorm2d(c, weight=rng.uniform(0.5, 1.5, c), bias=rng.standard_normal(c),
                          running_mean=rng.standard_normal(c) * 0.1,
                          running_var=rng.uniform(0.5, 2.0, c))


def lenet() -> tuple[gc.Graph, tuple[int, ...]]:
    model = gc.Sequential(
        gc.Conv2d(1, 6, kernel_size=5, stride=1, padding=2, seed=1), gc.ReLU(), gc.MaxPool2d(2),
        gc.Conv2d(6, 16, 5, seed=2), gc.ReLU(), gc.AvgPool2d(2),
        gc.Flatten(), gc.Dense(16 * 5 * 5, 120, seed=3), gc.ReLU(),
        gc.Dense(120, 84, seed=4), gc.ReLU(), gc.Dense(84, 10, seed=5), gc.Softmax(),
    )
    return model.build((2, 1, 28, 28), name="lenet5"), (2, 1, 28, 28)


def resnet_block() -> tuple[gc.Graph, tuple[int, ...]]:
    rng = np.random.default_rng(7)
    b = gc.GraphBuilder("resnet_block")
    x = b.input("input", (1, 16, 14, 14))
    y = gc.Conv2d(16, 16, 3, padding=1, bias=False, seed=11)(x)
    y = gc.ReLU()(bn(16, rng)(y))
    y = gc.Conv2d(16, 16, 3, padding=1, bias=False, seed=12)(y)
    y = bn(16, rng)(y)
    out = gc.ReLU()(gc.add(y, x))
    return b.build(out), (1, 16, 14, 14)


def inception_block() -> tuple[gc.Graph, tuple[int, ...]]:
    b = gc.GraphBuilder("inception_block")
    x = b.input("input", (1, 12, 15, 15))
    b1 = gc.ReLU()(gc.Conv2d(12, 8, 1, seed=21)(x))
    b3 = gc.ReLU()(gc.Conv2d(12, 6, 1, seed=22)(x))
    b3 = gc.ReLU()(gc.Conv2d(6, 10, 3, padding=1, seed=23)(b3))
    b5 = gc.ReLU()(gc.Conv2d(12, 4, 1, seed=24)(x))
    b5 = gc.ReLU()(gc.Conv2d(4, 6, 5, padding=2, seed=25)(b5))
    bp = gc.MaxPool2d(3, stride=1, padding=1)(x)
    bp = gc.ReLU()(gc.Conv2d(12, 5, 1, seed=26)(bp))
    return b.build(gc.concat([b1, b3, b5, bp], axis=1)), (1, 12, 15, 15)


def dense_block() -> tuple[gc.Graph, tuple[int, ...]]:
    """DenseNet layers: batch norm + relu on concats (blocked batch norm under the llvm
    pipeline, with 4 padding lanes in the 28-channel one)."""
    rng = np.random.default_rng(8)
    b = gc.GraphBuilder("dense_block")
    x = b.input("input", (1, 16, 8, 8))
    feats = gc.Conv2d(16, 16, 3, padding=1, seed=31)(x)
    for i, growth in enumerate((16, 12)):
        y = gc.ReLU()(bn(feats.shape[1], rng)(feats))
        feats = gc.concat([feats, gc.Conv2d(feats.shape[1], growth, 3, padding=1,
                                            seed=32 + i)(y)], axis=1)
    return b.build(gc.ReLU()(bn(44, rng)(feats))), (1, 16, 8, 8)


NETWORKS = {"lenet5": lenet, "resnet_block": resnet_block, "inception_block": inception_block,
            "dense_block": dense_block}


# (opt_level, target the passes prepare for): the llvm pipeline adds the blocked NCHWc layout
PIPELINES = [(0, None), (2, "onnxruntime"), (2, "llvm")]


@pytest.mark.parametrize("opt_level,target", PIPELINES, ids=[f"O{o}-{t}" for o, t in PIPELINES])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_matches_reference(name: str, opt_level: int, target: str | None) -> None:
    graph, shape = NETWORKS[name]()
    if opt_level:
        graph = gc.optimize(graph, opt_level=opt_level, target=target)
    x = np.random.default_rng(sorted(NETWORKS).index(name)).standard_normal(shape).astype(np.float32)
    expected = gc.compile(graph, target="reference", opt_level=0)(x)
    got = gc.compile(graph, target="onnxruntime", opt_level=0)(x)
    assert got.shape == expected.shape
    assert rel_l2(got, expected) <= 1e-5


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_names_survive_export(name: str) -> None:
    graph, _ = NETWORKS[name]()
    model = to_onnx(graph)
    assert [i.name for i in model.graph.input] == [v.name for v in graph.inputs]
    assert [o.name for o in model.graph.output] == [v.name for v in graph.outputs]
