"""graphcnn-llvm vs onnxruntime on the model zoo: latency, compile time, memory.

    python benchmarks/bench_zoo.py                    # small CNNs + ImageNet models at 224x224
    python benchmarks/bench_zoo.py --suite small      # LeNet-5 (b1, b64), CIFAR VGG (b1, b16)
    python benchmarks/bench_zoo.py --suite imagenet --models resnet50,squeezenet
    python benchmarks/bench_zoo.py --compile-time     # ResNet-50 ONNX -> runnable, cold and cached
    python benchmarks/bench_zoo.py --memory resnet50  # process memory growth, each runtime alone

Both runtimes use the same thread count (default 2) in one process; runs alternate and the
table reports medians and their ratio (speedup > 1: graphcnn is faster). Run it alone on the
machine: the numbers are ratios on a noisy 2-core box, not absolute truths.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import graphcnn as gc
from graphcnn import models
from graphcnn.bench import compare_with_onnxruntime, format_table

SMALL = [("lenet5", lambda: models.lenet5(batch=1)), ("lenet5", lambda: models.lenet5(batch=64)),
         ("vgg_cifar", lambda: models.vgg_cifar(batch=1)),
         ("vgg_cifar", lambda: models.vgg_cifar(batch=16))]


def run_suite(builders, threads: int, runs: int) -> list[dict]:
    rows = []
    for name, build in builders:
        graph = build()
        row = compare_with_onnxruntime(graph, threads=threads, runs=runs, budget_s=40)
        rows.append(row)
        print(format_table([row]).splitlines()[-1], flush=True)
    return rows


COMPILE_TIME_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import graphcnn as gc
path, threads = sys.argv[1], int(sys.argv[2])
phases = {}

def timed(module, name, label):
    fn = getattr(module, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            phases[label] = phases.get(label, 0.0) + time.perf_counter() - start
    setattr(module, name, wrapper)

if "--phases" in sys.argv:  # wrap the stages (the imports they trigger count in them)
    import importlib
    import graphcnn.api as api
    llvm = importlib.import_module("graphcnn.backends.llvm")
    lower = importlib.import_module("graphcnn.backends.llvm.lower")
    codegen = importlib.import_module("graphcnn.backends.llvm.codegen")
    cache = importlib.import_module("graphcnn.backends.llvm.cache")
    timed(api, "optimize", "passes")
    timed(lower, "lower", "lower")
    timed(codegen, "compile_objects", "llvm codegen")
    timed(cache, "source_key", "cache key")
    timed(cache, "load", "cache load")
    timed(cache, "store", "cache store")
    timed(llvm.runtime.LLVMModel, "__init__", "jit load")
    # the import snapshot (a hit skips importing onnx); not graphcnn.frontends.onnx itself,
    # whose import (onnx with it) would then be paid before the clock starts
    timed(importlib.import_module("graphcnn.frontends.onnx_snapshot"), "load", "snapshot")
t = time.perf_counter()
graph = gc.from_onnx(path)
t1 = time.perf_counter()
cm = gc.compile(graph, target="llvm", threads=threads)
t2 = time.perf_counter()
print(json.dumps({"total": t2 - t, "from_onnx": t1 - t, "compile": t2 - t1,
                  "from_cache": cm.from_cache, "phases": phases}))
"""


def compile_time(threads: int, runs: int = 3, phases: bool = True,
                 bytecode: bool = True) -> None:
    """ResNet-50 from an ONNX file to a runnable model: cold (empty cache) then cached, each
    `gc.compile(gc.from_onnx(path), target="llvm")` in a fresh process (timed from after
    `import graphcnn`, so the onnx, llvmlite and backend imports count). With `phases`, one
    more cold and cached run with the stages timed (wrapping them costs a little).

    `bytecode`: the children cache their modules' compiled bytecode (__pycache__) as Python
    does unless told not to, and one untimed child writes it first. Without, a process under
    PYTHONDONTWRITEBYTECODE=1 (these machines set it) compiles every graphcnn module it
    imports from source, each time: ~0.09 s of a cold compile, ~0.02 s of a cached one."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "resnet50.onnx")
        gc.export_onnx(models.resnet50(), path)
        env = dict(os.environ)
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        print(f"bytecode cached: {'yes' if env.get('PYTHONDONTWRITEBYTECODE') is None else 'no'}"
              f" (PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', 'unset')})")

        def child(cache: str, *flags: str) -> dict:
            child_env = dict(env, GRAPHCNN_CACHE_DIR=os.path.join(tmp, cache))
            out = subprocess.run([sys.executable, "-c", COMPILE_TIME_CHILD, path, str(threads),
                                  *flags], env=child_env, capture_output=True, text=True,
                                 check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        if bytecode:
            child("cache-warm-up")  # writes the bytecode; its own cache, so run 0 stays cold
        for i in range(runs):
            r = child("cache")
            label = "cached" if r["from_cache"] else "cold"
            print(f"resnet50 onnx -> runnable, {label}: {r['total']:.3f} s (from_onnx "
                  f"{r['from_onnx']:.3f} + compile {r['compile']:.3f}; fresh process, run {i})",
                  flush=True)
        if phases:
            for label in ("cold", "cached"):
                r = child("cache-phases", "--phases")
                assert r["from_cache"] == (label == "cached")
                stages = ", ".join(f"{k} {v:.3f}" for k, v in r["phases"].items())
                print(f"  phases, {label}: total {r['total']:.3f} = from_onnx "
                      f"{r['from_onnx']:.3f} + compile {r['compile']:.3f} [{stages}]")


def memory(model: str, threads: int) -> None:
    """Resident-set growth from building a session/compiled model and running it once, each in
    its own fresh process so neither pays for the other."""
    code = """
import sys, numpy as np, graphcnn as gc
from graphcnn import models
graph = models.IMAGENET[sys.argv[1]]() if sys.argv[1] in models.IMAGENET else models.SMALL[sys.argv[1]]()
x = np.random.default_rng(0).standard_normal(graph.inputs[0].type.shape).astype(np.float32)
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
target = sys.argv[2]
if target == 'onnxruntime':
    import onnxruntime
    proto = gc.to_onnx(graph).SerializeToString()
    base = rss()
    opts = onnxruntime.SessionOptions(); opts.intra_op_num_threads = int(sys.argv[3])
    sess = onnxruntime.InferenceSession(proto, opts, providers=['CPUExecutionProvider'])
    sess.run(None, {graph.inputs[0].name: x})
else:
    import graphcnn.backends.llvm  # import llvmlite before measuring
    base = rss()
    cm = gc.compile(graph, target='llvm', threads=int(sys.argv[3]))
    cm(x)
print(rss() - base)
"""
    growth = {}
    with tempfile.TemporaryDirectory() as tmp:  # an empty compile cache: cold, then cached
        env = dict(os.environ, GRAPHCNN_CACHE_DIR=tmp)
        for target, label in (("onnxruntime", "onnxruntime"), ("llvm", "llvm, cold compile"),
                              ("llvm", "llvm, from the compile cache")):
            out = subprocess.run([sys.executable, "-c", code, model, target, str(threads)],
                                 capture_output=True, text=True, check=True, env=env)
            growth[label] = int(out.stdout.strip().splitlines()[-1])
            print(f"{model} {label}: process RSS growth {growth[label] / 2**20:.1f} MiB")
    for label in ("llvm, cold compile", "llvm, from the compile cache"):
        print(f"ratio graphcnn ({label}) / onnxruntime: "
              f"{growth[label] / growth['onnxruntime']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=["small", "imagenet", "all"], default="all")
    p.add_argument("--models", default="", help="comma-separated ImageNet model names")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--compile-time", action="store_true")
    p.add_argument("--no-bytecode", action="store_true",
                   help="compile-time children keep PYTHONDONTWRITEBYTECODE as it is set")
    p.add_argument("--memory", metavar="MODEL")
    args = p.parse_args()
    if args.compile_time:
        return compile_time(args.threads, bytecode=not args.no_bytecode)
    if args.memory:
        return memory(args.memory, args.threads)
    names = [m for m in args.models.split(",") if m] or list(models.IMAGENET)
    for suite in (["small", "imagenet"] if args.suite == "all" else [args.suite]):
        start = time.perf_counter()
        builders = SMALL if suite == "small" else [(n, models.IMAGENET[n]) for n in names]
        print(f"\n## {suite}: graphcnn-llvm vs onnxruntime, {args.threads} threads each, medians")
        rows = run_suite(builders, args.threads, args.runs)
        print(format_table(rows))
        worst = min(rows, key=lambda r: r["speedup"])
        geo = math.exp(sum(math.log(r["speedup"]) for r in rows) / len(rows))
        print(f"{suite}: geomean {geo:.2f}x, slowest {worst['graph']} {worst['speedup']:.2f}x "
              f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
