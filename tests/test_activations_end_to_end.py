"""Every activation of the table (graphcnn.ops.ACTIVATIONS) through every layer: fused into a
conv's and a gemm's epilogue and as a standalone elementwise kernel on the blocked layout by
the llvm pass pipeline, compiled for llvm, reference and onnxruntime, and compared on random
inputs (relative L2 error). A new table entry is tested here without an edit."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc
from graphcnn.ir import Graph
from graphcnn.ops import ACTIVATIONS, preserves_zero

# params for the activations that take some (their attrs' defaults otherwise)
PARAMS = {"leaky_relu": {"alpha": 0.15}, "clip": {"min": -0.4, "max": 0.9},
          "hard_sigmoid": {"alpha": 0.3, "beta": 0.45}}


# functions of a half line or that blow up (sqrt, log, 1/x, exp): the network runs on positive
# data, and a NaN or inf must be where the reference has it
POSITIVE = {"sqrt", "log", "reciprocal", "exp"}


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    finite = np.isfinite(b)
    np.testing.assert_array_equal(np.isfinite(a), finite)
    np.testing.assert_array_equal(a[~finite], b[~finite])
    a, b = a[finite], b[finite]
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def network(name: str, seed: int) -> Graph:
    """conv -> act (epilogue), add -> act (elementwise, blocked if act(0) = 0), pool, gemm -> act
    (epilogue)."""
    rng = np.random.default_rng(seed)
    attrs = PARAMS.get(name, {})
    g = Graph(f"act_{name}")
    x = g.add_input("x", (2, 16, 9, 11))
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32) * 0.3
    b = rng.standard_normal(24).astype(np.float32)
    if name in POSITIVE:  # conv outputs in about [0.5, 3]
        w, b = np.abs(w) * 0.02, np.abs(b) * 0.5 + 0.5
    w, b = g.add_constant(w), g.add_constant(b)
    y = g.apply(name, [g.apply("conv", [x, w, b], {"pads": [1, 1, 1, 1]})], attrs)
    y = g.apply(name, [g.apply("add", [y, y])], attrs)
    y = g.apply("flatten", [g.apply("global_avg_pool", [y])], {"axis": 1})
    wd = g.add_constant(rng.standard_normal((24, 10)).astype(np.float32))
    bd = g.add_constant(rng.standard_normal(10).astype(np.float32))
    g.set_outputs([g.apply(name, [g.apply("gemm", [y, wd, bd])], attrs)])
    return g


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_llvm_pipeline_fuses_and_blocks_the_activation(name):
    act = ACTIVATIONS[name]
    opt = gc.optimize(network(name, 0), target="llvm")
    ops = {n.op: n for n in opt.nodes}
    assert ops["conv"].attrs["activation"] == name and ops["conv"].attrs["layout"] == "NCHWc"
    assert ops["gemm"].attrs["activation"] == name
    (standalone,) = [n for n in opt.nodes if n.op == name]
    blocked = standalone.inputs[0].type.rank == 5
    assert blocked == preserves_zero(name, act.params(standalone.attrs))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("seed", [0, 1])
def test_llvm_reference_onnxruntime_agree(name, seed):
    graph = network(name, seed)
    x = (np.random.default_rng(100 + seed).standard_normal((2, 16, 9, 11)) * 3).astype(np.float32)
    if name in POSITIVE:
        x = np.abs(x)
    ref = gc.compile(graph, target="reference")(x)
    native = gc.compile(graph, target="llvm", cache=False)(x)
    ort = gc.compile(graph, target="onnxruntime")(x)
    assert rel_l2(native, ref) <= 1e-5, f"llvm vs reference: {rel_l2(native, ref):.2e}"
    assert rel_l2(ort, ref) <= 1e-5, f"onnxruntime vs reference: {rel_l2(ort, ref):.2e}"


def test_dsl_hardswish_is_pytorchs():
    """gc.Hardswish (PyTorch's nn.Hardswish): x * relu6(x + 3) / 6, on every target."""
    model = gc.Sequential(gc.Conv2d(3, 8, 3, padding=1, seed=0), gc.Hardswish())
    graph = model.build((1, 3, 10, 10))
    assert [n.op for n in graph.nodes][-1] == "hard_swish"
    x = (np.random.default_rng(5).standard_normal((1, 3, 10, 10)) * 4).astype(np.float32)
    conv = gc.Sequential(gc.Conv2d(3, 8, 3, padding=1, seed=0)).build((1, 3, 10, 10))
    c = gc.compile(conv, target="reference")(x).astype(np.float64)
    want = c * np.clip(c + 3, 0, 6) / 6
    for target in ("reference", "llvm", "onnxruntime"):
        got = gc.compile(graph, target=target)(x)
        assert rel_l2(got, want) <= 1e-6, target
