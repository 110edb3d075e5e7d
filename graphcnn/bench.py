"""Side-by-side timing of graphcnn targets and onnxruntime: one process, alternating runs, medians.

Used by `graphcnn bench MODEL` and the scripts in benchmarks/. The machines this runs on are
noisy, so callers report ratios of medians, never single absolute times.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import numpy as np

from .ir import Graph, Node
from .profiling import format_profile


def node_flops(node: Node) -> int:
    """Multiply-adds count twice; only the layers that dominate CNN time are counted."""
    if node.op == "conv":
        w = node.inputs[1].type.shape
        y = node.outputs[0].type.shape
        out_elems = math.prod(y)
        if node.attrs.get("layout") == "NCHWc":  # blocked output: count real channels only
            out_elems = out_elems // (y[1] * y[-1]) * w[0]
        return 2 * out_elems * math.prod(w[1:])
    if node.op in ("gemm", "matmul"):
        a, y = node.inputs[0].type.shape, node.outputs[0].type.shape
        k = a[0] if node.op == "gemm" and node.attrs.get("transA") else a[-1]
        return 2 * math.prod(y) * k
    return 0


def graph_flops(graph: Graph) -> int:
    return sum(node_flops(n) for n in graph.nodes)


def time_alternating(runners: dict[str, Callable[[], object]], runs: int = 30,
                     warmup: int = 3, budget_s: float = 60.0, block: int = 5,
                     settle_s: float = 0.05, block_warmup_s: float = 0.01,
                     first_calls: dict[str, float] | None = None) -> dict[str, float]:
    """Median seconds per call for each runner, in steady state. Runners take turns in blocks
    of `block` timed calls (order rotated each round) so drift in machine load hits all of
    them alike. Before each block the machine is left idle for `settle_s`: thread pools keep
    polling for a while after a call (onnxruntime's intra-op workers ~25 ms, graphcnn's
    ~0.1 ms), and a block run while the other runtime's workers still spin shares the cores
    with them. Then the runner is warmed up, untimed, for `block_warmup_s` (at least one
    call): on these shared machines the first calls after an idle spell run 1.3-2x slower for
    a few milliseconds (memory-bound numpy loops too: the caches refill), and a block of 5
    calls would otherwise time mostly that recovery. The first call after the idle spell is
    timed on its own: pass `first_calls` to receive the median of those, per runner.
    Stops once `budget_s` is spent (>= 3 rounds)."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    firsts: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    for i in range(max(1, runs // block)):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            time.sleep(settle_s)
            t0 = time.perf_counter()
            runners[name]()
            t1 = time.perf_counter()
            firsts[name].append(t1 - t0)
            while time.perf_counter() - t1 < block_warmup_s:
                runners[name]()
            for _ in range(block):
                t0 = time.perf_counter()
                runners[name]()
                samples[name].append(time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() - start > budget_s:
            break
    if first_calls is not None:
        first_calls.update({n: statistics.median(s) for n, s in firsts.items()})
    return {n: statistics.median(s) for n, s in samples.items()}


def compare_with_onnxruntime(graph: Graph, threads: int = 2, runs: int = 30,
                             inputs: list[np.ndarray] | None = None, seed: int = 0,
                             budget_s: float = 60.0, precision: str = "fp32") -> dict:
    """Compile for llvm (at `precision`) and onnxruntime (same thread count), measure how far
    apart they are, time both."""
    from . import compile

    rng = np.random.default_rng(seed)
    inputs = inputs or [rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs]
    t0 = time.perf_counter()
    native = compile(graph, target="llvm", threads=threads, precision=precision)
    compile_s = time.perf_counter() - t0
    ort = compile(graph, target="onnxruntime", threads=threads)
    a, b = native(*inputs), ort(*inputs)
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    err = max(float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)) for x, y in zip(a, b))
    firsts: dict[str, float] = {}
    medians = time_alternating({"graphcnn-llvm": lambda: native(*inputs),
                                "onnxruntime": lambda: ort(*inputs)}, runs=runs, budget_s=budget_s,
                               first_calls=firsts)
    return {"graph": graph.name, "precision": precision, "flops": graph_flops(graph),
            "llvm_s": medians["graphcnn-llvm"],
            "ort_s": medians["onnxruntime"], "speedup": medians["onnxruntime"] / medians["graphcnn-llvm"],
            "llvm_first_s": firsts["graphcnn-llvm"], "ort_first_s": firsts["onnxruntime"],
            "rel_err": err, "compile_s": compile_s, "model": native,
            "memory_bytes": getattr(native, "memory_bytes", None), "inputs": inputs}


def format_table(rows: list[dict]) -> str:
    """Steady-state medians and their ratio, then the first call after an idle spell
    (`time_alternating`) for both runtimes and its ratio."""
    label = "graphcnn-llvm" + ("-bf16" if any(r.get("precision") == "bf16" for r in rows) else "")
    width = len(label) + 3
    head = (f"| {'model':<28} | {label + ' ms':>{width}} | {'onnxruntime ms':>14} | "
            f"{'speedup':>7} | {'GFLOP/s':>7} | {'rel err':>7} | {'1st call ms (gc / ort)':>22} |"
            f" {'1st speedup':>11} |")
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        gflops = r["flops"] / r["llvm_s"] / 1e9 if r["flops"] else 0.0
        first = f"{r['llvm_first_s'] * 1e3:.3f} / {r['ort_first_s'] * 1e3:.3f}"
        lines.append(f"| {r['graph']:<28} | {r['llvm_s'] * 1e3:>{width}.3f} | {r['ort_s'] * 1e3:>14.3f} | "
                     f"{r['speedup']:>6.2f}x | {gflops:>7.1f} | {r['rel_err']:>7.1e} | "
                     f"{first:>22} | {r['ort_first_s'] / r['llvm_first_s']:>10.2f}x |")
    if len(rows) > 1:
        geo = math.exp(sum(math.log(r["speedup"]) for r in rows) / len(rows))
        first = math.exp(sum(math.log(r["ort_first_s"] / r["llvm_first_s"]) for r in rows)
                         / len(rows))
        lines.append(f"geomean speedup vs onnxruntime: {geo:.2f}x over {len(rows)} models "
                     f"(first call after idle: {first:.2f}x)")
    return "\n".join(lines)


def random_input(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Standard normal floats, or integers in [0, 100) (token ids) for an integer input."""
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def precision_agreement(model, fp32, samples: int = 100, seed: int = 1) -> dict:
    """How close `model` (a reduced-precision build) stays to `fp32` (the float32 llvm build of
    the same graph, itself checked against the reference interpreter by the test suite) over
    `samples` random inputs: the relative L2 error of all its outputs together, and for a
    classifier output (N, classes >= 5) the share of samples whose top-1 class is float32's
    (top-1 agreement) and whose top-5 holds float32's top-1 (top-5 agreement)."""
    types = list(model.input_types.values())
    batch = types[0].shape[0] if types[0].rank else 1
    rng = np.random.default_rng(seed)
    err = ref = 0.0
    top1 = top5 = counted = 0
    for _ in range(-(-samples // max(batch, 1))):
        xs = [random_input(t.shape, t.dtype, rng) for t in types]
        got, want = model(*xs), fp32(*xs)
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            err += float(np.sum((g.astype(np.float64) - w) ** 2))
            ref += float(np.sum(w.astype(np.float64) ** 2))
        g, w = got[0], want[0]
        if g.ndim > 2 and g.shape[0] * g.shape[1] == g.size:  # (N, classes, 1, 1) scores
            g, w = g.reshape(g.shape[:2]), w.reshape(w.shape[:2])
        if g.ndim == 2 and g.shape[1] >= 5:
            best = w.argmax(axis=1)
            top1 += int(np.sum(g.argmax(axis=1) == best))
            top5 += int(np.sum(np.any(np.argsort(-g, axis=1)[:, :5] == best[:, None], axis=1)))
            counted += g.shape[0]
    row = {"samples": counted or samples, "rel_l2": math.sqrt(err / max(ref, 1e-300))}
    if counted:
        row.update(top1=top1 / counted, top5=top5 / counted)
    return row


def format_agreement(row: dict, precision: str) -> str:
    text = f"{precision} vs float32 over {row['samples']} random inputs: rel L2 {row['rel_l2']:.2e}"
    if "top1" in row:
        text += (f", top-1 agreement {100 * row['top1']:.1f}%, float32's top-1 in the "
                 f"top-5 {100 * row['top5']:.1f}%")
    return text


def bench_model(graph: Graph, threads: int = 2, runs: int = 30, profile: bool = True,
                on_profile: Callable[[list[dict]], object] | None = None,
                precision: str = "fp32", samples: int = 100) -> int:
    """The side-by-side table, then (`profile`) the llvm per-layer profile, which
    `on_profile` also receives (the CLI's --trace writes it out). A `precision` other than
    fp32 also prints how close it stays to float32 (precision_agreement)."""
    from . import compile

    row = compare_with_onnxruntime(graph, threads=threads, runs=runs, precision=precision)
    print(format_table([row]))
    if precision != "fp32":
        fp32 = compile(graph, target="llvm", threads=threads)
        print(format_agreement(precision_agreement(row["model"], fp32, samples), precision))
    print(f"compile (cold or cached): {row['compile_s'] * 1e3:.0f} ms; "
          f"workspace arena: {row['memory_bytes'] or 0} bytes")
    model = row["model"]
    if profile or on_profile is not None:
        layers = model.profile(*row["inputs"])
        if profile:
            print("\nper-layer profile (instrumented build of the same kernels):")
            print(format_profile(layers))
        if on_profile is not None:
            on_profile(layers)
    return 0
