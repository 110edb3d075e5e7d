"""The integer binary kernels (add, sub, mul, sum, max, min on int64 / int32): llvm against the
reference, bit for bit, with numpy broadcasting, negative values and wrapping products."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.llvm.emit.elementwise import INTEGER_BINARY
from graphcnn.backends.reference import interpret

import graphcnn as gc
from graphcnn.ir import Graph

SHAPES = [((2, 3, 5), (2, 3, 5)), ((4, 1, 7), (3, 1)), ((1,), (2, 19)), ((6, 33), (33,))]


def _values(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    # a wide range: int64 products wrap, as numpy's do
    bound = np.iinfo(dtype).max // 2
    return rng.integers(-bound, bound, shape, dtype=dtype)


@pytest.mark.parametrize("dtype", ["int64", "int32"])
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{s[0]}-{s[1]}")
@pytest.mark.parametrize("op", sorted(INTEGER_BINARY))
def test_integer_binary_matches_reference(op, shapes, dtype):
    rng = np.random.default_rng(len(op) * 7 + len(shapes[1]))
    g = Graph(f"int_{op}")
    xs = [g.add_input(f"x{i}", s, dtype) for i, s in enumerate(shapes)]
    const = g.add_constant(_values(rng, shapes[1], dtype), "c")
    ins = xs + [const] if op in ("sum", "max", "min") else xs
    g.set_outputs([g.apply(op, ins)])
    inputs = [_values(rng, s, dtype) for s in shapes]
    want = interpret(g, inputs)[0]
    with np.errstate(over="ignore"):
        got = gc.compile(g, target="llvm", cache=False)(*inputs)
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


def test_integer_division_stays_off_the_native_target():
    """An integer division by zero would trap in native code: no integer div kernel."""
    g = Graph("int_div")
    x, y = (g.add_input(n, (4,), "int64") for n in ("x", "y"))
    g.set_outputs([g.apply("div", [x, y], name="d")])
    with pytest.raises(gc.CompileError, match=r"node 'd' \(div\).*float32 only"):
        gc.compile(g, target="llvm", cache=False)


def test_mixed_integer_types_have_no_kernel():
    g = Graph("mixed")
    x = g.add_input("x", (4,), "int64")
    y = g.add_input("y", (4,), "int32")
    g.set_outputs([g.apply("add", [x, y], name="a")])
    with pytest.raises(gc.CompileError, match=r"node 'a' \(add\).*float32 only"):
        gc.compile(g, target="llvm", cache=False)
