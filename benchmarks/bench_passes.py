"""What the pass pipeline buys on the llvm target: node counts and latency without and with it.

    python benchmarks/bench_passes.py

"without" compiles the graph as built (opt_level=0, and the backend's own pipeline run turned
off with rewrites=False: generic NCHW kernels, separate batch-norm / activation / add kernels);
"with" is the default gc.compile (level 2 for llvm: folding, fusion, blocked layout, kernel
choice). Both run with 2 threads in one process, alternating, medians.
"""
from __future__ import annotations

import numpy as np

import graphcnn as gc
from graphcnn import models
from graphcnn.bench import time_alternating

NETWORKS = {
    "lenet5 b1": lambda: models.lenet5(batch=1),
    "vgg_cifar b1": lambda: models.vgg_cifar(batch=1),
    "resnet18 b1 (112x112)": lambda: models.resnet18(size=112),
    "inception_v1 b1 (112x112)": lambda: models.inception_v1(size=112),
}


def main() -> None:
    print(f"| {'network':<26} | {'nodes':>5} | {'after L2 llvm':>13} | {'without ms':>10} | "
          f"{'with ms':>8} | {'speedup':>7} |")
    print("|" + "|".join("-" * w for w in (28, 7, 15, 12, 10, 9)) + "|")
    for name, build in NETWORKS.items():
        graph = build()
        optimised = gc.optimize(graph, opt_level=2, target="llvm")
        x = np.random.default_rng(0).standard_normal(graph.inputs[0].shape).astype(np.float32)
        plain = gc.compile(graph, target="llvm", opt_level=0, rewrites=False, threads=2)
        fused = gc.compile(graph, target="llvm", threads=2)
        assert np.linalg.norm(plain(x) - fused(x)) <= 1e-4 * np.linalg.norm(plain(x))
        t = time_alternating({"without": lambda p=plain, x=x: p(x),
                              "with": lambda f=fused, x=x: f(x)}, runs=30, budget_s=30)
        print(f"| {name:<26} | {len(graph.nodes):>5} | {len(optimised.nodes):>13} | "
              f"{t['without'] * 1e3:>10.3f} | {t['with'] * 1e3:>8.3f} | "
              f"{t['without'] / t['with']:>6.2f}x |")


if __name__ == "__main__":
    main()
