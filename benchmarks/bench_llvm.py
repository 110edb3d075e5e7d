"""graphcnn-llvm vs onnxruntime, side by side in one process (same thread count, alternating
runs, medians): LeNet-5 at batch 1 and 64, ResNet-18 at batch 1.

    python benchmarks/bench_llvm.py [--threads 2] [--runs 50]

ratio = onnxruntime median / graphcnn median (> 1: graphcnn is faster).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import lenet5, onnxruntime_runner, resnet18, time_alternating

import graphcnn as gc

MODELS = [("lenet5 b1", lambda: lenet5(1)), ("lenet5 b64", lambda: lenet5(64)),
          ("resnet18 b1", lambda: resnet18(1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--models", default=",".join(m for m, _ in MODELS))
    args = ap.parse_args()
    wanted = args.models.split(",")
    rows = []
    for name, build in MODELS:
        if name not in wanted:
            continue
        graph = build()
        x = np.random.default_rng(0).standard_normal(graph.inputs[0].type.shape).astype(np.float32)
        t0 = time.perf_counter()
        native = gc.compile(graph, target="llvm", threads=args.threads, cache=False)
        compile_s = time.perf_counter() - t0
        ort = onnxruntime_runner(graph, args.threads)
        a, b = native(x), ort(x)
        err = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        med = time_alternating({"llvm": lambda n=native, x=x: n(x),
                                "ort": lambda o=ort, x=x: o(x)}, runs=args.runs, budget_s=60)
        rows.append((name, med["llvm"], med["ort"], compile_s, err, native.memory_bytes))
        print(f"{name:12s} graphcnn {med['llvm'] * 1e3:9.3f} ms  onnxruntime "
              f"{med['ort'] * 1e3:9.3f} ms  ratio {med['ort'] / med['llvm']:5.2f}", flush=True)
    print(f"\nthreads={args.threads}, medians of alternating runs "
          "(ratio = onnxruntime / graphcnn, > 1 means graphcnn is faster)")
    print(f"{'model':12s} | {'graphcnn ms':>11s} | {'ort ms':>9s} | {'ratio':>5s} | "
          f"{'compile s':>9s} | {'rel err':>8s} | {'arena MiB':>9s}")
    for name, ll, oo, cs, err, mem in rows:
        print(f"{name:12s} | {ll * 1e3:11.3f} | {oo * 1e3:9.3f} | {oo / ll:5.2f} | {cs:9.2f} | "
              f"{err:8.1e} | {mem / 2**20:9.2f}")


if __name__ == "__main__":
    main()
