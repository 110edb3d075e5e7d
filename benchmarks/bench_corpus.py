"""The real-model corpus against onnxruntime (and OpenVINO when installed) on the same files.

    python benchmarks/bench_corpus.py                       # every torch export, full size, batch 1
    python benchmarks/bench_corpus.py --models resnet50,efficientnet_b0 --exporters dynamo
    python benchmarks/bench_corpus.py --light               # also the onnx wheel's light models
    python benchmarks/bench_corpus.py --json out.json --write-doc

Each model is the file a PyTorch user gets from torch.onnx.export (tests/torch_corpus.py, both
exporters, full width and resolution) or a light model shipped in the onnx wheel. graphcnn
imports the file and compiles it for llvm (natively, or with fallback="onnxruntime" where it
cannot, which the table says); onnxruntime runs the same file at its best of 1, 2 and the default
thread count; OpenVINO (`pip install openvino`, the `bench` extra) at f32 and at its default
precision, which uses bf16 where the CPU has AMX. The runners alternate in one process with an
idle gap before each block (graphcnn.bench.time_alternating); ratios are of medians and
speedup > 1 means graphcnn is faster. `--write-doc` puts the table into docs/onnx-support.md
between its corpus-table markers.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import graphcnn as gc
from graphcnn.bench import time_alternating
from graphcnn.errors import UnsupportedOpError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
DOC = ROOT / "docs" / "onnx-support.md"
BEGIN, END = "<!-- corpus table: begin -->", "<!-- corpus table: end -->"


def _rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    diff = np.linalg.norm(got.astype(np.float64) - want)
    return float(diff / max(np.linalg.norm(want), 1e-30))


def _onnxruntime_session(path: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _openvino_runners(path: str, feed: dict) -> dict:
    try:
        import openvino as ov
    except ImportError:
        return {}
    core = ov.Core()
    runners = {}
    for label, config in (("openvino-f32", {"INFERENCE_PRECISION_HINT": "f32"}),
                          ("openvino-default", {})):
        compiled = core.compile_model(path, "CPU", {**config, "INFERENCE_NUM_THREADS": 2})
        request = compiled.create_infer_request()
        runners[label] = (lambda r=request: r.infer(feed))
    return runners


def _graphcnn(path: str) -> tuple[object, str]:
    try:
        return gc.compile(gc.from_onnx(path), target="llvm", threads=2), "native"
    except UnsupportedOpError:
        graph = gc.from_onnx(path, unsupported="keep")
        return gc.compile(graph, target="llvm", threads=2, fallback="onnxruntime"), "fallback"


def bench_file(name: str, exporter: str, path: str, runs: int, budget_s: float) -> dict:
    session = _onnxruntime_session(path, 0)
    rng = np.random.default_rng(0)
    feed = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if "int" in i.type:
            feed[i.name] = rng.integers(0, 100, shape).astype(np.int64)
        else:
            feed[i.name] = rng.standard_normal(shape).astype(np.float32)
    want = session.run(None, feed)[0]
    model, placement = _graphcnn(path)
    args = list(feed.values())
    got = model(*args)
    got = got[0] if isinstance(got, tuple) else got
    runners = {"graphcnn": lambda: model(*args)}
    # onnxruntime at its best thread setting: time each briefly, keep the fastest
    ort_best = min(((t, _onnxruntime_session(path, t)) for t in (1, 2, 0)),
                   key=lambda ts: time_alternating({"s": lambda s=ts[1]: s.run(None, feed)},
                                                   runs=10, budget_s=5)["s"])
    runners["onnxruntime"] = lambda s=ort_best[1]: s.run(None, feed)
    runners.update(_openvino_runners(path, feed))
    medians = time_alternating(runners, runs=runs, budget_s=budget_s)
    row = {"model": name, "exporter": exporter, "placement": placement,
           "rel_l2": _rel_l2(got, want), "ort_threads": ort_best[0],
           "ms": {k: v * 1e3 for k, v in medians.items()}}
    row["speedup"] = {k: medians[k] / medians["graphcnn"] for k in medians if k != "graphcnn"}
    return row


def corpus_files(models: list[str], exporters: list[str], light: bool):
    from torch_corpus import export
    from torch_zoo import ARCHITECTURES

    for name in models or list(ARCHITECTURES):
        arch = ARCHITECTURES[name]
        for exporter in exporters:
            yield name, exporter, str(export(name, exporter, width=1.0, size=arch.full_size).path)
    if light:
        import onnx
        for path in sorted((Path(onnx.__file__).parent / "backend/test/data/light").glob("*.onnx")):
            yield path.stem.removeprefix("light_"), "onnx wheel", str(path)


def format_rows(rows: list[dict]) -> str:
    peers = [k for k in ("onnxruntime", "openvino-f32", "openvino-default")
             if any(k in r["speedup"] for r in rows)]
    head = ("| model | exporter | graphcnn | rel L2 vs onnxruntime | graphcnn ms | "
            + " | ".join(f"vs {p}" for p in peers) + " |")
    lines = [head, "|" + "---|" * (5 + len(peers))]
    for r in rows:
        cells = [f"{r['speedup'][p]:.2f}x" if p in r["speedup"] else "-" for p in peers]
        lines.append(f"| {r['model']} | {r['exporter']} | {r['placement']} | {r['rel_l2']:.1e} | "
                     f"{r['ms']['graphcnn']:.2f} | " + " | ".join(cells) + " |")
    for p in peers:
        ratios = [r["speedup"][p] for r in rows if p in r["speedup"]]
        geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
        lines.append(f"\ngeomean speedup vs {p}: {geo:.2f}x over {len(ratios)} models, "
                     f"lowest {min(ratios):.2f}x")
    return "\n".join(lines)


def write_doc(table: str, command: str) -> None:
    text = DOC.read_text()
    stamp = (f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}, "
             f"{platform.processor() or platform.machine()}, 2 threads.")
    section = f"{BEGIN}\n{stamp}\n\n{table}\n{END}"
    if BEGIN in text:
        start, end = text.index(BEGIN), text.index(END) + len(END)
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n## The model corpus\n\n" + section + "\n"
    # tools/gen_onnx_support.py keeps everything from that heading on when it regenerates
    DOC.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="", help="comma-separated torch_zoo names (default: all)")
    p.add_argument("--exporters", default="dynamo,torchscript")
    p.add_argument("--light", action="store_true", help="also the onnx wheel's light models")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--budget", type=float, default=30.0, help="seconds per model at most")
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    p.add_argument("--write-doc", action="store_true", help="put the table in docs/onnx-support.md")
    args = p.parse_args()
    if args.runs < 1 or args.budget <= 0:
        p.error("--runs must be >= 1 and --budget > 0")
    models = [m for m in args.models.split(",") if m]
    rows = []
    for name, exporter, path in corpus_files(models, args.exporters.split(","), args.light):
        row = bench_file(name, exporter, path, args.runs, args.budget)
        rows.append(row)
        print(format_rows([row]).splitlines()[2], flush=True)
    table = format_rows(rows)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.write_doc:
        write_doc(table, "python benchmarks/bench_corpus.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
