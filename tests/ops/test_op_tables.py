"""The op-family tables (activations, binary elementwise ops, pools) against themselves and
every layer that reads them: the vector expressions agree with the numpy functions, the
declared properties with what the functions compute, and every entry is imported, exported,
emitted and fused without a per-op edit anywhere else."""
from __future__ import annotations

import math

import numpy as np
import pytest
from graphcnn.backends.llvm.emit import EMITTERS
from graphcnn.backends.onnx.export import EXPORTERS, OPSET
from graphcnn.passes.fuse_activation import RULES

import graphcnn as gc
from graphcnn.frontends.onnx import IMPORTERS
from graphcnn.ir import Graph
from graphcnn.ops import (
    ACTIVATIONS,
    BINARY_OPS,
    BLOCKED_POOLS,
    FUSIBLE_ACTIVATIONS,
    OPS,
    POOL_OPS,
    UNARY_ELEMENTWISE,
    as_epilogue,
    preserves_zero,
)


class NumpyMath:
    """The VectorMath interface on float32 numpy arrays (IEEE maxNum/minNum: NaN-ignoring)."""

    def const(self, v):
        return np.float32(v)

    def zero(self):
        return np.float32(0)

    add, sub, mul = staticmethod(np.add), staticmethod(np.subtract), staticmethod(np.multiply)
    div, neg, exp = staticmethod(np.divide), staticmethod(np.negative), staticmethod(np.exp)
    max, min = staticmethod(np.fmax), staticmethod(np.fmin)
    gt, ge = staticmethod(np.greater), staticmethod(np.greater_equal)

    @staticmethod
    def select(c, x, y):
        return np.where(c, x, y).astype(np.float32)

    sqrt, abs, log = staticmethod(np.sqrt), staticmethod(np.abs), staticmethod(np.log)
    floor, ceil, round = staticmethod(np.floor), staticmethod(np.ceil), staticmethod(np.rint)
    log1p, tanh = staticmethod(np.log1p), staticmethod(np.tanh)

    @staticmethod
    def erf(x):
        return np.vectorize(math.erf, otypes=[np.float64])(x).astype(np.float32)

    @staticmethod
    def pow(x, y):
        return np.power(x, y)


# params drawn for the activations that take some (the rest run with none)
PARAMS = {
    "leaky_relu": lambda r: (float(r.uniform(0, 1)),),
    "clip": lambda r: tuple(sorted(float(v) for v in r.uniform(-2, 2, 2))),
    "hard_sigmoid": lambda r: (float(r.uniform(0.05, 1)), float(r.uniform(-1, 1))),
    "elu": lambda r: (float(r.uniform(0.1, 2)),),
    "celu": lambda r: (float(r.uniform(0.1, 2)),),
    "selu": lambda r: (float(r.uniform(1, 2)), float(r.uniform(0.5, 1.5))),
    "thresholded_relu": lambda r: (float(r.uniform(-1, 2)),),
}


def draw(name: str, rng: np.random.Generator) -> tuple:
    act = ACTIVATIONS[name]
    return PARAMS[name](rng) if name in PARAMS else tuple(d for _, d in act.attrs)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_vector_expression_matches_numpy(name):
    rng = np.random.default_rng(len(name))
    act = ACTIVATIONS[name]
    for _ in range(5):
        params = draw(name, rng)
        x = (rng.standard_normal(997) * 5).astype(np.float32)
        want = act.numpy(x, *params)
        got = act.vector(NumpyMath(), x, params)
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7, err_msg=f"{name}{params}")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_zero_preserving_is_what_the_function_computes(name):
    rng = np.random.default_rng(7 + len(name))
    act = ACTIVATIONS[name]
    for _ in range(20):
        params = draw(name, rng)
        at_zero = act.numpy(np.zeros(4, np.float32), *params)
        assert preserves_zero(name, params) == bool(np.all(at_zero == 0)), (name, params)


def test_binary_zero_preserving_is_what_the_function_computes():
    for op in BINARY_OPS.values():
        zero = np.zeros(3, np.float32)
        assert op.zero_preserving == bool(np.all(op.numpy(zero, zero) == 0)), op.name
        x, y = np.random.default_rng(1).standard_normal((2, 9)).astype(np.float32)
        np.testing.assert_array_equal(op.vector(NumpyMath(), x, y), op.numpy(x, y))


def test_property_sets_are_the_tables():
    assert UNARY_ELEMENTWISE == set(ACTIVATIONS)
    assert FUSIBLE_ACTIVATIONS == {n for n, a in ACTIVATIONS.items() if a.fusible}
    assert BLOCKED_POOLS == {n for n, p in POOL_OPS.items() if p.blockable}
    # add: the residual rule; mul: a per-channel constant scale folded into the conv (rule 1b)
    assert {op for op, _ in RULES} == {"add", "mul"} | FUSIBLE_ACTIVATIONS


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) | set(BINARY_OPS) | set(POOL_OPS)))
def test_every_table_entry_reaches_every_layer(name):
    assert name in OPS and name in EMITTERS and name in EXPORTERS
    entry = ACTIVATIONS.get(name) or BINARY_OPS.get(name)
    if entry is not None:  # silu has no ONNX op: exported as Mul(x, Sigmoid(x))
        assert entry.onnx is None or IMPORTERS[entry.onnx.op_type].versions == entry.onnx.versions
    elif POOL_OPS[name].onnx is not None:
        assert POOL_OPS[name].onnx in IMPORTERS


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_onnx_round_trip_keeps_op_and_params(name):
    act = ACTIVATIONS[name]
    params = draw(name, np.random.default_rng(3))
    g = Graph(name)
    x = g.add_input("x", (2, 3, 4))
    g.set_outputs([g.apply(name, [x], {k: p for (k, _), p in zip(act.attrs, params)})])
    back = gc.from_onnx(gc.to_onnx(g))
    if act.onnx is None or act.onnx.versions[0] > OPSET:
        # exported as the standard ops it expands to (silu, Gelu-20): the same function
        x = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32) * 3
        want = gc.compile(g, target="reference")(x)
        np.testing.assert_allclose(gc.compile(back, target="reference")(x), want,
                                   rtol=1e-6, atol=1e-7)
        assert [n.op for n in gc.optimize(back, opt_level=2).nodes] == [name]  # fused back
        return
    (node,) = [n for n in back.nodes if n.op == name]
    np.testing.assert_allclose(act.params(node.attrs), params, rtol=1e-7)
    assert as_epilogue(name, node.attrs)[0] == name
