"""The DSL's PyTorch-named activations (gc.Tanh, gc.GELU, gc.SiLU, gc.ELU, gc.Mish,
gc.Softplus): the op each builds, torch's numbers on every target, typed errors."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc
from graphcnn.errors import ShapeError

LAYERS = [
    (lambda: gc.Tanh(), "tanh", "Tanh", {}),
    (lambda: gc.GELU(), "gelu", "GELU", {}),
    (lambda: gc.GELU(approximate="tanh"), "gelu_tanh", "GELU", {"approximate": "tanh"}),
    (lambda: gc.SiLU(), "silu", "SiLU", {}),
    (lambda: gc.ELU(0.7), "elu", "ELU", {"alpha": 0.7}),
    (lambda: gc.Mish(), "mish", "Mish", {}),
    (lambda: gc.Softplus(), "softplus", "Softplus", {}),
]


@pytest.mark.parametrize("make,op,torch_name,torch_kwargs", LAYERS, ids=[l[1] for l in LAYERS])
def test_layer_is_torchs(make, op, torch_name, torch_kwargs):
    torch = pytest.importorskip("torch")
    graph = gc.Sequential(gc.Conv2d(3, 8, 3, padding=1, seed=0), make()).build((1, 3, 9, 9))
    assert [n.op for n in graph.nodes][-1] == op
    x = (np.random.default_rng(5).standard_normal((1, 3, 9, 9)) * 2).astype(np.float32)
    conv = gc.Sequential(gc.Conv2d(3, 8, 3, padding=1, seed=0)).build((1, 3, 9, 9))
    c = torch.from_numpy(gc.compile(conv, target="reference")(x))
    want = getattr(torch.nn, torch_name)(**torch_kwargs)(c).numpy()
    for target in ("reference", "llvm", "onnxruntime"):
        got = gc.compile(graph, target=target)(x)
        err = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert err <= 1e-6, (target, err)


def test_llvm_fuses_them_into_the_conv():
    graph = gc.Sequential(gc.Conv2d(3, 8, 3, padding=1, seed=0), gc.GELU()).build((1, 3, 9, 9))
    opt = gc.optimize(graph, target="llvm")
    assert [n.attrs["activation"] for n in opt.nodes if n.op == "conv"] == ["gelu"]


def test_bad_arguments_are_typed_errors():
    with pytest.raises(ShapeError, match="approximate 'erf'"):
        gc.GELU(approximate="erf")
    with pytest.raises(ShapeError, match="beta"):
        gc.Softplus(beta=2.0)
