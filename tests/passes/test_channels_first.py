"""channels-first: channels-last regions (transpose -> ops over the last axis -> transpose
back) rebuilt over the channels of the untransposed map; one test per rule, the no-op cases, a
ConvNeXt block as both of torch's exporters write it, numerics before and after."""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from graphcnn.passes.channels_first import channels_first
from onnx import TensorProto, helper, numpy_helper
from pass_cases import check_pass, ops

import graphcnn as gc
from graphcnn.ir import Graph

RNG = np.random.default_rng(11)


def _rand(*shape):
    return (RNG.standard_normal(shape) * 0.3).astype(np.float32)


def _mlp_graph(c: int = 20, hidden: int = 36, act: str = "relu", scale_first: bool = False,
               extra_use: bool = False) -> Graph:
    """x -> transpose(0,2,3,1) -> layer_norm -> matmul -> add -> act -> matmul -> add -> mul
    -> transpose(0,3,1,2), ConvNeXt's block MLP with its layer scale inside the region."""
    g = Graph("mlp")
    x = g.add_input("x", (1, c, 5, 7))
    t = g.apply("transpose", [x], {"perm": (0, 2, 3, 1)})
    v = g.apply("layer_norm", [t, g.add_constant(_rand(c) + 1, "g"), g.add_constant(_rand(c), "b")],
                {"axis": 3, "epsilon": 1e-6})
    v = g.apply("matmul", [v, g.add_constant(_rand(c, hidden), "w1")])
    v = g.apply("add", [g.add_constant(_rand(hidden), "b1"), v] if scale_first
                else [v, g.add_constant(_rand(hidden), "b1")])
    h = g.apply(act, [v])
    v = g.apply("matmul", [h, g.add_constant(_rand(hidden, c), "w2")])
    v = g.apply("add", [v, g.add_constant(_rand(1, 1, c), "b2")])
    v = g.apply("mul", [v, g.add_constant(np.float32(0.5), "half")])
    y = g.apply("transpose", [v], {"perm": (0, 3, 1, 2)})
    g.set_outputs([y, h] if extra_use else [y])
    return g


@pytest.mark.parametrize("scale_first", [False, True])
@pytest.mark.parametrize("act", ["relu", "sigmoid", "hard_swish"])
def test_rules_2_to_5_the_block_mlp_becomes_1x1_convs(act, scale_first):
    out = check_pass(_mlp_graph(act=act, scale_first=scale_first), channels_first)
    assert "transpose" not in ops(out) and "matmul" not in ops(out)
    assert ops(out) == ["channel_norm", "conv", "add", act, "conv", "add", "mul"]


def test_the_block_mlp_fuses_into_conv_epilogues_and_runs_blocked():
    graph = _mlp_graph()
    opt = gc.optimize(graph, opt_level=2, target="llvm")
    assert [n.op for n in opt.nodes if n.op in ("conv", "add", "relu", "matmul")] == \
        ["conv", "conv"], str(opt)
    x = _rand(1, 20, 5, 7)
    want = interpret(graph, [x])[0]
    got = gc.compile(graph, target="llvm")(x)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5


def test_rule1_noop_when_a_region_value_is_read_elsewhere():
    check_pass(_mlp_graph(extra_use=True), channels_first, changed=False)


def test_rule1_noop_without_the_closing_transpose():
    g = Graph("open")
    x = g.add_input("x", (1, 4, 3, 3))
    t = g.apply("transpose", [x], {"perm": (0, 2, 3, 1)})
    g.set_outputs([g.apply("relu", [t])])
    check_pass(g, channels_first, changed=False)


def test_rule4_noop_for_a_constant_that_varies_along_the_spatial_axes():
    g = Graph("spatial")
    x = g.add_input("x", (1, 4, 3, 5))
    t = g.apply("transpose", [x], {"perm": (0, 2, 3, 1)})
    v = g.apply("add", [t, g.add_constant(_rand(5, 4), "c")])
    g.set_outputs([g.apply("transpose", [v], {"perm": (0, 3, 1, 2)})])
    check_pass(g, channels_first, changed=False)


def test_rank3_region_becomes_1d_convs():
    g = Graph("seq")
    x = g.add_input("x", (2, 6, 9))
    t = g.apply("transpose", [x], {"perm": (0, 2, 1)})
    v = g.apply("matmul", [t, g.add_constant(_rand(6, 10), "w")])
    v = g.apply("relu", [g.apply("add", [v, g.add_constant(_rand(10), "b")])])
    g.set_outputs([g.apply("transpose", [v], {"perm": (0, 2, 1)})])
    out = check_pass(g, channels_first)
    assert ops(out) == ["conv", "add", "relu"]


class _Block:
    """ConvNeXt's block as torchvision writes it, at a width whose blocks have padding lanes."""

    @staticmethod
    def module(act: str):
        import torch
        from torch import nn

        class Block(nn.Module):
            def __init__(self, c=20):
                super().__init__()
                self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
                self.norm = nn.LayerNorm(c, eps=1e-6)
                self.pw1, self.pw2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
                self.act = {"relu": nn.ReLU, "hardswish": nn.Hardswish}[act]()
                self.gamma = nn.Parameter(torch.rand(c, 1, 1))

            def forward(self, x):
                y = self.dw(x).permute(0, 2, 3, 1)
                y = self.pw2(self.act(self.pw1(self.norm(y)))).permute(0, 3, 1, 2)
                return x + self.gamma * y
        return Block().eval()


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("act", ["relu", "hardswish"])
def test_a_convnext_block_from_either_exporter_runs_blocked(tmp_path, exporter, act):
    torch = pytest.importorskip("torch", reason="torch is not installed (the models extra)")
    model, x = _Block.module(act), torch.randn(1, 20, 10, 10)
    path = tmp_path / "block.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=exporter == "dynamo",
                          **({} if exporter == "dynamo" else {"opset_version": 17}))
    graph = gc.from_onnx(str(path))
    opt = gc.optimize(graph, opt_level=2, target="llvm")
    names = ops(opt)
    assert "transpose" not in names and "matmul" not in names, names
    assert names.count("to_blocked") == 1 and names.count("from_blocked") == 1, names
    with torch.no_grad():
        want = model(x).numpy()
    got = gc.compile(graph, target="llvm")(x.numpy())
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5


def _convnext_norm_model() -> bytes:
    """conv -> Transpose(0,2,3,1) -> LayerNormalization(axis=-1) -> Transpose(0,3,1,2) -> conv,
    as both exporters write torchvision ConvNeXt's LayerNorm2d (20 channels: the last block of
    16 has padding lanes)."""
    rng = np.random.default_rng(2)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
    inits = [init("w1", 20, 3, 3, 3), init("b1", 20), init("g", 20), init("beta", 20),
             init("w2", 8, 20, 1, 1), init("b2", 8)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c1"], ["t1"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t1", "g", "beta"], ["ln"], axis=-1,
                              epsilon=1e-6),
             helper.make_node("Transpose", ["ln"], ["t2"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t2", "w2", "b2"], ["y"])]
    g = helper.make_graph(nodes, "convnext_norm", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 9, 11])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 8, 9, 11])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_rule2_channels_last_layer_norm_is_a_channel_norm():
    graph = gc.from_onnx(_convnext_norm_model())
    out = check_pass(graph, channels_first)
    assert ops(out) == ["conv", "channel_norm", "conv"]


@pytest.mark.parametrize("opt_level", [0, 1, 2, 3])
def test_convnext_norm_runs_blocked_between_convs(opt_level):
    graph = gc.from_onnx(_convnext_norm_model())
    if opt_level >= 2:
        opt = gc.optimize(graph, opt_level=opt_level, target="llvm")
        names = ops(opt)
        norm = next(n for n in opt.nodes if n.op == "channel_norm")
        assert norm.attrs["layout"] == "NCHWc"
        convs = [i for i, n in enumerate(opt.nodes) if n.op == "conv"]
        assert not {"to_blocked", "from_blocked"} & set(names[convs[0]:convs[-1]]), names
    x = np.random.default_rng(3).standard_normal((1, 3, 9, 11)).astype(np.float32)
    want = interpret(graph, [x])[0]
    for target in ("llvm", "onnxruntime"):
        got = gc.compile(graph, target=target, opt_level=opt_level)(x)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5


def test_the_layer_scale_and_residual_fold_into_the_last_conv():
    """ConvNeXt's x + gamma * block(x): after the region, the (C,1,1) layer scale folds into the
    second 1x1 conv's weights and bias (fuse-conv-activation rule 1b), and the residual add then
    fuses into it."""
    pytest.importorskip("torch", reason="torch is not installed (the models extra)")
    import torch
    model, x = _Block.module("relu"), torch.randn(1, 20, 10, 10)
    buf = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17)
    graph = gc.from_onnx(buf.getvalue())
    opt = gc.optimize(graph, opt_level=2, target="llvm")
    assert [n.op for n in opt.nodes] == ["to_blocked", "conv", "channel_norm", "conv", "conv",
                                         "from_blocked"], str(opt)
    assert opt.nodes[4].attrs["residual"]
    with torch.no_grad():
        want = model(x).numpy()
    got = gc.compile(graph, target="llvm")(x.numpy())
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
