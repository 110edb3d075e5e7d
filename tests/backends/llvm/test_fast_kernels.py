"""Numerical tests of the native conv / depthwise / GEMM kernels against numpy.

Each family's random cases are emitted into one LLVM module and JIT-compiled once (module
fixtures), then compared with a float64 numpy reference by relative L2 error. Random inputs,
odd shapes, borders, strides, dilation, channel tails, every activation, residual inputs.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from graphcnn.ops.conv import max_pool_windows

try:
    from graphcnn.backends.llvm import builder as irb
    from graphcnn.backends.llvm.kernels.conv2d_nchwc import (
        Conv2dNCHWcPlan,
        Tiling,
        from_nchwc,
        to_nchwc,
    )
    from graphcnn.backends.llvm.kernels.depthwise import DepthwiseConv2dNCHWcPlan
    from graphcnn.backends.llvm.kernels.gemm import GemmPlan
except ImportError:  # a source checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from backends.llvm import builder as irb
    from backends.llvm.kernels.conv2d_nchwc import (
        Conv2dNCHWcPlan,
        Tiling,
        from_nchwc,
        to_nchwc,
    )
    from backends.llvm.kernels.depthwise import DepthwiseConv2dNCHWcPlan
    from backends.llvm.kernels.gemm import GemmPlan
from jit import JitModule, new_module

VP = ctypes.c_void_p
I64 = ctypes.c_int64
ACTIVATIONS = [("none", ()), ("relu", ()), ("leaky_relu", (0.1,)), ("clip", (-0.5, 0.7)),
               ("clip", (0.2, 6.0)), ("sigmoid", ()), ("hard_sigmoid", (0.3, 0.4)),
               ("hard_swish", ())]


def ptr(array: np.ndarray | None) -> VP | None:
    return None if array is None else array.ctypes.data_as(VP)


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


# ----------------------------------------------------------------------------------------------
# numpy references (float64)


def activate(x: np.ndarray, activation: str, params: tuple[float, ...]) -> np.ndarray:
    if activation == "relu":
        return np.maximum(x, 0)
    if activation == "leaky_relu":
        return np.where(x > 0, x, x * params[0])
    if activation == "clip":
        return np.clip(x, params[0], params[1])
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if activation == "hard_sigmoid":
        return np.clip(params[0] * x + params[1], 0, 1)
    if activation == "hard_swish":
        return x * np.clip(x / 6 + 0.5, 0, 1)
    return x


def conv_reference(x, weight, bias, stride, pads, dilation, groups=1):
    """Direct conv by sliding windows: one einsum per kernel tap."""
    _, _, h, w = x.shape
    co, _, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    y = np.zeros((x.shape[0], co, oh, ow))
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dilation[0], j * dilation[1]
            patch = xp[:, :, r0:r0 + stride[0] * (oh - 1) + 1:stride[0],
                       c0:c0 + stride[1] * (ow - 1) + 1:stride[1]]
            cg, og = weight.shape[1], co // groups
            for g in range(groups):
                y[:, g * og:(g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch[:, g * cg:(g + 1) * cg], weight[g * og:(g + 1) * og, :, i, j])
    return y + bias[None, :, None, None]


# ----------------------------------------------------------------------------------------------
# Random cases


@dataclass
class ConvCase:
    kwargs: dict
    depthwise: bool = False


def random_conv_case(rng: np.random.Generator, depthwise: bool) -> ConvCase:
    while True:
        vw = int(rng.choice([16, 16, 8, 4]))
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
        pads = tuple(int(p) for p in rng.integers(0, 3, size=4))
        h, w = int(rng.integers(1, 17)), int(rng.integers(1, 40))
        if (h + pads[0] + pads[2] >= (k[0] - 1) * dil[0] + 1
                and w + pads[1] + pads[3] >= (k[1] - 1) * dil[1] + 1):
            break
    c_in = int(rng.integers(1, 40))
    c_out = c_in if depthwise else int(rng.integers(1, 40))
    activation, params = ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]
    kwargs = {"n": int(rng.integers(1, 3)), "c_in": c_in, "h": h, "w": w, "c_out": c_out,
              "kh": k[0], "kw": k[1], "stride": stride, "pads": pads, "dilation": dil,
              "vector_width": vw, "activation": activation, "activation_params": params,
              "residual": bool(rng.integers(2))}
    if depthwise:
        kwargs["out_block"] = kwargs["in_block"] = int(rng.choice([vw, vw // 2]))
    else:
        kwargs["in_block"] = int(rng.choice([vw, 3, 8, 5]))
        kwargs["out_block"] = int(rng.choice([vw, vw, vw // 2]))
    return ConvCase(kwargs, depthwise)


def conv_case(c_in: int, hw: int, c_out: int, k: int, **kwargs) -> dict:
    return {"n": 1, "c_in": c_in, "h": hw, "w": hw, "c_out": c_out, "kh": k, "kw": k, **kwargs}


PAD1 = (1, 1, 1, 1)
FIXED_CONV_CASES = [  # ResNet-like shapes (multi-row tiles, 1x1, stride 2, first layer)
    conv_case(64, 14, 64, 3, pads=PAD1, activation="relu"),
    conv_case(32, 7, 48, 3, pads=PAD1, residual=True),
    conv_case(48, 9, 32, 1, n=2),
    conv_case(32, 15, 32, 1, stride=(2, 2)),
    conv_case(3, 31, 16, 7, w=29, stride=(2, 2), pads=(3, 3, 3, 3), in_block=3),
    conv_case(20, 30, 20, 3, pads=PAD1, activation="sigmoid"),
]
N_RANDOM_CONV, N_RANDOM_GROUPED, N_RANDOM_DEPTHWISE, N_RANDOM_GEMM = 34, 12, 16, 22


def random_grouped_case(rng: np.random.Generator) -> ConvCase:
    """A dense case made grouped: groups divide both channel counts, blocks may straddle them."""
    kwargs = random_conv_case(rng, False).kwargs
    groups = int(rng.choice([2, 3, 4, 6]))
    kwargs["c_in"] = groups * int(rng.integers(1, 12))
    kwargs["c_out"] = groups * int(rng.integers(1, 12))
    return ConvCase({**kwargs, "groups": groups})


GROUPED_CONV_CASES = [  # ShuffleNet (g=3: blocks straddling groups), ResNeXt-like
    conv_case(240, 28, 60, 1, groups=3, activation="relu"),
    conv_case(60, 14, 240, 1, groups=3, residual=True, activation="relu"),
    conv_case(24, 28, 216, 1, groups=3, in_block=8),
    conv_case(64, 9, 64, 3, groups=8, pads=PAD1, stride=(2, 2)),
]
CONV_CASES = ([ConvCase(k) for k in FIXED_CONV_CASES]
              + [random_conv_case(np.random.default_rng(100 + i), False)
                 for i in range(N_RANDOM_CONV)]
              + [ConvCase(k) for k in GROUPED_CONV_CASES]
              + [random_grouped_case(np.random.default_rng(700 + i))
                 for i in range(N_RANDOM_GROUPED)])
DEPTHWISE_CASES = (
    [ConvCase(conv_case(32, 14, 32, 3, pads=PAD1, activation="clip",
                        activation_params=(0.0, 6.0)), True),
     ConvCase(conv_case(40, 15, 40, 5, stride=(2, 2), pads=(2, 2, 2, 2)), True)]
    + [random_conv_case(np.random.default_rng(300 + i), True) for i in range(N_RANDOM_DEPTHWISE)])


def random_gemm_case(rng: np.random.Generator) -> dict:
    m, n, k = (int(v) for v in rng.integers(1, 70, size=3))
    activation, params = ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]
    return {"m": m, "n": n, "k": k,
            "trans_a": bool(rng.integers(2)), "trans_b": bool(rng.integers(2)),
            "alpha": float(rng.choice([1.0, 0.5, -1.25])),
            "beta": float(rng.choice([1.0, 2.0, 0.0])),
            "has_c": bool(rng.integers(3)),
            "c_shape": [(n,), (1, n), (m, n), (m, 1), (), (1,)][int(rng.integers(6))],
            "activation": activation, "activation_params": params,
            "vector_width": int(rng.choice([16, 16, 8, 4]))}


GEMM_CASES = ([{"m": 1, "n": 1000, "k": 512, "has_c": True},
               {"m": 196, "n": 256, "k": 96, "has_c": True, "c_shape": (196, 256),
                "activation": "relu"},
               {"m": 16, "n": 100, "k": 300, "trans_b": True}]
              + [random_gemm_case(np.random.default_rng(500 + i)) for i in range(N_RANDOM_GEMM)])


# ----------------------------------------------------------------------------------------------
# Compilation: one JIT module per family


class Compiled:
    def __init__(self, plans: list, argtypes: tuple) -> None:
        module = new_module("test_fast_kernels")
        for i, plan in enumerate(plans):
            plan.emit(module, f"k{i}")
        self.plans = plans
        self.jit = JitModule(module)
        self.functions = [self.jit.function(f"k{i}", None, *argtypes) for i in range(len(plans))]


def conv_plan(case: ConvCase):
    cls = DepthwiseConv2dNCHWcPlan if case.depthwise else Conv2dNCHWcPlan
    return cls.create(**case.kwargs)


@pytest.fixture(scope="module")
def conv_kernels() -> Compiled:
    return Compiled([conv_plan(c) for c in CONV_CASES], (VP,) * 5 + (I64, I64))


@pytest.fixture(scope="module")
def depthwise_kernels() -> Compiled:
    return Compiled([conv_plan(c) for c in DEPTHWISE_CASES], (VP,) * 5 + (I64, I64))


@pytest.fixture(scope="module")
def gemm_kernels() -> Compiled:
    return Compiled([GemmPlan.create(**kw) for kw in GEMM_CASES], (VP,) * 4 + (I64, I64))


# ----------------------------------------------------------------------------------------------
# Running


def conv_data(plan, case: ConvCase, seed: int):
    rng = np.random.default_rng(seed)
    kw = case.kwargs
    x = rng.standard_normal((kw["n"], kw["c_in"], kw["h"], kw["w"])).astype(np.float32)
    wshape = (kw["c_out"], 1 if case.depthwise else kw["c_in"] // kw.get("groups", 1), kw["kh"],
              kw["kw"])
    weight = rng.standard_normal(wshape).astype(np.float32)
    bias = rng.standard_normal(kw["c_out"]).astype(np.float32)
    res = (rng.standard_normal((kw["n"], kw["c_out"], plan.oh, plan.ow)).astype(np.float32)
           if plan.residual else None)
    return x, weight, bias, res


def run_conv(fn, plan, case: ConvCase, x, weight, bias, res, splits=None) -> np.ndarray:
    w_packed, b_packed = plan.pack_weights(weight, bias)
    xi = to_nchwc(x, plan.in_block)
    ri = to_nchwc(res, plan.out_block) if res is not None else None
    ocb = -(-case.kwargs["c_out"] // plan.out_block)
    out = np.full((x.shape[0], ocb, plan.oh, plan.ow, plan.out_block), np.nan, np.float32)
    for begin, end in splits or [(0, plan.num_tasks)]:
        fn(ptr(xi), ptr(w_packed), ptr(b_packed), ptr(ri), ptr(out), begin, end)
    return out


def conv_expected(plan, case: ConvCase, x, weight, bias, res) -> np.ndarray:
    kw = case.kwargs
    y = conv_reference(x.astype(np.float64), weight.astype(np.float64), bias.astype(np.float64),
                       kw.get("stride", (1, 1)), kw.get("pads", (0, 0, 0, 0)),
                       kw.get("dilation", (1, 1)),
                       groups=kw["c_in"] if case.depthwise else kw.get("groups", 1))
    if res is not None:
        y = y + res
    y = activate(y, kw.get("activation", "none"), tuple(kw.get("activation_params", ())))
    return max_pool_windows(y, (kw["pool"],) * 2 if kw.get("pool") else ())  # a fused pool


def check_conv(kernels: Compiled, cases: list[ConvCase], index: int) -> None:
    plan, case = kernels.plans[index], cases[index]
    x, weight, bias, res = conv_data(plan, case, seed=index)
    out = run_conv(kernels.functions[index], plan, case, x, weight, bias, res)
    c_out = case.kwargs["c_out"]
    got = from_nchwc(out, c_out)
    assert np.isfinite(got).all()
    error = rel_l2(got, conv_expected(plan, case, x, weight, bias, res))
    assert error <= 1e-5, f"{case.kwargs} tiling={plan.tiling}: rel L2 {error:.2e}"
    blocked = out.transpose(0, 1, 4, 2, 3).reshape(out.shape[0], -1, plan.oh, plan.ow)
    assert (blocked[:, c_out:] == 0).all(), "padding channels of the output must be zero"


@pytest.mark.parametrize("index", range(len(CONV_CASES)))
def test_conv_matches_numpy(conv_kernels: Compiled, index: int) -> None:
    check_conv(conv_kernels, CONV_CASES, index)


@pytest.mark.parametrize("index", range(len(DEPTHWISE_CASES)))
def test_depthwise_matches_numpy(depthwise_kernels: Compiled, index: int) -> None:
    check_conv(depthwise_kernels, DEPTHWISE_CASES, index)


def gemm_data(kw: dict, seed: int):
    rng = np.random.default_rng(seed)
    m, n, k = kw["m"], kw["n"], kw["k"]
    a = rng.standard_normal((k, m) if kw.get("trans_a") else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if kw.get("trans_b") else (k, n)).astype(np.float32)
    c = (rng.standard_normal(kw.get("c_shape", (n,))).astype(np.float32)
         if kw.get("has_c") else None)
    return a, b, c


def run_gemm(fn, plan: GemmPlan, a, b, c, splits=None) -> np.ndarray:
    b_packed = plan.pack_b(b)
    y = np.full((plan.m, plan.n), np.nan, np.float32)
    c = np.ascontiguousarray(c) if c is not None else None
    for begin, end in splits or [(0, plan.num_tasks)]:
        fn(ptr(a), ptr(b_packed), ptr(c), ptr(y), begin, end)
    return y


@pytest.mark.parametrize("index", range(len(GEMM_CASES)))
def test_gemm_matches_numpy(gemm_kernels: Compiled, index: int) -> None:
    kw, plan = GEMM_CASES[index], gemm_kernels.plans[index]
    a, b, c = gemm_data(kw, seed=index)
    got = run_gemm(gemm_kernels.functions[index], plan, a, b, c)
    op_a = a.T if kw.get("trans_a") else a
    op_b = b.T if kw.get("trans_b") else b
    want = kw.get("alpha", 1.0) * (op_a.astype(np.float64) @ op_b.astype(np.float64))
    if c is not None:
        want = want + kw.get("beta", 1.0) * c.astype(np.float64)
    want = activate(want, kw.get("activation", "none"), tuple(kw.get("activation_params", ())))
    error = rel_l2(got, want)
    assert error <= 1e-5, f"{kw} tiling={plan.tiling}: rel L2 {error:.2e}"


# ----------------------------------------------------------------------------------------------
# Task splits: any partition of [0, num_tasks) gives bit-identical results


def splits_of(num_tasks: int, seed: int) -> list[list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    cuts = sorted(set(rng.integers(1, max(num_tasks, 2), size=3).tolist()) - {num_tasks})
    edges = [0, *cuts, num_tasks]
    return [[(t, t + 1) for t in range(num_tasks)][::-1],          # one by one, reversed
            [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]]


# conv 0, 10, 28, 44 and 50 take the spatial task order (10, 28, 44, 50: two images; 10, 28, 44
# with a residual; 44, 50 grouped), 1, 4 and 7 the channel order
@pytest.mark.parametrize("family,index", [("conv", 0), ("conv", 1), ("conv", 4), ("conv", 7),
                                          ("conv", 10), ("conv", 28), ("conv", 44),
                                          ("conv", 50), ("depthwise", 0), ("depthwise", 3)])
def test_conv_task_splits_bit_identical(family, index, conv_kernels, depthwise_kernels) -> None:
    kernels, cases = ((conv_kernels, CONV_CASES) if family == "conv"
                      else (depthwise_kernels, DEPTHWISE_CASES))
    plan, case, fn = kernels.plans[index], cases[index], kernels.functions[index]
    if family == "conv":
        assert plan.spatial == (index in (0, 10, 28, 44, 50)), "the cases above moved"
    data = conv_data(plan, case, seed=7)
    whole = run_conv(fn, plan, case, *data)
    for splits in splits_of(plan.num_tasks, index):
        np.testing.assert_array_equal(run_conv(fn, plan, case, *data, splits=splits), whole)


@pytest.mark.parametrize("index", [0, 1, 5])
def test_gemm_task_splits_bit_identical(gemm_kernels: Compiled, index: int) -> None:
    plan, fn = gemm_kernels.plans[index], gemm_kernels.functions[index]
    a, b, c = gemm_data(GEMM_CASES[index], seed=3)
    whole = run_gemm(fn, plan, a, b, c)
    for splits in splits_of(plan.num_tasks, index):
        np.testing.assert_array_equal(run_gemm(fn, plan, a, b, c, splits=splits), whole)


# ----------------------------------------------------------------------------------------------
# Plans, layouts and helpers


def test_nchwc_round_trip() -> None:
    x = np.random.default_rng(0).standard_normal((2, 19, 5, 7)).astype(np.float32)
    blocked = to_nchwc(x, 8)
    assert blocked.shape == (2, 3, 5, 7, 8)
    assert (blocked[:, 2, :, :, 3:] == 0).all()
    np.testing.assert_array_equal(blocked[:, 1, :, :, 2], x[:, 10])
    np.testing.assert_array_equal(from_nchwc(blocked, 19), x)


def test_tiling_rule_fills_registers() -> None:
    wide = Conv2dNCHWcPlan.create(n=1, c_in=64, h=56, w=56, c_out=64, kh=3, kw=3,
                                  pads=(1, 1, 1, 1))
    assert wide.tiling.ocn * max(wide.tiling.widths) == 28
    small = Conv2dNCHWcPlan.create(n=1, c_in=64, h=7, w=7, c_out=512, kh=3, kw=3,
                                   pads=(1, 1, 1, 1))
    assert max(small.tiling.heights) > 1, "7x7 maps should stack rows to fill the tile"
    forced = Conv2dNCHWcPlan.create(n=1, c_in=4, h=5, w=5, c_out=16, kh=3, kw=3,
                                    tiling=Tiling(1, (2, 1), (3,)))
    assert forced.num_tasks == 2


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="activation"):
        Conv2dNCHWcPlan.create(n=1, c_in=4, h=5, w=5, c_out=4, kh=3, kw=3, activation="no_such_act")
    with pytest.raises(ValueError, match="parameters"):
        Conv2dNCHWcPlan.create(n=1, c_in=4, h=5, w=5, c_out=4, kh=3, kw=3, activation="clip")
    with pytest.raises(ValueError, match="empty"):
        Conv2dNCHWcPlan.create(n=1, c_in=4, h=2, w=5, c_out=4, kh=3, kw=3)
    with pytest.raises(ValueError, match="pads >= 0"):
        Conv2dNCHWcPlan.create(n=1, c_in=4, h=5, w=5, c_out=4, kh=3, kw=3, pads=(0, -1, 0, 0))
    with pytest.raises(ValueError, match="channels"):
        Conv2dNCHWcPlan.create(n=1, c_in=0, h=5, w=5, c_out=4, kh=3, kw=3)
    with pytest.raises(ValueError, match="does not tile"):
        Conv2dNCHWcPlan.create(n=1, c_in=4, h=5, w=5, c_out=4, kh=3, kw=3,
                               tiling=Tiling(1, (1, 2), (3,)))
    with pytest.raises(ValueError, match="c_in == c_out"):
        DepthwiseConv2dNCHWcPlan.create(n=1, c_in=4, h=5, w=5, c_out=8, kh=3, kw=3)
    with pytest.raises(ValueError, match="broadcast"):
        GemmPlan.create(m=3, n=4, k=5, has_c=True, c_shape=(3, 5))
    plan = Conv2dNCHWcPlan.create(n=1, c_in=4, h=5, w=5, c_out=4, kh=3, kw=3)
    with pytest.raises(ValueError, match="weight shape"):
        plan.pack_weights(np.zeros((4, 4, 2, 2), np.float32), None)


def test_for_range_ir_text() -> None:
    module = ir.Module(name="t")
    fn = ir.Function(module, ir.FunctionType(irb.VOID, [irb.I64]), "f")
    fn.args[0].name = "n"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with irb.for_range(b, 0, fn.args[0], name="row"):
        pass
    b.ret_void()
    text = " ".join(str(module).split())
    assert ('row.header: %"row" = phi i64 [0, %"entry"], [%"row.next", %"row.body"] '
            '%"row.cond" = icmp slt i64 %"row", %"n" '
            'br i1 %"row.cond", label %"row.body", label %"row.end" '
            'row.body: %"row.next" = add i64 %"row", 1 br label %"row.header" '
            'row.end: ret void') in text
    llvm_module = llvm.parse_assembly(text)
    llvm_module.verify()


# 1x1 relu convs of different channel counts and map heights, one register-tile shape (and
# with a channel tail); different widths; a 3x3 with borders
SHARED_TILE_CASES = [ConvCase(conv_case(32, 14, 64, 1, activation="relu")),
                     ConvCase(conv_case(64, 14, 64, 1, h=9, activation="relu")),
                     ConvCase(conv_case(80, 14, 64, 1, n=2, h=5, activation="relu")),
                     ConvCase(conv_case(32, 13, 64, 1, activation="relu")),
                     ConvCase(conv_case(16, 14, 64, 3, pads=PAD1, activation="relu")),
                     ConvCase(conv_case(48, 14, 64, 3, h=6, pads=PAD1, activation="relu"))]


def test_plans_of_different_sizes_share_tile_kernels() -> None:
    """A tile kernel is keyed by its TileSpec, the sizes it reads at run time: plans whose tiles
    have equal specs call one function, and each still computes its own conv."""
    kernels = Compiled([conv_plan(c) for c in SHARED_TILE_CASES], (VP,) * 5 + (I64, I64))
    specs = [{p.tile_spec(key) for key in p.task_loop.tile_keys()} for p in kernels.plans]
    assert specs[0] == specs[1] == specs[2] != specs[3]  # 14 columns, 13 columns
    assert specs[4] == specs[5]
    module = new_module("shared")
    for i, plan in enumerate(kernels.plans):
        plan.emit(module, f"k{i}")
    tiles = [f.name for f in module.functions if f.name.startswith("nchwc.tile.")]
    assert sorted(tiles) == sorted({spec.name for group in specs for spec in group})
    assert len(tiles) < sum(len(group) for group in specs)
    for index in range(len(SHARED_TILE_CASES)):
        check_conv(kernels, SHARED_TILE_CASES, index)


def test_one_trip_loop_is_its_body() -> None:
    module = ir.Module(name="t")
    fn = ir.Function(module, ir.FunctionType(irb.VOID, [irb.F32P]), "f")
    fn.args[0].name = "p"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with irb.for_range(b, 3, 4, name="once") as i:
        irb.store(b, irb.splat(1.0, 4), fn.args[0], i, "st")
    b.ret_void()
    assert [bb.name for bb in fn.blocks] == ["entry"]  # no header, body or exit block
    assert 'getelementptr float, float* %"p", i64 3' in str(module)


def test_emitted_values_are_named() -> None:
    module = new_module("names")
    Conv2dNCHWcPlan.create(n=1, c_in=5, h=6, w=6, c_out=20, kh=3, kw=3, pads=(1, 1, 1, 1),
                           activation="sigmoid", residual=True).emit(module, "conv")
    Conv2dNCHWcPlan.create(n=1, c_in=5, h=3, w=3, c_out=20, kh=3, kw=3, pads=(1, 1, 1, 1),
                           activation="clip", activation_params=(-1, 1)).emit(module, "conv2")
    DepthwiseConv2dNCHWcPlan.create(n=1, c_in=5, h=6, w=6, c_out=5, kh=3, kw=3,
                                    pads=(1, 1, 1, 1), activation="leaky_relu",
                                    activation_params=(0.1,), residual=True).emit(module, "dw")
    GemmPlan.create(m=5, n=20, k=7, has_c=True, alpha=2, beta=3).emit(module, "gemm")
    GemmPlan.create(m=5, n=20, k=7, has_c=True, c_shape=(5, 1), trans_a=True).emit(module, "g2")
    text = str(module)
    anonymous = [line for line in text.splitlines() if line.strip().startswith('%".')]
    assert not anonymous, anonymous[:5]
    llvm.parse_assembly(text).verify()


def test_vexp_accuracy() -> None:
    module = new_module("exp")
    fn = irb.define_kernel(module, "vexp", 2, 0, ("x", "y"))
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with irb.for_range(b, 0, 64, name="i") as i:
        off = b.mul(i, irb.i64(16))
        x = irb.load(b, fn.args[0], off, 16, "x")
        irb.store(b, irb.vexp(b, x, "e"), fn.args[1], off, "y")
    b.ret_void()
    jit = JitModule(module)
    f = jit.function("vexp", None, VP, VP)
    x = np.linspace(-87, 88, 1024, dtype=np.float32)
    y = np.empty_like(x)
    f(ptr(x), ptr(y))
    want = np.exp(x.astype(np.float64))
    assert np.max(np.abs(y - want) / want) < 5e-7
