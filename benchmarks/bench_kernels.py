"""Single-thread GFLOP/s of the native kernels vs the measured fp32 peak and onnxruntime.

    python benchmarks/bench_kernels.py            # every layer (about 30 s)
    python benchmarks/bench_kernels.py --quick    # fewer layers and repetitions
    python benchmarks/bench_kernels.py --only 3x3 # layers whose name contains "3x3"
    python benchmarks/bench_kernels.py --bf16     # the bf16 kernels (AVX512-BF16) vs their peak

Peak: an emitted loop of independent vector FMAs (24 accumulators, enough to cover the FMA
latency on two ports). numpy sgemm (in a child process) and onnxruntime use one thread.
Each layer is timed alternately against onnxruntime (one Conv/Gemm node,
intra_op_num_threads=1) in rounds of ~0.1 s; medians are reported. Our conv times exclude
layout changes: the compiled graph keeps tensors in NCHWc between layers (onnxruntime's own
NCHWc conv reorders its input and output inside the timed call).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

# the kernel tests' JIT (tests/backends/llvm/jit.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "backends" / "llvm"))
try:
    from graphcnn.backends.llvm import builder as irb
    from graphcnn.backends.llvm.codegen import target_machine, vector_width
    from graphcnn.backends.llvm.kernels.conv2d_nchwc import Conv2dNCHWcPlan, to_nchwc
    from graphcnn.backends.llvm.kernels.depthwise import DepthwiseConv2dNCHWcPlan
    from graphcnn.backends.llvm.kernels.gemm import GemmPlan
except ImportError:  # a source checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from backends.llvm import builder as irb
    from backends.llvm.codegen import target_machine, vector_width
    from backends.llvm.kernels.conv2d_nchwc import Conv2dNCHWcPlan, to_nchwc
    from backends.llvm.kernels.depthwise import DepthwiseConv2dNCHWcPlan
    from backends.llvm.kernels.gemm import GemmPlan
from jit import JitModule, new_module

VP = ctypes.c_void_p


def ptr(array: np.ndarray | None) -> VP | None:
    return None if array is None else array.ctypes.data_as(VP)


# ----------------------------------------------------------------------------------------------
# Layers


@dataclass(frozen=True)
class ConvLayer:
    name: str
    c_in: int
    hw: int
    c_out: int
    k: int
    stride: int = 1
    depthwise: bool = False
    in_block: int | None = None
    groups: int = 1

    @property
    def pad(self) -> int:
        return self.k // 2


@dataclass(frozen=True)
class GemmLayer:
    name: str
    m: int
    n: int
    k: int


LAYERS: list[ConvLayer | GemmLayer] = [
    ConvLayer("resnet conv1 7x7/2 224x224 3->64", 3, 224, 64, 7, 2, in_block=3),
    ConvLayer("resnet 3x3 56x56 64->64", 64, 56, 64, 3),
    ConvLayer("resnet 3x3 28x28 128->128", 128, 28, 128, 3),
    ConvLayer("resnet 3x3 14x14 256->256", 256, 14, 256, 3),
    ConvLayer("resnet 3x3 7x7 512->512", 512, 7, 512, 3),
    ConvLayer("resnet 3x3/2 56x56 128->128", 128, 56, 128, 3, 2),
    ConvLayer("resnet 1x1 56x56 64->256", 64, 56, 256, 1),
    ConvLayer("resnet 1x1 56x56 256->64", 256, 56, 64, 1),
    ConvLayer("resnet 1x1 14x14 1024->256", 1024, 14, 256, 1),
    ConvLayer("resnet 1x1 7x7 2048->512", 2048, 7, 512, 1),
    ConvLayer("vgg 3x3 224x224 64->64", 64, 224, 64, 3),
    ConvLayer("vgg 3x3 112x112 128->128", 128, 112, 128, 3),
    ConvLayer("vgg 3x3 56x56 256->256", 256, 56, 256, 3),
    # grouped 1x1 convs (ShuffleNet, g=3): GFLOP/s counts the useful multiply-adds, though an
    # output block straddling groups computes over all of their inputs
    ConvLayer("shufflenet 1x1 g3 28x28 240->60", 240, 28, 60, 1, groups=3),
    ConvLayer("shufflenet 1x1 g3 28x28 60->240", 60, 28, 240, 1, groups=3),
    ConvLayer("shufflenet 1x1 g3 14x14 480->120", 480, 14, 120, 1, groups=3),
    ConvLayer("shufflenet 1x1 g3 7x7 960->240", 960, 7, 240, 1, groups=3),
    ConvLayer("mobilenet dw 3x3 112x112 32", 32, 112, 32, 3, depthwise=True),
    ConvLayer("mobilenet dw 3x3/2 56x56 128", 128, 56, 128, 3, 2, depthwise=True),
    ConvLayer("mobilenet dw 3x3 14x14 512", 512, 14, 512, 3, depthwise=True),
    GemmLayer("dense 2048->1000 (m=1)", 1, 1000, 2048),
    GemmLayer("dense 4096->4096 (m=16)", 16, 4096, 4096),
    GemmLayer("gemm 1024x1024x1024", 1024, 1024, 1024),
]
QUICK = {"resnet 3x3 56x56 64->64", "resnet 3x3 7x7 512->512", "resnet 1x1 14x14 1024->256",
         "resnet conv1 7x7/2 224x224 3->64", "mobilenet dw 3x3 14x14 512",
         "dense 2048->1000 (m=1)"}


# ----------------------------------------------------------------------------------------------
# Timing


def time_alternating(fns: list[Callable[[], object]], rounds: int, budget: float = 0.1
                     ) -> list[float]:
    """Median seconds per call of each function, measured in alternating rounds."""
    reps = []
    for fn in fns:
        fn()
        start = time.perf_counter()
        fn()
        reps.append(max(1, int(budget / max(time.perf_counter() - start, 1e-7))))
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, n, out in zip(fns, reps, samples, strict=True):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - start) / n)
    return [statistics.median(s) for s in samples]


def measure_peak(tm, threads: int = 1, bf16: bool = False) -> float:
    """GFLOP/s of 24 independent <vw x float> FMA chains on one core, or in total on `threads`
    cores running the loop at once (ctypes releases the GIL during the call); with `bf16`,
    chains of vdpbf16ps (two multiply-adds per lane each)."""
    vw = vector_width("host")
    module = new_module("peak", tm)
    fn = ir.Function(module, ir.FunctionType(irb.F32, [irb.I64]), "peak")
    fn.args[0].name = "iterations"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    accs = [irb.entry_alloca(b, irb.vec_type(vw), f"acc{i}") for i in range(24)]
    for i, acc in enumerate(accs):
        b.store(irb.splat(1e-3 * i, vw), acc)
    with irb.for_range(b, 0, fn.args[0], name="it"):
        for i, acc in enumerate(accs):
            value = b.load(acc, name=f"acc{i}.v")
            if bf16:  # acc += pairs . pairs: the operands' bits are bf16 pairs near 1e-2
                b.store(irb.dot_bf16_pairs(b, irb.splat(1e-2, vw), irb.splat(1e-2, vw), value,
                                           f"dp{i}"), acc)
            else:
                b.store(irb.fma(b, value, irb.splat(0.999, vw), irb.splat(1e-4, vw),
                                f"fma{i}"), acc)
    total = b.load(accs[0], name="sum0")
    for i, acc in enumerate(accs[1:], 1):
        total = b.fadd(total, b.load(acc, name=f"acc{i}.out"), name=f"sum{i}")
    b.ret(b.extract_element(total, ir.Constant(irb.I32, 0), name="lane0"))
    jit = JitModule(module)
    peak = jit.function("peak", ctypes.c_float, ctypes.c_int64)
    iterations = 2_000_000

    def run() -> None:
        workers = [threading.Thread(target=peak, args=(iterations,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    seconds = min(time_alternating([run], rounds=5))
    return threads * 24 * vw * 2 * (2 if bf16 else 1) * iterations / seconds / 1e9


NUMPY_SGEMM = """
import time
import numpy as np
rng = np.random.default_rng(0)
a, b = (rng.standard_normal((SIZE, SIZE)).astype(np.float32) for _ in range(2))
a @ b
times = []
for _ in range(7):
    start = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - start)
print(2 * SIZE**3 / min(times) / 1e9)
"""


def measure_numpy_sgemm(size: int = 1024) -> float:
    """numpy's BLAS on one thread: a child process, since BLAS fixes its thread count when
    numpy is imported (and this process has imported it already)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = NUMPY_SGEMM.replace("SIZE", str(size))
    result = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                            capture_output=True, text=True)
    return float(result.stdout)


# ----------------------------------------------------------------------------------------------
# onnxruntime


def ort_session(node, inputs, initializers, out_shape):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [node], "one_op",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(arr.shape))
         for name, arr in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(arr, name) for name, arr in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda: session.run(None, inputs)


# ----------------------------------------------------------------------------------------------
# Per-layer runners: (plan, our call, onnxruntime call)


def conv_runner(layer: ConvLayer, vw: int, module: ir.Module, name: str, bf16: bool = False):
    from onnx import helper

    rng = np.random.default_rng(0)
    cls = DepthwiseConv2dNCHWcPlan if layer.depthwise else Conv2dNCHWcPlan
    create = Conv2dNCHWcPlan.create_bf16 if bf16 else cls.create
    in_block = layer.in_block + layer.in_block % 2 if bf16 and layer.in_block else layer.in_block
    plan = create(n=1, c_in=layer.c_in, h=layer.hw, w=layer.hw, c_out=layer.c_out,
                  kh=layer.k, kw=layer.k, stride=(layer.stride,) * 2,
                  pads=(layer.pad,) * 4, vector_width=vw, in_block=in_block,
                  **({"groups": layer.groups} if layer.groups > 1 else {}))
    plan.emit(module, name)
    x = rng.standard_normal((1, layer.c_in, layer.hw, layer.hw)).astype(np.float32)
    w_shape = (layer.c_out, 1 if layer.depthwise else layer.c_in // layer.groups, layer.k,
               layer.k)
    weight = rng.standard_normal(w_shape).astype(np.float32) * 0.1
    bias = rng.standard_normal(layer.c_out).astype(np.float32)
    w_packed, b_packed = plan.pack_weights(weight, bias)
    xi = to_nchwc(x, plan.in_block * (2 if bf16 else 1))
    if bf16:
        import ml_dtypes

        xi = xi.astype(ml_dtypes.bfloat16)
    out = np.empty((1, -(-layer.c_out // plan.out_block), plan.oh, plan.ow, plan.out_block),
                   np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[layer.k] * 2,
                            strides=[layer.stride] * 2, pads=[layer.pad] * 4,
                            group=layer.c_in if layer.depthwise else layer.groups)
    ort_call = ort_session(node, {"x": x}, {"w": weight, "b": bias},
                           (1, layer.c_out, plan.oh, plan.ow))

    def bind(fn):
        args = (ptr(xi), ptr(w_packed), ptr(b_packed), None, ptr(out), 0, plan.num_tasks)
        return lambda: fn(*args)
    return plan, bind, (VP,) * 5 + (ctypes.c_int64,) * 2, ort_call


def gemm_runner(layer: GemmLayer, vw: int, module: ir.Module, name: str, bf16: bool = False):
    from onnx import helper

    rng = np.random.default_rng(0)
    create = GemmPlan.create_bf16 if bf16 else GemmPlan.create
    plan = create(m=layer.m, n=layer.n, k=layer.k, has_c=True, vector_width=vw)
    plan.emit(module, name)
    a = rng.standard_normal((layer.m, layer.k)).astype(np.float32)
    b = rng.standard_normal((layer.k, layer.n)).astype(np.float32)
    c = rng.standard_normal(layer.n).astype(np.float32)
    b_packed, y = plan.pack_b(b), np.empty((layer.m, layer.n), np.float32)
    a_in = a
    if bf16:
        import ml_dtypes

        a_in = a.astype(ml_dtypes.bfloat16)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"])
    ort_call = ort_session(node, {"a": a}, {"b": b, "c": c}, (layer.m, layer.n))

    def bind(fn):
        args = (ptr(a_in), ptr(b_packed), ptr(c), ptr(y), 0, plan.num_tasks)
        return lambda: fn(*args)
    return plan, bind, (VP,) * 4 + (ctypes.c_int64,) * 2, ort_call


def describe_tiling(plan) -> str:
    t = plan.tiling
    rows = "/".join(str(h) for h in sorted(set(t.heights), reverse=True))
    cols = "/".join(str(w) for w in sorted(set(t.widths), reverse=True))
    return f"{t.ocn}x{rows}x{cols}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few layers, fewer rounds")
    parser.add_argument("--only", default="", help="run layers whose name contains this")
    parser.add_argument("--rounds", type=int, default=0, help="timing rounds per layer")
    parser.add_argument("--bf16", action="store_true",
                        help="the bf16 kernels (dense convs and GEMMs) against the vdpbf16ps peak")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 9)
    layers = [la for la in LAYERS if args.only in la.name and (not args.quick or la.name in QUICK)
              and not (args.bf16 and getattr(la, "depthwise", False) or
                       args.bf16 and getattr(la, "groups", 1) > 1)]

    tm = target_machine("host")
    vw = vector_width("host")
    if args.bf16:
        from graphcnn.backends.llvm.codegen import has_bf16

        if not has_bf16("host") or vw != 16:
            raise SystemExit("--bf16 needs a CPU with AVX512-BF16")
        bf16_peak = measure_peak(tm, bf16=True)
    peak = measure_peak(tm)
    both = measure_peak(tm, threads=2)
    sgemm = measure_numpy_sgemm()
    print(f"CPU {llvm.get_host_cpu_name()}, vector width {vw}, one thread")
    print(f"measured fp32 peak (FMA loop): {peak:.1f} GFLOP/s;  numpy sgemm 1024^3: "
          f"{sgemm:.1f} GFLOP/s ({100 * sgemm / peak:.0f}% of peak)")
    # what two threads can reach at most: on these virtual machines two busy cores do not
    # give twice one core's FMA throughput (shared physical core or lower AVX-512 clocks)
    print(f"the same FMA loop on 2 threads at once: {both:.1f} GFLOP/s in total "
          f"({both / peak:.2f}x one thread)\n")
    if args.bf16:
        print(f"bf16 peak (vdpbf16ps loop): {bf16_peak:.1f} GFLOP/s ({bf16_peak / peak:.2f}x "
              "fp32's); % peak below is of it\n")
        peak = bf16_peak

    module = new_module("bench", tm)
    runners = []
    for i, layer in enumerate(layers):
        make = gemm_runner if isinstance(layer, GemmLayer) else conv_runner
        runners.append((layer, make(layer, vw, module, f"layer{i}", bf16=args.bf16)))
    start = time.perf_counter()
    jit = JitModule(module)
    print(f"(compiled {len(layers)} kernels in {time.perf_counter() - start:.1f} s)\n")

    header = (f"| {'layer':36} | {'tile':10} | {'GFLOP':>6} | {'ours ms':>8} | {'GFLOP/s':>7} "
              f"| {'% peak':>6} | {'ORT ms':>7} | {'ORT GF/s':>8} | {'ORT/ours':>8} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for i, (layer, (plan, bind, argtypes, ort_call)) in enumerate(runners):
        ours = bind(jit.function(f"layer{i}", None, *argtypes))
        t_ours, t_ort = time_alternating([ours, ort_call], rounds)
        gflop = plan.flops / 1e9
        print(f"| {layer.name:36} | {describe_tiling(plan):10} | {gflop:6.3f} | "
              f"{1e3 * t_ours:8.3f} | {gflop / t_ours:7.1f} | {100 * gflop / t_ours / peak:5.1f}% "
              f"| {1e3 * t_ort:7.3f} | {gflop / t_ort:8.1f} | {t_ort / t_ours:7.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
