"""The command line: every command on real files, and user mistakes as one-line errors."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from graphcnn.cli import main

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def test_demo_prints_the_lesson_and_agrees(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "    4     3     4" in out  # the lesson's feature map row
    assert "summary:" in out and "agree" in out and "DISAGREE" not in out


def test_show_prints_ir_and_writes_svg(tmp_path, capsys):
    svg = tmp_path / "g.svg"
    assert main(["show", os.path.join(EXAMPLES, "lenet.py"), "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph lenet(%input: f32[1,1,28,28]) {") and "softmax" in out
    text = svg.read_text()
    assert text.startswith("<svg") and text.count("<rect") == 14  # input + 13 nodes


def test_export_then_run_the_onnx_file(tmp_path, capsys):
    onnx_path = tmp_path / "lenet.onnx"
    assert main(["export", os.path.join(EXAMPLES, "lenet.py"), "-o", str(onnx_path)]) == 0
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out_path = tmp_path / "y.npy"
    assert main(["run", str(onnx_path), "--target", "reference", "--input", str(tmp_path / "x.npy"),
                 "-o", str(out_path)]) == 0
    y = np.load(out_path)
    assert y.shape == (1, 10) and abs(float(y.sum()) - 1) < 1e-5


@pytest.mark.parametrize("argv,message", [
    (["show", "no-such-model.onnx"], "no such file"),
    (["run", "no-such-model.onnx"], "no such file"),
])
def test_user_mistakes_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphcnn: error:") and message in err and "Traceback" not in err


def test_garbage_model_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx model at all\xff" * 10)
    proc = subprocess.run([sys.executable, "-m", "graphcnn", "show", str(bad)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("graphcnn: error:") and "Traceback" not in proc.stderr


def test_dsl_file_without_a_model_is_explained(tmp_path, capsys):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert main(["show", str(empty)]) == 1
    assert "define `graph`" in capsys.readouterr().err
