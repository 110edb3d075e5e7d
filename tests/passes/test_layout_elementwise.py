"""choose-layout rules 2b and 3: binary elementwise ops with broadcasting run blocked.

Squeeze-excitation (global pool -> 1x1 conv -> relu -> 1x1 conv -> sigmoid gate, x * gate),
SiLU spelled x * sigmoid(x), per-channel and scalar constants: each stays in the blocked layout,
with the padding lanes zero again after the op (checked by a conv reading them, against the NCHW
graph on the reference, and compiled for llvm against the reference on random inputs).
"""
from __future__ import annotations

from collections import Counter
from functools import partial

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from graphcnn.passes.layout import choose_layout
from pass_cases import check_pass, const, ops, rel_l2

import graphcnn as gc
from graphcnn.ir import Graph

LAYOUT = partial(choose_layout, block=16)


def _conv(g: Graph, x, c_out: int, seed: int, k: int = 1, **attrs):
    c_in = x.type.shape[1]
    return g.apply("conv", [x, const(g, (c_out, c_in, k, k), seed), const(g, (c_out,), seed + 1)],
                   {"pads": (k // 2,) * 4, **attrs})


def _squeeze_excitation(g: Graph, x, squeeze: int, seed: int, gate: str = "sigmoid"):
    c = x.type.shape[1]
    s = g.apply("global_avg_pool", [x])
    s = _conv(g, s, squeeze, seed, activation="relu")
    s = _conv(g, s, c, seed + 2, activation=gate,
              activation_params=(1 / 6, 0.5) if gate == "hard_sigmoid" else ())
    return g.apply("mul", [x, s])


def _se_net(c: int = 24, squeeze: int = 2) -> Graph:
    """conv (24 channels: 8 padding lanes in the second block) -> SE -> conv."""
    g = Graph("se")
    x = g.add_input("x", (1, 8, 9, 9))
    y = _conv(g, x, c, 1, k=3, activation="relu")
    y = _squeeze_excitation(g, y, squeeze, 3)
    g.set_outputs([_conv(g, y, 16, 7, k=3)])
    return g


def _counts(graph: Graph) -> tuple[int, int]:
    c = Counter(ops(graph))
    return c["to_blocked"], c["from_blocked"]


def _llvm_matches(graph: Graph, tol: float = 1e-5) -> None:
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
    want = interpret(graph, xs)
    got = gc.compile(graph, target="llvm", opt_level=2, cache=False)(*xs)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert rel_l2(a, b) <= tol


def test_rule3_squeeze_excitation_stays_blocked():
    """The 2-channel squeeze is blocked too (rule 1: its input has a twin), the gate's (N,C,1,1)
    broadcasts over the (N,C,H,W) map: one conversion in, one out."""
    out = check_pass(_se_net(), LAYOUT)
    assert _counts(out) == (1, 1)
    mul = next(n for n in out.nodes if n.op == "mul")
    assert [v.type.shape for v in mul.inputs] == [(1, 2, 9, 9, 16), (1, 2, 1, 1, 16)]


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_rule3_squeeze_excitation_on_llvm(gate):
    g = Graph("se")
    x = g.add_input("x", (2, 5, 11, 10))
    y = _conv(g, x, 40, 1, k=3, activation="relu")
    y = _squeeze_excitation(g, y, 10, 3, gate)
    g.set_outputs([g.apply("global_avg_pool", [_conv(g, y, 20, 7, k=3)])])
    opt = gc.optimize(g.copy(), opt_level=2, target="llvm")
    assert _counts(opt) == (1, 1)
    _llvm_matches(g)


def test_rule2b_silu_runs_blocked_and_its_mul_zeroes_the_padding():
    """x * sigmoid(x): the sigmoid's padding lanes are 0.5, the mul makes them 0 * 0.5."""
    g = Graph("silu")
    x = g.add_input("x", (1, 8, 7, 7))
    y = _conv(g, x, 24, 1, k=3)
    y = g.apply("mul", [y, g.apply("sigmoid", [y])])
    g.set_outputs([_conv(g, y, 16, 3, k=3)])
    out = check_pass(g, LAYOUT)
    assert _counts(out) == (1, 1)
    assert next(n for n in out.nodes if n.op == "sigmoid").inputs[0].type.rank == 5
    _llvm_matches(g)


def test_rule2b_a_dirty_twin_is_not_read_by_other_blocked_consumers():
    """sigmoid feeds a mul (blocked) and a conv: the conv must not read its 0.5 padding lanes,
    so it takes the logical value, blocked again."""
    g = Graph("dirty")
    x = g.add_input("x", (1, 8, 7, 7))
    y = _conv(g, x, 24, 1, k=3)
    s = g.apply("sigmoid", [y])
    g.set_outputs([_conv(g, g.apply("mul", [y, s]), 16, 3), _conv(g, s, 16, 5)])
    out = check_pass(g, LAYOUT)
    second = [n for n in out.nodes if n.op == "conv"][-1]
    assert second.inputs[0].producer.op == "to_blocked"
    _llvm_matches(g)


def test_rule2b_sigmoid_without_a_mul_still_ends_the_region():
    g = Graph("t")
    x = g.add_input("x", (1, 8, 7, 7))
    y = g.apply("add", [g.apply("sigmoid", [_conv(g, x, 24, 1)]), _conv(g, x, 24, 3)])
    g.set_outputs([_conv(g, y, 16, 5)])
    out = check_pass(g, LAYOUT)
    assert next(n for n in out.nodes if n.op == "sigmoid").inputs[0].type.rank == 4
    assert next(n for n in out.nodes if n.op == "add").inputs[0].type.rank == 4


@pytest.mark.parametrize("op, shape, first", [
    ("mul", (24, 1, 1), False), ("add", (1, 24, 1, 1), False), ("add", (24, 1, 1), True),
    ("add", (), False), ("mul", (1,), True), ("sum", (1, 1, 1, 1), False)])
def test_rule3_constants_padded_to_the_blocked_channels(op, shape, first):
    """Per-channel constants become (1, C/b, 1, 1, b) with padding lanes that keep the output's
    padding zero; a scalar that mul maps to 0 stays a scalar, one added is padded with 0."""
    g = Graph("t")
    x = g.add_input("x", (1, 8, 7, 7))
    y = _conv(g, x, 24, 1, k=3)
    c = const(g, shape, 9)
    y = g.apply(op, [c, y] if first else [y, c])
    g.set_outputs([_conv(g, y, 16, 3, k=3)])
    out = check_pass(g, LAYOUT)
    assert _counts(out) == (1, 1)
    node = next(n for n in out.nodes if n.op == op)
    k = node.inputs[0 if first else 1]
    if op == "mul" and len(shape) <= 1:
        assert k.type.shape == shape
    else:
        assert k.type.shape == (1, 2, 1, 1, 16) and not k.data[0, 1, 0, 0, 8:].any()
    _llvm_matches(g)


def test_rule3_constants_that_broadcast_spatially_stay_nchw():
    g = Graph("t")
    x = g.add_input("x", (1, 8, 7, 7))
    y = g.apply("add", [_conv(g, x, 24, 1, k=3), const(g, (1, 1, 7, 7), 9)])
    g.set_outputs([_conv(g, y, 16, 3, k=3)])
    out = check_pass(g, LAYOUT)
    assert next(n for n in out.nodes if n.op == "add").inputs[0].type.rank == 4


def test_rule3_runtime_inputs_without_twins_stay_nchw():
    g = Graph("t")
    x = g.add_input("x", (1, 8, 7, 7))
    gate = g.add_input("gate", (1, 24, 1, 1))
    y = g.apply("mul", [_conv(g, x, 24, 1, k=3), gate])
    g.set_outputs([_conv(g, y, 16, 3, k=3)])
    out = check_pass(g, LAYOUT)
    assert next(n for n in out.nodes if n.op == "mul").inputs[0].type.rank == 4
