"""Single-thread effective GFLOP/s of the Winograd 3x3 conv vs the direct NCHWc conv.

    python benchmarks/bench_winograd.py            # every layer
    python benchmarks/bench_winograd.py --quick    # fewer repetitions

Effective GFLOP/s = direct-conv flop count (2*N*Cout*OH*OW*Cin*9) / time, for both kernels.
Both run in one thread on the same NCHWc input, weights packed beforehand; best of the
median of rounds (~0.2 s each) is reported. pad 1, bias, relu epilogue, N = 1.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from graphcnn.backends.llvm.codegen import plan_pipeline
from graphcnn.backends.llvm.kernels.conv2d_nchwc import Conv2dNCHWcPlan, to_nchwc
from graphcnn.backends.llvm.kernels.winograd import WinogradConv2dNCHWcPlan

# the kernel tests' JIT (tests/backends/llvm/jit.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "backends" / "llvm"))
from jit import JitModule, new_module

LAYERS = [("56x56x64->64", 56, 64), ("28x28x128->128", 28, 128), ("14x14x256->256", 14, 256),
          ("7x7x512->512", 7, 512), ("224x224x64->64", 224, 64),
          ("112x112x128->128", 112, 128), ("32x32x64->64 (CIFAR)", 32, 64)]
VP = ctypes.c_void_p


def time_kernel(fn, args, rounds: int) -> float:
    fn(*args)
    start = time.perf_counter()
    fn(*args)
    once = max(time.perf_counter() - start, 1e-6)
    reps = max(1, int(0.2 / once))
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            fn(*args)
        samples.append((time.perf_counter() - start) / reps)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    print(f"{'layer':24s} {'direct GF/s':>12s} {'winograd GF/s':>14s} {'ratio':>7s}")
    for label, hw, c in LAYERS:
        kw = {"n": 1, "c_in": c, "h": hw, "w": hw, "c_out": c, "kh": 3, "kw": 3,
              "pads": (1, 1, 1, 1), "activation": "relu"}
        plans = [Conv2dNCHWcPlan.create(**kw), WinogradConv2dNCHWcPlan.create(**kw)]
        jits = []  # each plan compiled with its own pipeline, as in a model
        for i, plan in enumerate(plans):
            module = new_module(f"bench_winograd{i}")
            plan.emit(module, f"k{i}")
            jits.append(JitModule(module, plan_pipeline(plan)))
        x = to_nchwc(rng.standard_normal((1, c, hw, hw)).astype(np.float32), plans[0].in_block)
        bound = 1.0 / np.sqrt(9 * c)
        weight = rng.uniform(-bound, bound, (c, c, 3, 3)).astype(np.float32)
        bias = rng.standard_normal(c).astype(np.float32)
        rates, outs = [], []
        for i, plan in enumerate(plans):
            fn = jits[i].function(f"k{i}", None, *(VP,) * 5, ctypes.c_int64, ctypes.c_int64)
            wp, bp = plan.pack_weights(weight, bias)
            out = np.empty((1, plan.direct.ocb if i else plan.ocb, plan.oh, plan.ow,
                            plan.out_block), np.float32)
            call = (x.ctypes.data, wp.ctypes.data, bp.ctypes.data, None, out.ctypes.data, 0,
                    plan.num_tasks)
            rates.append(plans[0].flops / time_kernel(fn, call, rounds) / 1e9)
            outs.append(out)
        err = np.linalg.norm(outs[1] - outs[0]) / np.linalg.norm(outs[0])
        print(f"{label:24s} {rates[0]:12.1f} {rates[1]:14.1f} {rates[1] / rates[0]:7.2f}"
              f"   (rel diff vs direct {err:.1e})", flush=True)


if __name__ == "__main__":
    main()
