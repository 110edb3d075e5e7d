"""examples/c: `make` in a copy builds the library with the real `graphcnn compile`, links the
C caller and runs it; its printed outputs match the reference interpreter."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from graphcnn.backends.llvm.aot import find_cc

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.skipif(find_cc() is None or shutil.which("make") is None, reason="no cc or make")
def test_make_builds_and_runs_the_c_example(tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["make", "-C", str(tmp_path / "examples" / "c")], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = np.array([float(v) for v in re.findall(r"\] = (\S+)", proc.stdout)], np.float32)
    # the reference in a fresh process too: the example's layers draw their weights from the
    # default seed, which earlier tests in this process may have moved
    x = ((np.arange(784) * 37) % 101).astype(np.float32) / np.float32(101)
    np.save(tmp_path / "x.npy", x.reshape(1, 1, 28, 28))
    ref = subprocess.run([str(Path(sys.executable).parent / "graphcnn"), "run",
                          str(EXAMPLES / "lenet.py"), "--target", "reference", "--input",
                          str(tmp_path / "x.npy"), "--json"], capture_output=True, text=True,
                         timeout=120, check=True)
    want = np.array(json.loads(ref.stdout)["outputs"][0]["values"], np.float32).ravel()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert f"class {int(np.argmax(want))}" in proc.stdout
