"""cm.profile(x) on every target (graphcnn/profiling.py): one row per layer with node, op and
seconds, exportable as a Chrome trace; `--trace` on `graphcnn run` and `graphcnn bench`."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from debug_models import conv_bn_relu, fallback_model, onnx_model

import graphcnn as gc
from graphcnn.profiling import Profile

GRAPHCNN = str(Path(sys.executable).parent / "graphcnn")


def x_for(graph: gc.Graph) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(graph.inputs[0].type.shape).astype(np.float32)


def check_trace(trace: dict, rows: list[dict]) -> None:
    """Perfetto's Trace Event Format: complete ("X") events, one per row, end to end."""
    json.dumps(trace)  # serialisable as it is
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert [e["name"] for e in events] == [r["node"] for r in rows]
    assert [e["cat"] for e in events] == [r["op"] for r in rows]
    for e, r in zip(events, rows):
        assert e["dur"] == pytest.approx(r["seconds"] * 1e6) and e["dur"] >= 0
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
    for a, b in itertools.pairwise(events):
        assert b["ts"] == pytest.approx(a["ts"] + a["dur"])


def test_reference_times_every_node_of_its_graph():
    graph = conv_bn_relu()
    cm = gc.compile(graph, target="reference")
    prof = cm.profile(x_for(graph), runs=2)
    assert isinstance(prof, Profile) and prof.target == "reference"
    assert [(r["node"], r["op"]) for r in prof] == [(n.name, n.op) for n in graph.nodes]
    assert all(r["seconds"] > 0 for r in prof)
    check_trace(prof.to_chrome_trace(), prof)


def test_llvm_rows_are_its_kernels():
    graph = conv_bn_relu()
    cm = gc.compile(graph, target="llvm")
    prof = cm.profile(x_for(graph), runs=2)
    assert [r["node"] for r in prof] == [k["node"] for k in cm.kernels]
    assert "conv" in {r["op"] for r in prof} and all("flops" in r for r in prof)
    check_trace(prof.to_chrome_trace(), prof)
    assert prof.total_seconds == pytest.approx(sum(r["seconds"] for r in prof))


def test_onnxruntime_rows_come_from_its_profiler():
    graph = gc.from_onnx(onnx_model())
    cm = gc.compile(graph, target="onnxruntime")
    prof = cm.profile(x_for(graph), runs=3)
    assert "Conv" in {r["op"] for r in prof} and "GlobalAveragePool" in {r["op"] for r in prof}
    assert all(r["provider"] for r in prof) and all(r["seconds"] > 0 for r in prof)
    check_trace(prof.to_chrome_trace(), prof)


def test_fallback_profiles_native_kernels_and_onnxruntime_regions():
    model = fallback_model()
    graph = gc.from_onnx(model, unsupported="keep")
    assert [n.op for n in graph.nodes].count("onnx_node") == 1, "Hardmax has a native op now"
    cm = gc.compile(graph, target="llvm", fallback="onnxruntime")
    prof = cm.profile(x_for(graph), runs=2)
    ops = [r["op"] for r in prof]
    assert "onnxruntime:Hardmax" in ops and ops.count("conv") == 2
    check_trace(prof.to_chrome_trace(), prof)


def test_profile_checks_its_inputs():
    cm = gc.compile(conv_bn_relu(), target="reference")
    with pytest.raises(gc.InputError, match="runs"):
        cm.profile(x_for(cm.graph), runs=0)
    with pytest.raises(gc.InputError, match="shape"):
        cm.profile(x_for(cm.graph)[:, :2])


def cli(*argv) -> subprocess.CompletedProcess:
    proc = subprocess.run([GRAPHCNN, *map(str, argv)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.parametrize("target", ["reference", "llvm", "onnxruntime"])
def test_run_writes_a_trace(tmp_path, target):
    onnx.save(onnx_model(), tmp_path / "m.onnx")
    proc = cli("run", tmp_path / "m.onnx", "--target", target, "--trace", tmp_path / "t.json")
    assert f"wrote {tmp_path / 't.json'}" in proc.stderr
    trace = json.loads((tmp_path / "t.json").read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert events and all({"name", "cat", "ts", "dur"} <= set(e) for e in events)


def test_bench_writes_the_llvm_trace(tmp_path):
    onnx.save(onnx_model(), tmp_path / "m.onnx")
    cli("bench", tmp_path / "m.onnx", "--runs", "5", "--json", "--trace", tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert "conv" in {e.get("cat") for e in events}
    assert os.path.getsize(tmp_path / "t.json") > 0


def test_chart_draws_the_slowest_layers_first():
    """The SVG bar chart: well-formed XML, one bar per layer up to `top`, slowest first, bar
    lengths in proportion to the times, names escaped."""
    import xml.etree.ElementTree as ET

    prof = Profile([{"node": "conv<1>", "op": "conv", "seconds": 2e-3},
                    {"node": "relu_1", "op": "relu", "seconds": 5e-4},
                    {"node": "dense&1", "op": "dense", "seconds": 1e-3}], target="llvm")
    svg = ET.fromstring(prof.to_svg())
    ns = "{http://www.w3.org/2000/svg}"
    bars = svg.findall(f"{ns}rect")
    assert [b.find(f"{ns}title").text for b in bars] == ["conv<1>", "dense&1", "relu_1"]
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] == pytest.approx(2 * widths[1]) == pytest.approx(4 * widths[2])
    assert len({b.get("fill") for b in bars}) == 3  # one colour per op type
    assert len(ET.fromstring(prof.to_svg(top=2)).findall(f"{ns}rect")) == 2


def test_run_writes_a_chart_for_an_svg_path(tmp_path):
    import xml.etree.ElementTree as ET

    onnx.save(onnx_model(), tmp_path / "m.onnx")
    proc = cli("run", tmp_path / "m.onnx", "--trace", tmp_path / "layers.svg")
    assert "bar chart" in proc.stderr
    bars = ET.parse(tmp_path / "layers.svg").getroot().findall(
        "{http://www.w3.org/2000/svg}rect")
    assert bars
