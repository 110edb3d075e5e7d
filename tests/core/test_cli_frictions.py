"""CLI frictions, each through the installed `graphcnn` entry point in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphcnn as gc

GRAPHCNN = str(Path(sys.executable).parent / "graphcnn")
LENET = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "lenet.py")


def cli(*argv, check_rc: int | None = 0, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([GRAPHCNN, *map(str, argv)], capture_output=True, text=True,
                          timeout=300, check=False, **kwargs)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory) -> Path:
    """A DSL file with two inputs and two outputs."""
    path = tmp_path_factory.mktemp("m") / "two.py"
    path.write_text(
        "import graphcnn as gc\n"
        "b = gc.GraphBuilder('two')\n"
        "a = b.input('a', (2, 3))\n"
        "c = b.input('c', (2, 3))\n"
        "graph = b.build(gc.add(a, c), gc.ReLU()(a))\n")
    return path


def test_version():
    assert cli("--version").stdout.strip() == f"graphcnn {gc.__version__}"


def test_run_prints_latency_and_json(two_inputs):
    assert "latency:" in cli("run", two_inputs, "--target", "reference").stdout
    out = json.loads(cli("run", two_inputs, "--target", "reference", "--json").stdout)
    assert out["latency_ms"] > 0 and [o["shape"] for o in out["outputs"]] == [[2, 3], [2, 3]]


def test_several_outputs_go_to_a_directory(two_inputs, tmp_path):
    cli("run", two_inputs, "--target", "reference", "-o", tmp_path / "outs")
    names = sorted(p.name for p in (tmp_path / "outs").iterdir())
    assert len(names) == 2 and all(n.endswith(".npy") for n in names)


def test_partial_or_unknown_input_is_an_error(two_inputs, tmp_path):
    np.save(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    err = cli("run", two_inputs, "--input", f"a={tmp_path / 'a.npy'}", check_rc=1).stderr
    assert err.startswith("graphcnn: error:") and "['c']" in err
    err = cli("run", two_inputs, "--input", f"zz={tmp_path / 'a.npy'}", check_rc=1).stderr
    assert "no input 'zz'" in err


@pytest.mark.parametrize("flag", [["--timings"], ["--dump-dir", "d"], ["--print-after", "all"]])
def test_pass_flags_without_opt_are_errors(flag):
    assert "--opt" in cli("show", LENET, *flag, check_rc=1).stderr


@pytest.mark.parametrize("argv", [["bench", LENET, "--runs", "-5"],
                                  ["run", LENET, "--threads", "0"],
                                  ["compile", LENET, "-o", "x.so", "--cpu", "bogus"]])
def test_bad_numbers_and_cpus_are_rejected(argv):
    assert "error:" in cli(*argv, check_rc=2).stderr


def test_help_for_every_flag():
    for command in ("run", "show", "compile", "bench", "export", "demo"):
        text = cli(command, "--help").stdout
        options = [line.split()[0] for line in text.splitlines()
                   if line.startswith("  -") and len(line.split()) == 1]
        assert not options, f"{command}: flags without help: {options}"


def test_export_to_a_missing_directory(tmp_path):
    err = cli("export", LENET, "-o", tmp_path / "no" / "m.onnx", check_rc=1).stderr
    assert "does not exist" in err and "Traceback" not in err


def test_compile_with_name_and_cpu(tmp_path):
    cli("compile", LENET, "-o", tmp_path / "libx.so", "--name", "lenet", "--cpu", "x86-64-v3")
    header = (tmp_path / "libx.h").read_text()
    assert "int lenet_run(" in header and '#define LENET_CPU "x86-64-v3"' in header


def test_warnings_are_one_line(tmp_path):
    script = tmp_path / "warn.py"
    script.write_text("import warnings\nimport graphcnn as gc\n"
                      "warnings.warn('careful')\n"
                      "graph = gc.Sequential(gc.ReLU()).build((1, 4))\n")
    err = cli("show", script).stderr
    assert err.strip() == "graphcnn: warning: UserWarning: careful"


def test_closed_pipe_exits_quietly(tmp_path):
    """The IR of 3000 nodes (~150 KB) is more than a pipe holds, so the write meets the
    closed pipe: no traceback, no 'Exception ignored' at exit, status 0."""
    big = tmp_path / "big.py"
    big.write_text("import graphcnn as gc\n"
                   "graph = gc.Sequential(*[gc.ReLU() for _ in range(3000)]).build((1, 4))\n")
    proc = subprocess.run(f"'{GRAPHCNN}' show '{big}' | head -1; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.stdout.startswith("graph model") and proc.stderr == ""
    assert proc.returncode == 0


def test_unknown_pass_names_are_errors_listing_the_passes():
    err = cli("show", LENET, "--opt", "2", "--print-after", "fuse-conv-activation,nope",
              check_rc=1).stderr
    assert "no pass 'nope'" in err and "fuse-conv-activation" in err.split("passes:")[1]
    out = cli("show", LENET, "--opt", "2", "--print-after", "fuse-conv-activation,dce").stdout
    assert out.count("graph lenet") >= 3  # after each named pass, then the result


def test_show_and_bench_json():
    graph = json.loads(cli("show", LENET, "--json").stdout)
    assert graph["inputs"][0]["shape"] == [1, 1, 28, 28] and graph["nodes"][0]["op"] == "conv"
    bench = json.loads(cli("bench", LENET, "--runs", "2", "--no-profile", "--json").stdout)
    assert bench["llvm_s"] > 0 and bench["ort_s"] > 0 and bench["rel_err"] < 1e-4
