"""graphcnn-llvm vs onnxruntime on the native backend issue's models: LeNet-5 at batch 1 and 64,
a ResNet-18 at batch 1 (224x224). Same thread count, one process, alternating, medians.

    python benchmarks/bench_llvm.py [--threads 2] [--runs 40]

speedup = onnxruntime time / graphcnn time (above 1: graphcnn is faster). bench_zoo.py runs the
larger suites with the same machinery (graphcnn.bench).
"""
from __future__ import annotations

import argparse

from graphcnn import models
from graphcnn.bench import compare_with_onnxruntime, format_table

MODELS = {
    "lenet5_b1": lambda: models.lenet5(batch=1),
    "lenet5_b64": lambda: models.lenet5(batch=64),
    "resnet18_b1": lambda: models.resnet18(batch=1),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=40)
    args = p.parse_args()
    rows = [compare_with_onnxruntime(build(), threads=args.threads, runs=args.runs)
            for build in MODELS.values()]
    print(format_table(rows))
    for r in rows:
        print(f"{r['graph']}: compile {r['compile_s']:.2f} s, workspace arena "
              f"{(r['memory_bytes'] or 0) / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
