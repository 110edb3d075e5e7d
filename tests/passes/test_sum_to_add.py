from __future__ import annotations

import os

import onnx
from graphcnn.passes.sum_to_add import sum_to_add
from pass_cases import check_pass, conv_graph, ops

import graphcnn as gc


def test_rule1_two_input_sum_becomes_add():
    g, y = conv_graph(c_in=8, c_out=8, pads=(1, 1, 1, 1))
    g.set_outputs([g.apply("relu", [g.apply("sum", [y, g.inputs[0]], name="res")])])
    out = check_pass(g, sum_to_add)
    assert ops(out) == ["conv", "add", "relu"] and out.nodes[1].name == "res"
    assert list(out.nodes[1].inputs) == [out.nodes[0].outputs[0], out.inputs[0]]


def test_then_the_residual_fuses():
    g, y = conv_graph(c_in=8, c_out=8, pads=(1, 1, 1, 1))
    g.set_outputs([g.apply("relu", [g.apply("sum", [y, g.inputs[0]])])])
    opt = gc.optimize(g, opt_level=2)
    assert ops(opt) == ["conv"] and opt.nodes[0].attrs["residual"]
    assert opt.nodes[0].attrs["activation"] == "relu"


def test_noop_for_one_or_three_inputs():
    g, y = conv_graph(c_in=8, c_out=8, pads=(1, 1, 1, 1))
    g.set_outputs([g.apply("sum", [y]), g.apply("sum", [y, y, g.inputs[0]])])
    check_pass(g, sum_to_add, changed=False)


def test_light_resnet50_sums_become_fused_residual_convs():
    """The onnx wheel's light ResNet-50 writes its 16 residuals as Sum + Relu."""
    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        "light_resnet50.onnx")
    graph = gc.from_onnx(path)
    assert sum(n.op == "sum" for n in graph.nodes) == 16
    opt = gc.optimize(graph, opt_level=2)
    fused = [n for n in opt.nodes if n.op == "conv" and n.attrs["residual"]]
    assert len(fused) == 16 and all(n.attrs["activation"] == "relu" for n in fused)
    assert not any(n.op in ("sum", "add", "relu") for n in opt.nodes)
