"""Shared helpers for the pass tests: numerics before/after, idempotence, small test networks."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from graphcnn.backends.reference import interpret

import graphcnn as gc
from graphcnn import dsl as nn
from graphcnn.ir import Graph
from graphcnn.models import lenet5
from graphcnn.verify import verify

TOL = 1e-5


def rand(shape, seed: int = 0, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run(graph: Graph, seed: int = 1) -> list[np.ndarray]:
    inputs = [rand(v.type.shape, seed + i) for i, v in enumerate(graph.inputs)]
    return interpret(graph, inputs)


def assert_same(before: Graph, after: Graph, tol: float = TOL) -> None:
    assert [v.type for v in after.inputs] == [v.type for v in before.inputs]
    assert [v.type.shape for v in after.outputs] == [v.type.shape for v in before.outputs]
    for a, b in zip(run(after), run(before)):
        assert rel_l2(a, b) <= tol


def check_pass(graph: Graph, fn: Callable[[Graph], bool], changed: bool = True) -> Graph:
    """Run `fn` on a copy: the changed flag, a valid graph, the same numbers, and idempotence
    (a second run changes nothing and reports so)."""
    work = graph.copy()
    assert fn(work) is changed
    verify(work)
    assert_same(graph, work)
    text = str(work)
    assert fn(work) is False, "not idempotent: a second run reported a change"
    verify(work)
    assert str(work) == text
    return work


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def const(g: Graph, shape, seed: int, low: float = -1.0, high: float = 1.0):
    return g.add_constant(rand(shape, seed, low, high), "c")


def conv_graph(c_in: int = 4, c_out: int = 8, k: int = 3, size: int = 6, bias: bool = True,
               **attrs) -> tuple[Graph, object]:
    """x -> conv; returns the graph (no outputs set yet) and the conv output."""
    g = Graph("t")
    x = g.add_input("x", (1, c_in, size, size))
    groups = attrs.get("groups", 1)
    ins = [x, const(g, (c_out, c_in // groups, k, k), 2)]
    if bias:
        ins.append(const(g, (c_out,), 3))
    return g, g.apply("conv", ins, attrs, name="conv")


# ----- small zoo-like DSL networks -----------------------------------------------------------
def _bn(c: int, seed: int) -> nn.BatchNorm2d:
    r = np.random.default_rng(seed)
    return nn.BatchNorm2d(c, weight=r.uniform(0.5, 1.5, c), bias=r.uniform(-0.2, 0.2, c),
                          running_mean=r.uniform(-0.2, 0.2, c),
                          running_var=r.uniform(0.5, 1.5, c))


def resnet_block() -> Graph:
    """A ResNet basic block with BN and a strided 1x1 projection shortcut, 16 -> 32 channels."""
    b = nn.GraphBuilder("resnet_block")
    x = b.input("input", (1, 16, 12, 12))
    y = nn.ReLU()(_bn(32, 1)(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False, seed=2)(x)))
    y = _bn(32, 3)(nn.Conv2d(32, 32, 3, padding=1, bias=False, seed=4)(y))
    short = _bn(32, 5)(nn.Conv2d(16, 32, 1, stride=2, bias=False, seed=6)(x))
    return b.build(nn.ReLU()(y + short))


def inception_block() -> Graph:
    """An inception-style block: four branches concatenated (64 channels), with a zero pad and a
    dropout in the way, then a classifier head."""
    b = nn.GraphBuilder("inception_block")
    x = b.input("input", (1, 16, 8, 8))
    b1 = nn.ReLU()(nn.Conv2d(16, 16, 1, seed=1)(x))
    b2 = nn.ReLU()(nn.Conv2d(8, 16, 3, seed=3)(nn.ZeroPad2d(1)(nn.ReLU()(
        nn.Conv2d(16, 8, 1, seed=2)(x)))))
    b3 = nn.ReLU()(nn.Conv2d(8, 16, 5, padding=2, seed=5)(nn.ReLU()(
        nn.Conv2d(16, 8, 1, seed=4)(nn.Dropout(0.3)(x)))))
    b4 = nn.ReLU()(nn.Conv2d(16, 16, 1, seed=6)(nn.MaxPool2d(3, 1, padding=1)(x)))
    y = nn.GlobalAvgPool2d()(nn.concat([b1, b2, b3, b4], axis=1))
    return b.build(nn.Softmax()(nn.Dense(64, 10, seed=7)(nn.Flatten()(y))))


def depthwise_block() -> Graph:
    """A MobileNetV2-style inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, relu6."""
    b = nn.GraphBuilder("depthwise_block")
    x = b.input("input", (1, 16, 10, 10))
    y = nn.ReLU6()(_bn(32, 1)(nn.Conv2d(16, 32, 1, bias=False, seed=2)(x)))
    y = nn.ReLU6()(_bn(32, 3)(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False, seed=4)(y)))
    y = _bn(16, 5)(nn.Conv2d(32, 16, 1, bias=False, seed=6)(y))
    return b.build(nn.Sigmoid()(y + x))


NETWORKS: dict[str, Callable[[], Graph]] = {
    "lenet5": lenet5,
    "resnet_block": resnet_block,
    "inception_block": inception_block,
    "depthwise_block": depthwise_block,
}

__all__ = ["NETWORKS", "assert_same", "check_pass", "conv_graph", "gc", "ops", "rand", "run"]
