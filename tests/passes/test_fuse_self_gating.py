from __future__ import annotations

import numpy as np
import pytest
from graphcnn.passes.fuse_self_gating import fuse_hard_swish, fuse_silu
from pass_cases import check_pass, conv_graph, ops, rel_l2
from torch_exports import EXPORTERS, conv_then, export

import graphcnn as gc


@pytest.mark.parametrize("gate_first", [False, True])
def test_rule1_x_times_sigmoid_x_is_silu(gate_first):
    g, y = conv_graph()
    s = g.apply("sigmoid", [y])
    g.set_outputs([g.apply("mul", [s, y] if gate_first else [y, s], name="act")])
    out = check_pass(g, fuse_silu)
    assert ops(out) == ["conv", "silu"] and out.nodes[1].name == "act"


@pytest.mark.parametrize("gate_first", [False, True])
def test_rule2_x_times_hard_sigmoid_x_is_hard_swish(gate_first):
    g, y = conv_graph()
    s = g.apply("hard_sigmoid", [y], {"alpha": 1 / 6, "beta": 0.5})
    g.set_outputs([g.apply("mul", [s, y] if gate_first else [y, s])])
    out = check_pass(g, fuse_hard_swish)
    assert ops(out) == ["conv", "hard_swish"]


def test_noop_cases():
    g, y = conv_graph()
    s = g.apply("sigmoid", [y])
    g.set_outputs([g.apply("mul", [y, s]), s])  # the gate is also an output
    check_pass(g, fuse_silu, changed=False)
    g, y = conv_graph()
    z = g.apply("relu", [y])
    g.set_outputs([g.apply("mul", [z, g.apply("sigmoid", [y])])])  # sigmoid of another value
    check_pass(g, fuse_silu, changed=False)
    g, y = conv_graph()
    g.set_outputs([g.apply("mul", [y, g.apply("hard_sigmoid", [y])])])  # alpha 0.2: not 1/6
    check_pass(g, fuse_hard_swish, changed=False)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("module,op", [("SiLU", "silu"), ("Hardswish", "hard_swish")])
def test_torch_exports_fuse_into_the_conv(module, op, exporter, tmp_path):
    torch = pytest.importorskip("torch")
    net, shape = conv_then(getattr(torch.nn, module)())
    graph, x, want = export(net, shape, exporter, tmp_path / "m.onnx")
    opt = gc.optimize(graph, opt_level=2, target="llvm")
    assert [n.attrs["activation"] for n in opt.nodes if n.op == "conv"] == [op]
    assert not any(n.op in ("mul", "sigmoid", "hard_sigmoid") for n in opt.nodes)
    for target in ("reference", "llvm"):
        got = gc.compile(graph, target=target)(x)
        assert rel_l2(got, want) <= 1e-5, target
    assert np.isfinite(want).all()
