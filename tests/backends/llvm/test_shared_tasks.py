"""Steps with equal task keys (op, attributes, kernel plan, every input's and output's type and
buffer) call one task function (emit/model.py emit_step): a chain of equal layers compiles
each distinct kernel once. Sharing must never change a result: every model here runs bitwise
equal to its build without sharing, and matches the reference."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.llvm.emit import model as emit_model

import graphcnn as gc
from graphcnn import models


def task_functions(cm: gc.CompiledModel) -> set[str]:
    return {k["fn"] for k in cm.kernels}


def test_a_chain_of_equal_layers_shares_its_tasks():
    g = gc.Sequential(*[gc.ReLU() for _ in range(200)]).build((1, 16, 8, 8))
    cm = gc.compile(g, target="llvm", cache=False, opt_level=0)
    assert len(cm.kernels) == 200
    assert len(task_functions(cm)) <= 4  # first, last and the two ping-pong buffers between
    x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(cm(x), gc.compile(g, target="reference")(x))


def test_different_attributes_are_not_shared():
    slopes = [0.5, 0.1] * 20
    g = gc.Sequential(*[gc.LeakyReLU(a) for a in slopes]).build((1, 16, 8, 8))
    cm = gc.compile(g, target="llvm", cache=False, opt_level=0)
    assert len(task_functions(cm)) >= 2
    x = np.random.default_rng(1).standard_normal((1, 16, 8, 8)).astype(np.float32) * 4
    np.testing.assert_allclose(cm(x), gc.compile(g, target="reference")(x), rtol=1e-6)


def weightless_blocks() -> gc.Graph:
    """Repeated blocks of weightless ops on two branches: equal steps on equal buffers."""
    b = gc.GraphBuilder()
    x = b.input("x", (2, 8, 12, 12))
    for _ in range(12):
        y = b.op("sigmoid", [x])
        z = b.op("tanh", [x])
        x = b.op("max_pool", [b.op("add", [y, z])], kernel_shape=[3, 3], strides=[1, 1],
                 pads=[1, 1, 1, 1])
    return b.build(x)


@pytest.mark.parametrize("build", [
    weightless_blocks,
    lambda: models.resnet18(width=0.25, size=32),
    lambda: models.densenet121(width=0.25, size=32),
    lambda: models.shufflenet(width=0.5, size=32),
    lambda: models.inception_v1(width=0.25, size=64),
], ids=["weightless_blocks", "resnet18", "densenet121", "shufflenet", "inception_v1"])
def test_sharing_changes_no_result(build, monkeypatch):
    g = build()
    x = np.random.default_rng(2).standard_normal(g.inputs[0].type.shape).astype(np.float32)
    shared = gc.compile(g, target="llvm", cache=False)
    monkeypatch.setattr(emit_model, "shared_key", lambda ctx, step: None)
    alone = gc.compile(g, target="llvm", cache=False)
    assert len(task_functions(alone)) == len(alone.kernels)
    assert len(task_functions(shared)) <= len(task_functions(alone))
    np.testing.assert_array_equal(shared(x), alone(x))
    want = gc.compile(g, target="reference")(x)
    np.testing.assert_allclose(shared(x), want, rtol=1e-3, atol=1e-4)
