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


def _symbolic_model(path) -> None:
    """A conv over an input whose H and W are symbolic, plus a CumSum (no graphcnn op)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(3).standard_normal((2, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("CumSum", ["c", "axis"], ["y"])]
    graph = helper.make_graph(
        nodes, "sym", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, "H", "W"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(2, np.int64), "axis")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_input_shape_and_fallback(tmp_path, capsys):
    path = tmp_path / "sym.onnx"
    _symbolic_model(path)
    assert main(["run", str(path), "--input-shape", "x=1x3x6x5"]) == 1
    assert "CumSum" in capsys.readouterr().err  # unsupported without a fallback
    out_file = tmp_path / "y.npy"
    assert main(["run", str(path), "--input-shape", "x=1x3x6x5", "--fallback", "onnxruntime",
                 "-o", str(out_file)]) == 0
    assert "y: float32[1, 2, 6, 5]" in capsys.readouterr().out
    import onnxruntime as ort

    from graphcnn.cli import load_model, random_inputs
    x = random_inputs(load_model(str(path), ["x=1x3x6x5"], keep=True))[0]
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_allclose(np.load(out_file), want, rtol=1e-5, atol=1e-5)
    assert main(["show", str(path), "--input-shape", "x=1x3x4x4", "--keep-unsupported"]) == 0
    assert "onnx_node" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["x=1x3xHx5", "x", "=1x3", "x=1x0x4x4"])
def test_bad_input_shape_is_a_clean_error(spec, tmp_path, capsys):
    path = tmp_path / "sym.onnx"
    _symbolic_model(path)
    assert main(["show", str(path), "--input-shape", spec]) == 1
    assert "--input-shape" in capsys.readouterr().err


def test_batch_rebinds_the_file(tmp_path, capsys):
    path = tmp_path / "sym.onnx"
    _symbolic_model(path)
    assert main(["run", str(path), "--input-shape", "x=1x3x6x5", "--fallback", "onnxruntime",
                 "--batch", "1"]) == 0
    capsys.readouterr()
    # the kept CumSum is not provably per sample: a re-bound batch is refused, naming it
    assert main(["run", str(path), "--input-shape", "x=1x3x6x5", "--fallback", "onnxruntime",
                 "--batch", "2"]) == 1
    assert "re-bind the batch" in capsys.readouterr().err
