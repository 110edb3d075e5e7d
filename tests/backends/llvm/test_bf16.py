"""precision="bf16": convs on bf16 activations and weights with float32 sums (AVX512-BF16).

Two oracles: the reference interpreter on the rewritten graph (the casts and bf16-rounded
weights say exactly what the kernel computes, so only the order of float32 sums differs:
tight), and the float32 reference on the original graph (the bf16 error itself: loose)."""
from __future__ import annotations

import json
import subprocess
import warnings

import ml_dtypes
import numpy as np
import pytest
from graphcnn.backends.llvm.aot import find_cc
from graphcnn.backends.llvm.codegen import has_bf16
from graphcnn.backends.reference import interpret
from graphcnn.passes.precision import round_bf16
from llvm_cases import rel_l2

import graphcnn as gc
from graphcnn import models
from graphcnn.errors import InvalidOptionError, PrecisionWarning

needs_bf16 = pytest.mark.skipif(not has_bf16("host"), reason="the CPU has no AVX512-BF16")

# (c_in, c_out, kernel, stride, pad, dilation, size, batch)
CONVS = [
    (16, 32, 3, 1, 1, 1, 14, 1),    # 3x3 same, one input block
    (64, 64, 1, 1, 0, 1, 28, 1),    # 1x1: a GEMM over pixels
    (32, 48, 7, 2, 3, 1, 23, 1),    # 7x7 stride 2, odd map
    (33, 20, 3, 2, 1, 1, 17, 2),    # channels that leave a part block (odd pair), batch 2
    (17, 16, 5, 1, 2, 2, 15, 1),    # dilation 2, 5x5
    (256, 512, 1, 1, 0, 1, 7, 1),   # the deep 1x1 of a ResNet stage 5
    (48, 40, (3, 1), (1, 2), (1, 0), 1, 12, 1),  # non-square kernel and strides
]


def conv_net(c_in, c_out, k, s, p, d, size, batch, act="relu", residual=False) -> gc.Graph:
    """conv -> (+ a second conv of the same input) -> activation, seeded weights."""
    gb = gc.GraphBuilder("bf16_conv")
    x = gb.input("x", (batch, c_in, size, size))
    y = gc.Conv2d(c_in, c_out, k, stride=s, padding=p, dilation=d, seed=c_in)(x)
    if residual:
        y = y + gc.Conv2d(c_in, c_out, k, stride=s, padding=p, dilation=d, seed=c_in + 1)(x)
    if act != "none":
        y = {"relu": gc.ReLU, "silu": gc.SiLU}[act]()(y)
    return gb.build(y)


def random_input(graph: gc.Graph, seed: int = 0) -> np.ndarray:
    shape = graph.inputs[0].type.shape
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def families(cm) -> list[str]:
    return [cm.graph.annotations.get(n.name, {}).get("kernel")
            for n in cm.graph.nodes if n.op == "conv"]


def bf16_checked(graph: gc.Graph, x: np.ndarray, family: str | None = "direct_bf16"):
    """The bf16 build of `graph`, its output checked against both oracles (and that a conv
    ran on `family`)."""
    cm = gc.compile(graph, target="llvm", precision="bf16", cache=False)
    if family is not None:
        assert family in families(cm)
    got = cm(x)
    assert rel_l2(got, interpret(cm.graph, [x])[0]) <= 1e-5
    assert rel_l2(got, interpret(graph, [x])[0]) <= 1e-2
    return cm


@needs_bf16
@pytest.mark.parametrize("case", CONVS, ids=[str(c) for c in CONVS])
def test_conv_matches_both_oracles(case):
    graph = conv_net(*case)
    x = random_input(graph)
    bf16_checked(graph, x)


@needs_bf16
@pytest.mark.parametrize("act,residual", [("none", False), ("silu", True), ("relu", True)])
def test_epilogues_stay_float32(act, residual):
    graph = conv_net(24, 40, 3, 1, 1, 1, 10, 1, act=act, residual=residual)
    x = random_input(graph, 1)
    bf16_checked(graph, x)


@needs_bf16
def test_the_rewrite_casts_each_value_once_and_rounds_the_weights():
    graph = conv_net(32, 32, 3, 1, 1, 1, 8, 1, residual=True)  # two convs read x
    opt = gc.compile(graph, target="llvm", precision="bf16", cache=False).graph
    casts = [n for n in opt.nodes if n.op == "cast"]
    assert len(casts) == 1 and casts[0].attrs["to"] == "bfloat16"
    convs = [n for n in opt.nodes if n.op == "conv"]
    assert len(convs) == 2
    for conv in convs:
        assert conv.inputs[0] is casts[0].outputs[0]
        assert conv.inputs[0].type.dtype == "bfloat16" and conv.outputs[0].type.dtype == "float32"
        w = conv.inputs[1].data
        assert np.array_equal(round_bf16(w), w)
        assert not np.array_equal(w, w.astype(np.float64).astype(np.float32) * 0)  # not zeros
    fp32 = gc.compile(graph, target="llvm", cache=False).graph
    assert not any(n.op == "cast" for n in fp32.nodes)
    assert "direct_bf16" not in [fp32.annotations.get(n.name, {}).get("kernel")
                                 for n in fp32.nodes]


def test_bf16_values_are_nearest_even():
    x = np.array([1.0, 1.00390625, 1.01171875, -3.0e-3, 65504.0], np.float32)
    want = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    assert np.array_equal(round_bf16(x), want)
    assert round_bf16(np.float32(1.00390625)) == 1.0  # the tie goes to the even mantissa


def test_a_cpu_without_bf16_compiles_float32_with_a_warning():
    graph = conv_net(16, 16, 3, 1, 1, 1, 8, 1)
    x = random_input(graph)
    with pytest.warns(PrecisionWarning, match="AVX512-BF16"):
        cm = gc.compile(graph, target="llvm", precision="bf16", cpu="x86-64-v4", cache=False)
    assert "direct_bf16" not in families(cm)
    assert rel_l2(cm(x), interpret(graph, [x])[0]) <= 1e-5


def test_precision_is_checked():
    graph = conv_net(16, 16, 3, 1, 1, 1, 8, 1)
    with pytest.raises(InvalidOptionError, match="precision"):
        gc.compile(graph, target="llvm", precision="int4")
    with pytest.raises(InvalidOptionError, match="llvm target"):
        gc.compile(graph, target="reference", precision="bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.compile(graph, target="reference", precision="fp32")  # the default is every target's


@needs_bf16
def test_a_resnet_in_bf16():
    graph = models.resnet18(batch=2, width=0.25, size=64)
    x = random_input(graph, 2)
    cm = gc.compile(graph, target="llvm", precision="bf16", cache=False)
    assert families(cm).count("direct_bf16") >= 10
    got = cm(x)
    # layer after layer, a float32 difference of an ulp may round an activation to the next
    # bf16 value (2^-8 apart) in one oracle and not the other: deep nets get the loose bound
    assert rel_l2(got, interpret(graph, [x])[0]) <= 1e-2
    single = gc.compile(graph, target="llvm", precision="bf16", cache=False, threads=1)
    assert np.array_equal(single(x), got)  # any thread count, the same sums


@needs_bf16
def test_cache_save_and_profile_keep_the_precision(tmp_path):
    graph = conv_net(32, 48, 3, 1, 1, 1, 12, 1)
    x = random_input(graph)
    first = gc.compile(graph, target="llvm", precision="bf16")
    again = gc.compile(graph, target="llvm", precision="bf16")
    fp32 = gc.compile(graph, target="llvm")
    assert again.from_cache and np.array_equal(again(x), first(x))
    assert rel_l2(fp32(x), interpret(graph, [x])[0]) <= 1e-5  # not the bf16 entry
    assert not np.array_equal(fp32(x), first(x))
    first.save(tmp_path / "m.gcm")
    assert np.array_equal(gc.load(tmp_path / "m.gcm")(x), first(x))
    profile = first.profile(x, runs=2)
    assert any(row["node"] == n.name for n in first.graph.nodes if n.op == "conv"
               for row in profile)


@needs_bf16
@pytest.mark.skipif(find_cc() is None, reason="no C compiler (cc) to link the test program")
def test_an_aot_library_in_bf16(tmp_path):
    from test_aot import PROGRAM

    graph = conv_net(32, 32, 3, 1, 1, 1, 12, 1, residual=True)
    gc.compile(graph, target="llvm", precision="bf16").export_library(tmp_path / "libnet.so")
    cc = find_cc()
    (tmp_path / "main.c").write_text(PROGRAM)
    subprocess.run([cc, "-O1", "-o", str(tmp_path / "main"), str(tmp_path / "main.c"),
                    f"-I{tmp_path}", f"-L{tmp_path}", "-lnet", f"-Wl,-rpath,{tmp_path}"],
                   check=True)
    x = random_input(graph, 3)
    x.tofile(tmp_path / "x.bin")
    subprocess.run([str(tmp_path / "main"), str(tmp_path / "x.bin"), str(tmp_path / "y.bin"),
                    "2"], check=True, timeout=60)
    y = np.fromfile(tmp_path / "y.bin", dtype=np.float32).reshape(1, 32, 12, 12)
    opt = gc.compile(graph, target="llvm", precision="bf16").graph
    assert rel_l2(y, interpret(opt, [x])[0]) <= 1e-5
    assert rel_l2(y, interpret(graph, [x])[0]) <= 1e-2


def classifier() -> gc.Graph:
    return gc.Sequential(
        gc.Conv2d(16, 32, 3, padding=1, seed=4), gc.ReLU(),
        gc.Conv2d(32, 32, 1, seed=5), gc.ReLU(), gc.GlobalAvgPool2d(), gc.Flatten(),
        gc.Dense(32, 10, seed=6),
    ).build((2, 16, 12, 12))


@needs_bf16
def test_cli_bench_reports_the_agreement_with_float32(tmp_path, capsys):
    from graphcnn.cli import main

    path = tmp_path / "net.onnx"
    gc.export_onnx(classifier(), str(path))
    assert main(["bench", str(path), "--precision", "bf16", "--samples", "8", "--runs", "3",
                 "--no-profile", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == "bf16"
    agreement = report["agreement"]
    assert agreement["samples"] == 8 and 0 < agreement["rel_l2"] <= 1e-2
    assert 0.5 <= agreement["top1"] <= agreement["top5"] <= 1.0
    assert main(["run", str(path), "--precision", "bf16", "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)["outputs"][0]
    assert out["shape"] == [2, 10]


def chain(batch: int = 1) -> gc.Graph:
    """stem conv (3 channels) -> 1x1 -> 3x3 -> 1x1 + residual: a bottleneck's chain."""
    gb = gc.GraphBuilder("bf16_chain")
    x = gb.input("x", (batch, 3, 20, 20))
    stem = gc.ReLU()(gc.Conv2d(3, 32, 3, padding=1, seed=1)(x))
    a = gc.ReLU()(gc.Conv2d(32, 16, 1, seed=2)(stem))
    b = gc.ReLU()(gc.Conv2d(16, 16, 3, padding=1, seed=3)(a))
    c = gc.Conv2d(16, 32, 1, seed=4)(b)
    return gb.build(gc.ReLU()(c + stem))


@needs_bf16
@pytest.mark.parametrize("batch", [1, 3])
def test_convs_feeding_only_bf16_convs_store_bf16(batch):
    graph = chain(batch)
    x = random_input(graph, 4)
    opt = bf16_checked(graph, x).graph
    stored = [n for n in opt.nodes if n.op == "conv" and n.attrs["out_dtype"] == "bfloat16"]
    # the stem feeds the residual too (float32); the 1x1 and the 3x3 feed one bf16 conv each
    assert len(stored) == 2
    for n in stored:
        assert n.outputs[0].type.dtype == "bfloat16"
        assert all(user.op == "conv" for user in n.outputs[0].users())
    # the image (blocked by 4 for the stem, Rule 0) and the stem's output are cast
    casts = [n for n in opt.nodes if n.op == "cast"]
    assert [c.inputs[0].producer.op for c in casts] == ["to_blocked", "conv"]
    assert casts[0].inputs[0].type.shape[-1] == 4


@needs_bf16
@pytest.mark.parametrize("batch,k,n", [(1, 512, 1000), (3, 64, 20), (1, 4096, 512),
                                       (16, 1000, 37)])
def test_dense_layers_in_bf16(batch, k, n):
    graph = gc.Sequential(gc.Dense(k, n, seed=k), gc.ReLU(), gc.Dense(n, 9, seed=n),
                          gc.Softmax()).build((batch, k))
    x = random_input(graph, 5)
    cm = bf16_checked(graph, x, family=None)
    dense = [cm.graph.annotations.get(nd.name, {}).get("kernel")
             for nd in cm.graph.nodes if nd.op == "gemm"]
    assert dense == ["gemm_bf16", "gemm_bf16" if n % 2 == 0 else "gemm"]  # an odd k: float32


@needs_bf16
def test_a_squeeze_excitation_with_a_narrow_bottleneck():
    """SE's 1x1 convs on pooled features: 4 squeeze channels (an output block of 4 that can
    not store bf16) between bf16 convs; sigmoid gates the 32-channel map."""
    gb = gc.GraphBuilder("se")
    x = gb.input("x", (1, 16, 14, 14))
    y = gc.ReLU()(gc.Conv2d(16, 32, 3, padding=1, seed=1)(x))
    s = gc.GlobalAvgPool2d()(y)
    s = gc.ReLU()(gc.Conv2d(32, 4, 1, seed=2)(s))
    s = gc.Sigmoid()(gc.Conv2d(4, 32, 1, seed=3)(s))
    graph = gb.build(gc.Conv2d(32, 16, 1, seed=4)(y * s))
    xs = random_input(graph, 6)
    bf16_checked(graph, xs)


@needs_bf16
@pytest.mark.parametrize("groups", [32, 8, 2])  # depthwise, lanes of 4 channels, grouped
def test_depthwise_and_grouped_convs_store_bf16_for_the_next_conv(groups):
    gb = gc.GraphBuilder("dw")
    x = gb.input("x", (1, 16, 15, 15))
    y = gc.ReLU()(gc.Conv2d(16, 32, 1, seed=1)(x))
    y = gc.ReLU()(gc.Conv2d(32, 32, 3, padding=1, groups=groups, seed=2)(y))
    graph = gb.build(gc.Conv2d(32, 24, 1, seed=3)(y))
    xs = random_input(graph, 7)
    cm = bf16_checked(graph, xs)
    convs = [n for n in cm.graph.nodes if n.op == "conv"]
    # the first conv feeds the float32 depthwise/grouped kernel; that one feeds a bf16 conv
    assert [n.attrs["out_dtype"] for n in convs] == ["", "bfloat16", ""]
    assert not any(n.op == "cast" and n.inputs[0].producer is not None
                   and n.inputs[0].producer.op == "conv" for n in cm.graph.nodes)


@needs_bf16
@pytest.mark.parametrize("batch", [1, 3])
def test_winograd_f2_runs_its_gemm_in_bf16(batch):
    """3x3 convs on 8x8 maps with 64 channels take F(2x2, 3x3); in bf16 its transformed input
    and weights are bf16 (rounded in the transformed domain: the float32 oracle only)."""
    gb = gc.GraphBuilder("f2")
    x = gb.input("x", (batch, 64, 8, 8))
    y = gc.ReLU()(gc.Conv2d(64, 64, 3, padding=1, seed=1)(x))
    graph = gb.build(gc.Conv2d(64, 64, 3, padding=1, seed=2)(y))
    xs = random_input(graph, 8)
    cm = gc.compile(graph, target="llvm", precision="bf16", cache=False)
    assert families(cm) == ["winograd_f2_bf16"] * 2
    assert rel_l2(cm(xs), interpret(graph, [xs])[0]) <= 1e-2
    fp32 = gc.compile(graph, target="llvm", cache=False)
    assert families(fp32) == ["winograd_f2"] * 2


@needs_bf16
@pytest.mark.parametrize("shape", [(1, 256), (2, 5, 128)])
def test_a_matmul_with_constant_weights_in_bf16(shape):
    """How the dynamo exporter writes some linear layers: MatMul by a constant (k, n)."""
    gb = gc.GraphBuilder("mm")
    x = gb.input("x", shape)
    w = np.random.default_rng(9).standard_normal((shape[-1], 48)).astype(np.float32) / 16
    graph = gb.build(gb.op("matmul", [x], params={"w": w}))
    xs = np.random.default_rng(10).standard_normal(shape).astype(np.float32)
    cm = bf16_checked(graph, xs, family=None)
    assert [cm.graph.annotations.get(n.name, {}).get("kernel")
            for n in cm.graph.nodes if n.op == "matmul"] == ["gemm_bf16"]
