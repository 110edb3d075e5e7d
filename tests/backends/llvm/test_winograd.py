"""Winograd F(m x m, 3x3): transforms exact, fp32 accuracy vs float64 direct conv, plan checks."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from graphcnn.backends.llvm.kernels.conv2d_nchwc import from_nchwc, to_nchwc
from graphcnn.backends.llvm.kernels.winograd import (
    L2_BYTES,
    MIN_TASKS,
    POINTS_HALF,
    REG_TILES,
    WinogradConv2dNCHWcPlan,
    direct_conv_f64,
    rel_l2,
    transforms,
    winograd_conv_numpy,
)
from jit import JitModule, new_module


def _case(rng: np.random.Generator, n: int, ci: int, co: int, h: int, w: int):
    bound = 1.0 / np.sqrt(ci * 9)
    return (rng.standard_normal((n, ci, h, w)),
            rng.uniform(-bound, bound, (co, ci, 3, 3)))


@pytest.mark.parametrize("m,points", [(2, None), (4, None), (4, POINTS_HALF)])
def test_transforms_exact_in_float64(m, points):
    rng = np.random.default_rng(1)
    at, g, bt = transforms(m, 3, points)
    d, k = rng.standard_normal(m + 2), rng.standard_normal(3)
    want = np.array([d[i:i + 3] @ k for i in range(m)])
    np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("n,ci,co,h,w,pads", [
    (1, 3, 5, 7, 9, (1, 1, 1, 1)), (2, 17, 33, 11, 6, (0, 0, 0, 0)),
    (1, 8, 8, 5, 13, (2, 2, 2, 2)), (1, 20, 4, 9, 9, (0, 1, 2, 1)),
    (1, 512, 64, 7, 7, (1, 1, 1, 1))])
def test_fp32_accuracy(m, n, ci, co, h, w, pads):
    rng = np.random.default_rng(hash((m, n, ci, co, h, w)) % 2**32)
    x, wt = _case(rng, n, ci, co, h, w)
    want = direct_conv_f64(x, wt, pads)
    got = winograd_conv_numpy(x, wt, pads, m)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert rel_l2(got, want) <= 1e-4


def test_accuracy_check_can_fail():
    rng = np.random.default_rng(2)
    x, wt = _case(rng, 1, 4, 4, 6, 6)
    got = winograd_conv_numpy(x, wt, (1, 1, 1, 1), 4)
    got[0, 0, 5, 5] += 1.0          # a wrong border tile must be caught
    assert rel_l2(got, direct_conv_f64(x, wt, (1, 1, 1, 1))) > 1e-4


@pytest.mark.parametrize("bad", [{"kh": 5, "kw": 5}, {"stride": (2, 2)}, {"dilation": (2, 2)},
                                 {"groups": 2}, {"m": 3}])
def test_create_rejects(bad):
    kw = {"n": 1, "c_in": 8, "h": 8, "w": 8, "c_out": 8, "kh": 3, "kw": 3, "pads": (1, 1, 1, 1)} | bad
    with pytest.raises(ValueError):
        WinogradConv2dNCHWcPlan.create(**kw)


def test_plan_interface_and_packed_weights():
    rng = np.random.default_rng(3)
    plan = WinogradConv2dNCHWcPlan.create(n=2, c_in=20, h=9, w=10, c_out=18, kh=3, kw=3,
                                          pads=(1, 1, 1, 1), activation="relu", residual=True)
    assert (plan.in_block, plan.out_block, plan.oh, plan.ow) == (16, 16, 9, 10)
    # 18 tiles over the batch: 3 chunks of 8 tiles (the second spans both images), 2 groups
    assert plan.split == (8, 8, 2) and plan.num_tasks == 6
    _, wt = _case(rng, 1, 20, 18, 1, 1)
    bias = rng.standard_normal(18).astype(np.float32)
    packed, bias_packed = plan.pack_weights(wt, bias)
    assert packed.shape == (36, 2, 2, 16, 16) and packed.dtype == np.float32
    _, g, _ = transforms(4)
    u = np.einsum("ij,jk,lk->il", g, wt[5, 17], g)          # out ch 5, in ch 17
    np.testing.assert_allclose(packed[:, 0, 1, 1, 5].reshape(6, 6), u, rtol=1e-6, atol=1e-7)
    assert not packed[:, 1, :, :, 2:].any() and not packed[:, :, 1, 4:, :].any()
    np.testing.assert_array_equal(bias_packed[:18], bias)
    assert not bias_packed[18:].any()
    with pytest.raises(ValueError):
        plan.pack_weights(wt[:, :19], bias)


# ----------------------------------------------------------------------------------------------
# Emitted kernel (one JIT module for all cases)

VP = ctypes.c_void_p
KERNEL_CASES = [
    {"n": 1, "c_in": 3, "h": 7, "w": 9, "c_out": 5, "pads": (1, 1, 1, 1), "activation": "sigmoid"},
    {"n": 2, "c_in": 17, "h": 11, "w": 6, "c_out": 33, "pads": (0, 0, 0, 0),
     "activation": "relu", "residual": True},
    {"n": 1, "c_in": 8, "h": 5, "w": 13, "c_out": 20, "pads": (2, 2, 2, 2),
     "activation": "leaky_relu", "activation_params": (0.1,)},
    {"n": 2, "c_in": 20, "h": 9, "w": 10, "c_out": 18, "pads": (0, 1, 2, 1),
     "activation": "clip", "activation_params": (-0.5, 0.7), "residual": True},
    {"n": 1, "c_in": 40, "h": 23, "w": 19, "c_out": 16, "pads": (1, 1, 1, 1)},
    {"n": 1, "c_in": 512, "h": 7, "w": 7, "c_out": 24, "pads": (1, 1, 1, 1), "residual": True},
    {"n": 1, "c_in": 3, "h": 10, "w": 10, "c_out": 12, "pads": (1, 1, 1, 1), "in_block": 4,
     "out_block": 8, "activation": "sigmoid"},
    # 2 tiles per chunk (2-block register tile) in 3 groups of 2 of the 6 output blocks
    {"n": 1, "c_in": 24, "h": 6, "w": 8, "c_out": 96, "pads": (1, 1, 1, 1), "residual": True},
    # chunks spanning images: 4 tiles per image, 3 images, chunks of 8 tiles (the last short)
    {"n": 3, "c_in": 32, "h": 8, "w": 8, "c_out": 40, "pads": (1, 1, 1, 1), "residual": True,
     "activation": "relu"},
    {"n": 5, "c_in": 9, "h": 6, "w": 7, "c_out": 17, "pads": (1, 0, 1, 1)},
    # 2 chunks of 8 of the 12 tiles, each in 7 groups of one output block
    {"n": 1, "c_in": 40, "h": 16, "w": 12, "c_out": 100, "pads": (1, 1, 1, 1),
     "activation": "relu"},
]


@pytest.fixture(scope="module")
def kernels():
    plans = [WinogradConv2dNCHWcPlan.create(kh=3, kw=3, **kw) for kw in KERNEL_CASES]
    module = new_module("test_winograd")
    for i, plan in enumerate(plans):
        plan.emit(module, f"k{i}")
    jit = JitModule(module, WinogradConv2dNCHWcPlan.pipeline)
    fns = [jit.function(f"k{i}", None, *(VP,) * 5, ctypes.c_int64, ctypes.c_int64)
           for i in range(len(plans))]
    return plans, fns, jit


def _activate(y: np.ndarray, act: str, params: tuple[float, ...]) -> np.ndarray:
    if act == "relu":
        return np.maximum(y, 0)
    if act == "leaky_relu":
        return np.where(y > 0, y, params[0] * y)
    if act == "clip":
        return np.clip(y, *params)
    if act == "sigmoid":
        return 1 / (1 + np.exp(-y))
    return y


def _run(plan, fn, kw: dict, seed: int, splits):
    rng = np.random.default_rng(seed)
    x, wt = _case(rng, kw["n"], kw["c_in"], kw["c_out"], kw["h"], kw["w"])
    x, wt = x.astype(np.float32), wt.astype(np.float32)
    bias = rng.standard_normal(kw["c_out"]).astype(np.float32)
    res = rng.standard_normal((kw["n"], kw["c_out"], plan.oh, plan.ow)).astype(np.float32)
    wp, bp = plan.pack_weights(wt, bias)
    xi = to_nchwc(x, plan.in_block)
    ri = to_nchwc(res, plan.out_block) if plan.direct.residual else None
    out = np.full((kw["n"], plan.direct.ocb, plan.oh, plan.ow, plan.out_block), np.nan,
                  np.float32)
    for begin, end in splits:
        fn(xi.ctypes.data, wp.ctypes.data, bp.ctypes.data,
           None if ri is None else ri.ctypes.data, out.ctypes.data, begin, end)
    want = direct_conv_f64(x, wt, kw["pads"]) + bias[None, :, None, None]
    if plan.direct.residual:
        want = want + res
    want = _activate(want, kw.get("activation", "none"), kw.get("activation_params", ()))
    return out, want


@pytest.mark.parametrize("index", range(len(KERNEL_CASES)))
def test_kernel_matches_float64(kernels, index):
    plans, fns, _ = kernels
    plan, kw = plans[index], KERNEL_CASES[index]
    out, want = _run(plan, fns[index], kw, index, [(0, plan.num_tasks)])
    assert not np.isnan(out).any()
    assert rel_l2(from_nchwc(out, kw["c_out"]), want) <= 1e-4
    padding = np.moveaxis(out, -1, 2).reshape(out.shape[0], -1, plan.oh, plan.ow)
    assert not padding[:, kw["c_out"]:].any()


@pytest.mark.parametrize("index", range(len(KERNEL_CASES)))
def test_task_splits_bit_identical(kernels, index):
    plans, fns, _ = kernels
    plan, kw = plans[index], KERNEL_CASES[index]
    whole, _ = _run(plan, fns[index], kw, index, [(0, plan.num_tasks)])
    single, _ = _run(plan, fns[index], kw, index,
                     [(i, i + 1) for i in reversed(range(plan.num_tasks))])
    np.testing.assert_array_equal(whole, single)


def test_multi_task_chunks():
    plan = WinogradConv2dNCHWcPlan.create(n=2, c_in=512, h=28, w=28, c_out=16, kh=3, kw=3,
                                          pads=(1, 1, 1, 1))
    k, t, groups = plan.split
    assert plan.num_tasks > 2 and k % t == 0 and groups == 1
    assert k * 36 * (512 + 16) * 4 <= 1 << 20


@pytest.mark.parametrize("c, hw", [(64, 56), (128, 28), (256, 14), (512, 7), (64, 32), (256, 8)])
def test_one_image_gives_every_thread_work(c, hw):
    """At batch 1 a ResNet/VGG 3x3 layer is cut into >= MIN_TASKS tasks (chunks of tiles
    while the transformed weights fit L2, else equal groups of output blocks), computing
    fewer than one register tile of tiles past the image's end."""
    plan = WinogradConv2dNCHWcPlan.create(n=1, c_in=c, h=hw, w=hw, c_out=c, kh=3, kw=3,
                                          pads=(1, 1, 1, 1))
    k, t, groups = plan.split
    tiles = (-(-hw // 4)) ** 2
    # enough tasks, unless every output block (pair) already is its own group
    assert plan.num_tasks >= MIN_TASKS or groups * plan.reg_blocks == plan.direct.ocb
    assert k % t == 0
    last = tiles - (-(-tiles // k) - 1) * k      # the last chunk computes whole register tiles
    assert -(-last // t) * t - last < REG_TILES
    u_bytes = 36 * c * c * 4
    if u_bytes <= L2_BYTES and tiles >= MIN_TASKS * REG_TILES:
        assert groups == 1      # cheaper to cut chunks than to redo the input transform
    assert plan.direct.ocb % groups == 0
