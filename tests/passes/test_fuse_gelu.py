from __future__ import annotations

import math

import numpy as np
import pytest
from graphcnn.passes.fuse_gelu import fuse_gelu
from pass_cases import check_pass, conv_graph, ops, rel_l2
from torch_exports import EXPORTERS, conv_then, export

import graphcnn as gc


def _c(g, v):
    return g.add_constant(np.array(v, np.float32), "c")


def _erf_gelu(order: str):
    """conv -> the erf GELU in the arrangement `order` names."""
    g, x = conv_graph()
    if order == "div":  # TorchScript: Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)
        e = g.apply("erf", [g.apply("div", [x, _c(g, 1.4142135)])])
        y = g.apply("mul", [g.apply("mul", [x, g.apply("add", [e, _c(g, 1.0)])]), _c(g, 0.5)])
    elif order == "mul-half-first":  # graphcnn's export: Mul(Mul(x, 0.5), Add(1, Erf(x * c)))
        e = g.apply("erf", [g.apply("mul", [x, _c(g, 0.70710677)])])
        y = g.apply("mul", [g.apply("mul", [x, _c(g, 0.5)]), g.apply("add", [_c(g, 1.0), e])])
    else:  # Mul(0.5, Mul(Add(1, Erf(c * x)), x))
        e = g.apply("erf", [g.apply("mul", [_c(g, 0.70710677), x])])
        y = g.apply("mul", [_c(g, 0.5), g.apply("mul", [g.apply("add", [_c(g, 1.0), e]), x])])
    return g, y


@pytest.mark.parametrize("order", ["div", "mul-half-first", "half-outside"])
def test_rules_1_3_erf_gelu(order):
    g, y = _erf_gelu(order)
    g.set_outputs([y])
    out = check_pass(g, fuse_gelu)
    assert ops(out) == ["conv", "gelu"] and out.nodes[1].name == y.producer.name


@pytest.mark.parametrize("cube", ["mul", "pow"])
def test_rules_2_3_tanh_gelu(cube):
    """TorchScript's nn.GELU(approximate="tanh"), the cube as Mul(x, Mul(x, x)) or Pow(x, 3)."""
    g, x = conv_graph()
    if cube == "mul":
        x3 = g.apply("mul", [x, g.apply("mul", [x, x])])
    else:
        x3 = g.apply("pow", [x, _c(g, 3.0)])
    s = g.apply("add", [x, g.apply("mul", [_c(g, 0.044715), x3])])
    t = g.apply("tanh", [g.apply("mul", [_c(g, math.sqrt(2 / math.pi)), s])])
    y = g.apply("mul", [_c(g, 0.5), g.apply("mul", [x, g.apply("add", [_c(g, 1.0), t])])])
    g.set_outputs([y])
    out = check_pass(g, fuse_gelu)
    assert ops(out) == ["conv", "gelu_tanh"]


def test_noop_cases():
    g, y = _erf_gelu("div")
    g.set_outputs([y, y.producer.inputs[0]])  # an intermediate product is also an output
    check_pass(g, fuse_gelu, changed=False)
    g, x = conv_graph()  # 0.6 instead of 0.5
    e = g.apply("erf", [g.apply("div", [x, _c(g, 1.4142135)])])
    g.set_outputs([g.apply("mul", [g.apply("mul", [x, g.apply("add", [e, _c(g, 1.0)])]),
                                   _c(g, 0.6)])])
    check_pass(g, fuse_gelu, changed=False)
    g, x = conv_graph()  # a plain tanh
    g.set_outputs([g.apply("mul", [x, g.apply("tanh", [x])])])
    check_pass(g, fuse_gelu, changed=False)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_torch_exports_fuse_into_the_conv(approximate, exporter, tmp_path):
    """TorchScript spells GELU out (fused here); dynamo writes Gelu-20 (imported as one op)."""
    torch = pytest.importorskip("torch")
    net, shape = conv_then(torch.nn.GELU(approximate=approximate))
    graph, x, want = export(net, shape, exporter, tmp_path / "m.onnx")
    op = "gelu" if approximate == "none" else "gelu_tanh"
    opt = gc.optimize(graph, opt_level=2, target="llvm")
    assert [n.attrs["activation"] for n in opt.nodes if n.op == "conv"] == [op]
    assert not any(n.op in ("mul", "add", "erf", "tanh", "div") for n in opt.nodes)
    for target in ("reference", "llvm"):
        got = gc.compile(graph, target=target)(x)
        assert rel_l2(got, want) <= 1e-5, target
