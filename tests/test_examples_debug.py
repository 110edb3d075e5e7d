"""examples/taps_debug.py runs as a user runs it, and `graphcnn debug` accepts it as a model file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "taps_debug.py"
GRAPHCNN = str(Path(sys.executable).parent / "graphcnn")


def test_taps_debug_example_runs(tmp_path):
    trace = tmp_path / "trace.json"
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(trace)], capture_output=True,
                          text=True, timeout=600, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "batch_norm" not in proc.stdout.splitlines()[0]  # fused away natively
    assert "%bn_1" in proc.stdout and "unknown tap:" in proc.stdout and "closest" in proc.stdout
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["ph"] == "X" and e["cat"] == "conv" for e in events)


def test_debug_command_takes_the_example():
    proc = subprocess.run([GRAPHCNN, "debug", str(EXAMPLE)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "-> agrees" in proc.stdout
