"""Progress reports (graphcnn/progress.py): the stages a small model goes through, in order,
through `progress=` callables; the terminal line's formatter; nothing written when stderr is
not a terminal; the CLI's line on a pseudo-terminal, and none with --quiet."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import numpy as np
import onnx
import pytest
from graphcnn.passes import pass_names
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

import graphcnn as gc
from graphcnn import progress
from graphcnn.errors import InvalidOptionError
from graphcnn.progress import TerminalProgress, format_line, report, reporting


def small_onnx() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool")]
    graph = h.make_graph(nodes, "small", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                   [1, 3, 8, 8])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], [w])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


class Recorder:
    def __init__(self):
        self.events: list[tuple[str, int, int | None, str]] = []

    def __call__(self, stage, done, total, detail=""):
        self.events.append((stage, done, total, detail))

    def stages(self) -> list[str]:
        out: list[str] = []
        for stage, *_ in self.events:
            if not out or out[-1] != stage:
                out.append(stage)
        return out

    def of(self, stage: str) -> list[tuple[int, int | None, str]]:
        return [e[1:] for e in self.events if e[0] == stage]


def assert_counts_up_to_the_total(events) -> None:
    dones = [done for done, _, _ in events]
    totals = {total for _, total, _ in events}
    assert dones == sorted(dones) and len(totals) == 1 and dones[-1] == totals.pop()


def test_import_reports_each_node_in_order():
    rec = Recorder()
    gc.from_onnx(small_onnx(), progress=rec)
    assert rec.stages() == ["import"]
    assert rec.of("import") == [(0, 3, "Conv"), (1, 3, "Relu"), (2, 3, "MaxPool"), (3, 3, "")]


def test_compile_reports_passes_lowering_and_each_module(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    graph = gc.from_onnx(small_onnx())
    rec = Recorder()
    cm = gc.compile(graph, target="llvm", progress=rec)
    assert rec.stages() == ["passes", "lower", "compile"]
    passes = rec.of("passes")
    assert [d for _, _, d in passes[:-1]] == pass_names(2, "llvm")
    assert_counts_up_to_the_total(passes)
    assert rec.of("lower") == [(0, 1, graph.name), (1, 1, "")]
    modules = rec.of("compile")
    assert_counts_up_to_the_total(modules)
    assert len(modules) == len(cm._objects) + 1  # one per module before it, then the end
    from graphcnn.backends.llvm import cache

    cache.flush()
    again = Recorder()
    assert gc.compile(graph, target="llvm", progress=again).from_cache
    assert again.events == []  # a hit runs no pass and compiles nothing


def test_reference_target_reports_only_passes_asked_for():
    rec = Recorder()
    gc.compile(gc.from_onnx(small_onnx()), target="reference", progress=rec)
    assert rec.events == []  # opt level 0: nothing runs
    gc.compile(gc.from_onnx(small_onnx()), target="reference", opt_level=1, progress=rec)
    assert rec.stages() == ["passes"]


@pytest.mark.parametrize("bad", ["yes", 1, object()])
def test_bad_progress_argument(bad):
    with pytest.raises(InvalidOptionError, match="progress"):
        gc.compile(gc.from_onnx(small_onnx()), target="reference", progress=bad)
    with pytest.raises(InvalidOptionError, match="progress"):
        gc.from_onnx(small_onnx(), progress=bad)


def test_reports_without_a_sink_do_nothing_and_sinks_nest():
    report("passes", 1, 2, "x")  # no sink: no error, nothing to see
    outer, inner = Recorder(), Recorder()
    with reporting(outer):
        report("a", 0, 1)
        with reporting(inner):
            report("b", 0, 1)
        with reporting(None):  # None keeps the current sink
            report("c", 1, 1)
    report("d", 1, 1)
    assert [e[0] for e in outer.events] == ["a", "c"] and [e[0] for e in inner.events] == ["b"]


def test_format_line():
    assert format_line("passes", 12, 31, "fuse-conv-activation") == (
        "graphcnn passes   [#######-------------]  12/31 fuse-conv-activation")
    assert format_line("compile", 2, 2) == "graphcnn compile  [####################]   2/2"
    assert format_line("lower", 3, None, "net") == "graphcnn lower    3 net"
    long = format_line("import", 1, 10, "x" * 200, width=60)
    assert len(long) == 60 and long.endswith("...")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_line_is_rewritten_and_erased(monkeypatch):
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 0.0)
    out = FakeTerminal()
    sink = TerminalProgress(out)
    with reporting(sink):
        report("passes", 0, 2, "cse")
        report("passes", 1, 2, "dce")
        report("passes", 2, 2)
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 3 and "0/2 cse" in text and "1/2 dce" in text
    assert text.endswith("\r\x1b[K")  # the stage ended: the line is erased


def test_not_a_terminal_writes_nothing():
    out = io.StringIO()
    with reporting(TerminalProgress(out)):
        gc.from_onnx(small_onnx())
        report("passes", 0, 2, "cse")
    assert out.getvalue() == ""


def run_cli(tmp_path, *extra: str, tty: bool) -> tuple[int, str, str]:
    """`graphcnn run` on the small model, stderr a pseudo-terminal (or a pipe)."""
    path = tmp_path / "small.onnx"
    onnx.save(small_onnx(), path)
    env = {**os.environ, "GRAPHCNN_CACHE": "off"}
    cmd = [sys.executable, "-m", "graphcnn", "run", str(path), *extra]
    if not tty:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        return proc.returncode, proc.stdout, proc.stderr
    import pty

    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    out, _ = proc.communicate(timeout=600)
    reader.join(timeout=600)
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals")
def test_cli_progress_on_a_terminal_and_quiet(tmp_path):
    code, out, err = run_cli(tmp_path, tty=True)
    assert code == 0 and out.strip() and "\x1b" not in out  # the line is on stderr only
    assert "graphcnn import" in err and "graphcnn passes" in err and err.endswith("\x1b[K")
    code, out, err = run_cli(tmp_path, "--quiet", tty=True)
    assert code == 0 and err == ""


def test_cli_prints_no_progress_into_a_pipe(tmp_path):
    code, out, err = run_cli(tmp_path, tty=False)
    assert out.strip() and "\x1b" not in out
    assert code == 0 and err == ""


def test_redraws_are_throttled_but_a_new_stage_is_drawn(monkeypatch):
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 1e9)  # no time-based redraw at all
    out = FakeTerminal()
    sink = TerminalProgress(out)
    sink("import", 0, 9, "Conv")
    sink("import", 1, 9, "Relu")   # same stage, too soon: skipped
    sink("passes", 0, 3, "cse")    # a new stage: drawn
    text = out.getvalue()
    assert "0/9 Conv" in text and "Relu" not in text and "0/3 cse" in text
