"""`graphcnn debug` through the installed entry point in a subprocess: agreement, and a fault
injected by the test-only GRAPHCNN_TEST_FAULT pass (passes/fault_injection.py) named by pass
and by node."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from debug_models import onnx_model

GRAPHCNN = str(Path(sys.executable).parent / "graphcnn")
HERE = os.path.dirname(os.path.abspath(__file__))


def debug(*argv, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GRAPHCNN_TEST_FAULT"}
    if fault:
        env["GRAPHCNN_TEST_FAULT"] = fault
    return subprocess.run([GRAPHCNN, "debug", *map(str, argv)], capture_output=True, text=True,
                          timeout=300, check=False, env=env)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("debug")
    onnx.save(onnx_model(), tmp / "named.onnx")
    (tmp / "cnn.py").write_text(f"import sys\nsys.path.insert(0, {HERE!r})\n"
                                "from debug_models import conv_bn_relu\ngraph = conv_bn_relu()\n")
    return {"named": tmp / "named.onnx", "cnn": tmp / "cnn.py"}


@pytest.mark.parametrize("target", ["llvm", "onnxruntime"])
def test_a_correct_target_agrees(files, target):
    proc = debug(files["cnn"], "--target", target)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"target {target}: output rel L2" in proc.stdout and "-> agrees" in proc.stdout
    assert "fold-batch-norm" in proc.stdout and "first bad" not in proc.stdout


def test_an_injected_fault_is_named_by_pass_and_node(files):
    proc = debug(files["cnn"], "--tol", "1e-4", fault="conv_1")
    assert proc.returncode == 1, proc.stderr[-2000:]
    out = proc.stdout
    assert "DIVERGES" in out
    assert "first bad pass: inject-fault (#5)" in out  # right after cse, the default spot
    assert "first bad node: conv_1 (conv)" in out
    # the node's inputs: the activation agrees with the reference, the weight is a constant
    assert "input %max_pool: shape [1, 8, 8, 8]" in out and "input %conv_1.weight:" in out
    stats = next(line for line in out.splitlines() if line.startswith("  input %max_pool"))
    assert float(stats.rsplit("rel L2 ", 1)[1]) < 1e-4


def test_a_fault_late_in_the_pipeline_on_an_onnx_model(files):
    """After fusion the conv carries the folded bn and the relu; the first bad value of the
    graph as imported is still the conv's output."""
    proc = debug(files["named"], "--target", "llvm", fault="conv_out@fuse-conv-activation")
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    bad = [line for line in lines if "<- first out of tolerance" in line]
    assert len(bad) == 1 and "inject-fault" in bad[0]
    before = lines[lines.index(bad[0]) - 1]
    assert "fuse-conv-activation" in before
    assert "first bad node: Conv_0 (conv) -> %conv_out" in proc.stdout  # ONNX node, value
    assert "input %x: shape [1, 4, 8, 8]" in proc.stdout


def test_a_fault_only_in_a_fused_kernel_is_blamed_on_fusion(files):
    """The tapped build keeps every value, so the conv it runs has no fused relu and no fault:
    every node agrees there, and the report says the fault is in a fusion."""
    proc = debug(files["named"], fault="fused:conv_out@fuse-conv-activation")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "inject-fault" in next(line for line in proc.stdout.splitlines()
                                  if "<- first out of tolerance" in line)
    assert "first bad node: none" in proc.stdout and "fault is in a fusion" in proc.stdout


def test_bad_tolerance_is_a_one_line_error(files):
    proc = debug(files["cnn"], "--tol", "0")
    assert proc.returncode == 1
    assert proc.stderr.startswith("graphcnn: error: --tol must be positive")
