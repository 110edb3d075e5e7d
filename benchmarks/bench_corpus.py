"""The real-model corpus against onnxruntime (and OpenVINO when installed) on the same files.

    python benchmarks/bench_corpus.py                       # every torch export, full size, batch 1
    python benchmarks/bench_corpus.py --models resnet50,efficientnet_b0 --exporters dynamo
    python benchmarks/bench_corpus.py --light               # also the onnx wheel's light models
    python benchmarks/bench_corpus.py --json out.json --write-doc
    python benchmarks/bench_corpus.py --precision fp32,bf16 # also graphcnn in bf16

Each model is the file a PyTorch user gets from torch.onnx.export (tests/torch_corpus.py, both
exporters, full width and resolution) or a light model shipped in the onnx wheel. graphcnn
imports the file and compiles it for llvm (natively, or with fallback="onnxruntime" where it
cannot, which the table says); onnxruntime runs the same file at its best of 1, 2 and the default
thread count; OpenVINO (`pip install openvino`, the `bench` extra) at f32 and at its default
precision, which uses bf16 where the CPU has AVX512-BF16 or AMX; graphcnn at each `--precision`
(bf16: its speedup is against OpenVINO's default, and its agreement with graphcnn's float32 over
`--samples` random inputs is in the row). The runners alternate in one process with an
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
from graphcnn.bench import precision_agreement, time_alternating
from graphcnn.errors import GraphcnnError, UnsupportedOpError

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


def _graphcnn(path: str, precision: str = "fp32") -> tuple[object, str]:
    try:
        return gc.compile(gc.from_onnx(path), target="llvm", threads=2,
                          precision=precision), "native"
    except UnsupportedOpError:
        graph = gc.from_onnx(path, unsupported="keep")
        return gc.compile(graph, target="llvm", threads=2, fallback="onnxruntime",
                          precision=precision), "fallback"


def bench_file(name: str, exporter: str, path: str, runs: int, budget_s: float,
               precisions: tuple[str, ...] = ("fp32",), samples: int = 20) -> dict:
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
    extra = {}
    for precision in precisions:
        if precision != "fp32":
            low, _ = _graphcnn(path, precision)
            runners[f"graphcnn-{precision}"] = lambda m=low: m(*args)
            extra[precision] = low
    medians = time_alternating(runners, runs=runs, budget_s=budget_s)
    row = {"model": name, "exporter": exporter, "placement": placement,
           "rel_l2": _rel_l2(got, want), "ort_threads": ort_best[0],
           "ms": {k: v * 1e3 for k, v in medians.items()}}
    peers = [k for k in medians if not k.startswith("graphcnn")]
    row["speedup"] = {k: medians[k] / medians["graphcnn"] for k in peers}
    for precision, low in extra.items():
        mine = medians[f"graphcnn-{precision}"]
        row[f"speedup_{precision}"] = {k: medians[k] / mine for k in peers}
        # its rel L2 against graphcnn's float32 and the top-1 / top-5 agreement of a classifier
        row[f"agreement_{precision}"] = precision_agreement(low, model, samples)
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


def _geomean(ratios: list[float]) -> float:
    return math.exp(sum(map(math.log, ratios)) / len(ratios))


def format_rows(rows: list[dict]) -> str:
    peers = [k for k in ("onnxruntime", "openvino-f32", "openvino-default")
             if any(k in r["speedup"] for r in rows)]
    bf16 = any("speedup_bf16" in r for r in rows) and "openvino-default" in peers
    head = ("| model | exporter | graphcnn | rel L2 vs onnxruntime | graphcnn ms | "
            + " | ".join(f"vs {p}" for p in peers)
            + (" | bf16 ms | bf16 vs openvino-default | bf16 rel L2 | bf16 top-1" if bf16 else "")
            + " |")
    lines = [head, "|" + "---|" * (5 + len(peers) + 4 * bf16)]
    for r in rows:
        cells = [f"{r['speedup'][p]:.2f}x" if p in r["speedup"] else "-" for p in peers]
        if bf16:
            agree = r.get("agreement_bf16", {})
            cells += [f"{r['ms']['graphcnn-bf16']:.2f}" if "graphcnn-bf16" in r["ms"] else "-",
                      f"{r['speedup_bf16']['openvino-default']:.2f}x"
                      if "openvino-default" in r.get("speedup_bf16", {}) else "-",
                      f"{agree['rel_l2']:.1e}" if "rel_l2" in agree else "-",
                      f"{100 * agree['top1']:.0f}%" if "top1" in agree else "-"]
        lines.append(f"| {r['model']} | {r['exporter']} | {r['placement']} | {r['rel_l2']:.1e} | "
                     f"{r['ms']['graphcnn']:.2f} | " + " | ".join(cells) + " |")
    for p in peers:
        ratios = [r["speedup"][p] for r in rows if p in r["speedup"]]
        lines.append(f"\ngeomean speedup vs {p}: {_geomean(ratios):.2f}x over {len(ratios)} "
                     f"models, lowest {min(ratios):.2f}x")
    if bf16:
        ratios = [r["speedup_bf16"]["openvino-default"] for r in rows
                  if "openvino-default" in r.get("speedup_bf16", {})]
        lines.append(f"\ngeomean speedup of graphcnn bf16 vs openvino-default: "
                     f"{_geomean(ratios):.2f}x over {len(ratios)} models, "
                     f"lowest {min(ratios):.2f}x")
    return "\n".join(lines)


def machine() -> str:
    """The CPU as /proc/cpuinfo names it, with the flags the precisions depend on."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    have = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(have) or 'no AVX-512'})"


def stamp(command: str) -> str:
    return (f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}, {machine()}, "
            "2 threads.")


README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- performance table: begin -->", "<!-- performance table: end -->"


def readme_table(rows: list[dict]) -> str:
    """The README's summary: per model graphcnn's time and its ratios to each peer (fp32
    against onnxruntime and OpenVINO f32, bf16 against OpenVINO's default), then geomeans."""
    bf16 = any("speedup_bf16" in r for r in rows)
    head = "| model | exporter | graphcnn ms | vs onnxruntime | vs OpenVINO f32 |"
    if bf16:
        head += " bf16 ms | bf16 vs OpenVINO default |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def ratio(r: dict, key: str, peer: str) -> str:
        value = r.get(key, {}).get(peer)
        return f"{value:.2f}x" if value is not None else "-"

    for r in rows:
        line = (f"| {r['model']} | {r['exporter']} | {r['ms']['graphcnn']:.2f} | "
                f"{ratio(r, 'speedup', 'onnxruntime')} | {ratio(r, 'speedup', 'openvino-f32')} |")
        if bf16:
            ms = r["ms"].get("graphcnn-bf16")
            line += (f" {ms:.2f} |" if ms is not None else " - |") + \
                f" {ratio(r, 'speedup_bf16', 'openvino-default')} |"
        lines.append(line)
    lines.append("")
    for key, peer, what in (("speedup", "onnxruntime", "fp32 vs onnxruntime"),
                            ("speedup", "openvino-f32", "fp32 vs OpenVINO f32"),
                            ("speedup_bf16", "openvino-default", "bf16 vs OpenVINO default")):
        ratios = [r[key][peer] for r in rows if peer in r.get(key, {})]
        if ratios:
            lines.append(f"- geomean {what}: {_geomean(ratios):.2f}x over {len(ratios)} "
                         f"models, lowest {min(ratios):.2f}x")
    return "\n".join(lines)


def commands(rows: list[dict], command: str) -> str:
    """The commands that measured the rows (one, or a run and the re-runs merged into it)."""
    seen = list(dict.fromkeys(r.get("command", command) for r in rows)) or [command]
    return "` then `".join(seen)


def write_readme(rows: list[dict], command: str) -> None:
    text = README.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"{README} has no {README_BEGIN} ... {README_END} section")
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    section = (f"{README_BEGIN}\n{readme_table(rows)}\n\n{stamp(commands(rows, command))}\n"
               f"{README_END}")
    README.write_text(text[:start] + section + text[end:])


def write_doc(table: str, command: str) -> None:
    text = DOC.read_text()
    section = f"{BEGIN}\n{stamp(command)}\n\n{table}\n{END}"
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
    p.add_argument("--precision", default="fp32",
                   help="graphcnn's precisions, comma-separated (fp32 always runs): fp32,bf16")
    p.add_argument("--samples", type=int, default=20,
                   help="random inputs for a precision's agreement with float32")
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    p.add_argument("--write-doc", action="store_true", help="put the table in docs/onnx-support.md")
    p.add_argument("--write-readme", action="store_true",
                   help="put the summary table in README.md's performance section")
    p.add_argument("--from-json", metavar="PATH",
                   help="no measuring: the rows of an earlier --json run (for --write-*)")
    p.add_argument("--update-json", metavar="PATH",
                   help="put the rows measured now into PATH in place of the same (model, "
                        "exporter) rows; the tables then show all of PATH's rows")
    args = p.parse_args()
    if args.runs < 1 or args.budget <= 0:
        p.error("--runs must be >= 1 and --budget > 0")
    models = [m for m in args.models.split(",") if m]
    precisions = tuple(dict.fromkeys(["fp32", *(q for q in args.precision.split(",") if q)]))
    if not set(precisions) <= {"fp32", "bf16"}:
        p.error("--precision takes fp32 and bf16")
    rows, failed = [], []
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text())
        command = rows[0].get("command", "python benchmarks/bench_corpus.py") if rows else ""
    else:
        command = "python benchmarks/bench_corpus.py " + " ".join(
            a for a in sys.argv[1:] if not a.startswith("--write"))
        for name, exporter, path in corpus_files(models, args.exporters.split(","),
                                                 args.light):
            try:
                row = bench_file(name, exporter, path, args.runs, args.budget, precisions,
                                 args.samples)
            except GraphcnnError as e:  # a failure is a finding: report it, measure the rest
                print(f"| {name} | {exporter} | error: {type(e).__name__}: {e} |", flush=True)
                failed.append(f"{name} ({exporter}): {type(e).__name__}: {e}")
                continue
            row["command"] = command
            rows.append(row)
            print(format_rows([row]).splitlines()[2], flush=True)
    if args.update_json:
        merged = json.loads(Path(args.update_json).read_text())
        fresh = {(r["model"], r["exporter"]): r for r in rows}
        rows = [fresh.pop((r["model"], r["exporter"]), r) for r in merged] + list(fresh.values())
        Path(args.update_json).write_text(json.dumps(rows, indent=1))
    table = format_rows(rows)
    print(table)
    for line in failed:
        print(f"failed: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.write_doc:
        write_doc(table, commands(rows, command))
    if args.write_readme:
        write_readme(rows, command)


if __name__ == "__main__":
    main()
