"""The row-vectorised conv kernel (few output channels, planar input) against numpy, and its
choice for LeNet's first layer in a compiled network."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from graphcnn.backends.llvm import builder as irb
from graphcnn.backends.llvm.kernels.conv2d_rows import (
    RowConv2dPlan,
    blocked_transpose,
    row_chunks,
)
from jit import JitModule, new_module
from llvm_cases import record_plans
from llvmlite import ir
from test_fast_kernels import (
    ACTIVATIONS,
    Compiled,
    ConvCase,
    check_conv,
    conv_data,
    run_conv,
    splits_of,
)

import graphcnn as gc

VP = ctypes.c_void_p
I64 = ctypes.c_int64


def random_row_case(rng: np.random.Generator) -> ConvCase:
    vw = int(rng.choice([16, 8]))
    ob = int(rng.choice([b for b in (4, 8) if b <= vw]))
    while True:
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pads = tuple(int(p) for p in rng.integers(0, 4, size=4))
        h, w = int(rng.integers(1, 20)), int(rng.integers(vw, 5 * vw))
        oh = h + pads[0] + pads[2] - (k[0] - 1) * dil[0]
        ow = w + pads[1] + pads[3] - (k[1] - 1) * dil[1]
        if oh >= 1 and vw <= ow <= 8 * vw:
            break
    activation, params = ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]
    return ConvCase({"n": int(rng.integers(1, 4)), "c_in": int(rng.integers(1, 5)), "h": h,
                     "w": w, "c_out": int(rng.integers(1, ob + 1)), "kh": k[0], "kw": k[1],
                     "pads": pads, "dilation": dil, "vector_width": vw, "in_block": 1,
                     "out_block": ob, "activation": activation, "activation_params": params})


ROW_CASES = ([ConvCase({"n": 2, "c_in": 1, "h": 28, "w": 28, "c_out": 6, "kh": 5, "kw": 5,
                        "pads": (2, 2, 2, 2), "vector_width": 16, "in_block": 1,
                        "out_block": 8, "activation": "relu"}),            # LeNet-5's conv1
              ConvCase({"n": 1, "c_in": 3, "h": 17, "w": 33, "c_out": 8, "kh": 3, "kw": 3,
                        "pads": (1, 1, 1, 1), "vector_width": 16, "in_block": 1,
                        "out_block": 8, "activation": "sigmoid"})]         # 3 chunks, overlap
             + [random_row_case(np.random.default_rng(900 + i)) for i in range(24)])


def pooled_case(rng: np.random.Generator) -> ConvCase:
    """A random row conv with a fused 2x2 max pool: odd and even output sizes (floor mode)."""
    while True:
        case = random_row_case(rng)
        kw = case.kwargs
        oh = kw["h"] + kw["pads"][0] + kw["pads"][2] - (kw["kh"] - 1) * kw["dilation"][0]
        ow = kw["w"] + kw["pads"][1] + kw["pads"][3] - (kw["kw"] - 1) * kw["dilation"][1]
        if oh >= 2 and ow - ow % 2 >= kw["vector_width"]:
            return ConvCase({**kw, "pool": 2})


ROW_CASES += [ConvCase({**ROW_CASES[0].kwargs, "pool": 2}),              # LeNet-5's conv1 + pool
              ConvCase({**ROW_CASES[1].kwargs, "pool": 2, "h": 16, "w": 35})]  # odd rows, cols
ROW_CASES += [pooled_case(np.random.default_rng(950 + i)) for i in range(12)]
POOLED = [i for i, c in enumerate(ROW_CASES) if c.kwargs.get("pool")]


@pytest.fixture(scope="module")
def row_kernels() -> Compiled:
    return Compiled([RowConv2dPlan.create(**c.kwargs) for c in ROW_CASES], (VP,) * 5 + (I64, I64))


@pytest.mark.parametrize("index", range(len(ROW_CASES)))
def test_row_conv_matches_numpy(row_kernels: Compiled, index: int) -> None:
    check_conv(row_kernels, ROW_CASES, index)  # also: the padding channels are exact zeros


@pytest.mark.parametrize("index", [0, 1, 2, 5, POOLED[0], POOLED[1], POOLED[3]])
def test_row_conv_task_splits_bit_identical(row_kernels: Compiled, index: int) -> None:
    plan, case, fn = row_kernels.plans[index], ROW_CASES[index], row_kernels.functions[index]
    data = conv_data(plan, case, seed=11)
    whole = run_conv(fn, plan, case, *data)
    for splits in splits_of(plan.num_tasks, index):
        np.testing.assert_array_equal(run_conv(fn, plan, case, *data, splits=splits), whole)


def test_row_chunks_cover_the_row_once_or_overlap_at_the_end() -> None:
    assert row_chunks(32, 16) == [0, 16]
    assert row_chunks(28, 16) == [0, 12]
    assert row_chunks(40, 16) == [0, 16, 24]
    assert row_chunks(16, 16) == [0]


@pytest.mark.parametrize("channels,width", [(8, 16), (4, 16), (8, 8), (4, 8), (2, 4)])
def test_blocked_transpose_is_the_nchwc_order(channels: int, width: int) -> None:
    module = new_module("transpose")
    fn = irb.define_kernel(module, "t", 2, 0, ("x", "y"))
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    vectors = [irb.load(b, fn.args[0], c * width, width, f"v{c}") for c in range(channels)]
    for k, v in enumerate(blocked_transpose(b, vectors, width, "tr")):
        irb.store(b, v, fn.args[1], k * width, f"s{k}")
    b.ret_void()
    jit = JitModule(module)  # owns the code: keep it alive while calling
    f = jit.function("t", None, VP, VP)
    x = np.arange(channels * width, dtype=np.float32).reshape(channels, width)
    y = np.empty(channels * width, np.float32)
    f(x.ctypes.data_as(VP), y.ctypes.data_as(VP))
    np.testing.assert_array_equal(y, x.T.ravel())  # [pixel][channel]


@pytest.mark.parametrize("kwargs,match", [
    ({"stride": (2, 2)}, "stride 1"),
    ({"residual": True}, "residual"),
    ({"c_out": 9, "out_block": 16}, "out_block"),
    ({"w": 10}, "output width"),
    ({"in_block": 4}, "planar"),
])
def test_row_conv_rejects_what_it_does_not_take(kwargs, match) -> None:
    base = {"n": 1, "c_in": 1, "h": 28, "w": 28, "c_out": 6, "kh": 5, "kw": 5,
            "pads": (2, 2, 2, 2), "vector_width": 16, "out_block": 8}
    with pytest.raises(ValueError, match=match):
        RowConv2dPlan.create(**{**base, **kwargs})


@pytest.mark.parametrize("c_out,stride,size,uses_rows", [
    (6, 1, 28, True),      # LeNet-5: the row kernel
    (4, 1, 20, True),
    (6, 2, 28, False),     # strided: the NCHWc kernel
    (12, 1, 28, False),    # more than 8 channels: the NCHWc kernel
    (6, 1, 9, False),      # rows narrower than a vector
])
def test_first_layer_choice_and_numerics(c_out, stride, size, uses_rows, monkeypatch) -> None:
    plans = record_plans(monkeypatch, RowConv2dPlan)
    graph = gc.Sequential(gc.Conv2d(1, c_out, 5, stride=stride, padding=2, seed=5), gc.ReLU(),
                          gc.MaxPool2d(2), gc.Conv2d(c_out, 16, 3, seed=6)).build(
        (3, 1, size, size))
    x = np.random.default_rng(1).standard_normal((3, 1, size, size)).astype(np.float32)
    want = gc.compile(graph, target="reference")(x)
    got = gc.compile(graph, target="llvm", cache=False)(x)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5
    assert bool(plans) == uses_rows
