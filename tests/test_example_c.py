"""examples/c: `make` in a copy builds the library with the real `graphcnn compile`, links the
C caller and runs it; its printed outputs match the reference interpreter."""
from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from graphcnn.backends.llvm.aot import find_cc
from graphcnn.backends.reference import interpret

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.skipif(find_cc() is None or shutil.which("make") is None, reason="no cc or make")
def test_make_builds_and_runs_the_c_example(tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["make", "-C", str(tmp_path / "examples" / "c")], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.array([float(v) for v in re.findall(r"\] = (\S+)", proc.stdout)], np.float32)
    scope = runpy.run_path(str(EXAMPLES / "lenet.py"), run_name="graphcnn_model")
    graph = scope["model"].build(tuple(scope["input_shape"]), name="lenet")
    x = ((np.arange(graph.inputs[0].type.size) * 37) % 101).astype(np.float32) / np.float32(101)
    want = interpret(graph, [x.reshape(graph.inputs[0].type.shape)])[0].ravel()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert f"class {int(np.argmax(want))}" in proc.stdout
