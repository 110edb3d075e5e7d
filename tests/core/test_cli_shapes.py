"""--input-shape through the installed `graphcnn` entry point: symbolic dims bound, a static
batch re-bound, and every bad spec a one-line error naming the input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

GRAPHCNN = str(Path(sys.executable).parent / "graphcnn")


def cli(*argv, rc: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([GRAPHCNN, *map(str, argv)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == rc, proc.stderr[-2000:]
    if rc:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("graphcnn: error:"), proc.stderr
    return proc


def conv_model(path: Path, dims: list, reshape: list[int]) -> Path:
    """conv -> relu -> reshape(`reshape`) [-> matmul when the reshape keeps the batch]."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    d = rng.standard_normal((4 * 6 * 6, 5)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "s"], ["f" if len(reshape) == 2 else "y"],
                              name="flat")]
    if len(reshape) == 2:
        nodes.append(helper.make_node("MatMul", ["f", "d"], ["y"]))
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(d, "d"),
         numpy_helper.from_array(np.array(reshape, np.int64), "s")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("shapes")
    two = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "C"]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(two, opset_imports=[helper.make_opsetid("", 17)]),
              str(tmp / "two.onnx"))
    return {"static": conv_model(tmp / "static.onnx", [1, 3, 6, 6], [1, -1]),
            "symbolic": conv_model(tmp / "sym.onnx", [1, 3, "H", "W"], [1, -1]),
            "mixing": conv_model(tmp / "mix.onnx", [1, 3, 6, 6], [-1]),
            "two": tmp / "two.onnx", "dir": tmp}


def test_static_batch_rebound_by_the_shape(models):
    """A batch-1 file given x=8x...: 8 samples, each what onnxruntime gives for it alone."""
    x = np.random.default_rng(0).standard_normal((8, 3, 6, 6)).astype(np.float32)
    np.save(models["dir"] / "x8.npy", x)
    out = models["dir"] / "y8.npy"
    cli("run", models["static"], "--input-shape", "x=8x3x6x6", "--input",
        models["dir"] / "x8.npy", "-o", out)
    session = ort.InferenceSession(str(models["static"]), providers=["CPUExecutionProvider"])
    want = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(8)])
    got = np.load(out)
    assert got.shape == (8, 5)
    assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)


def test_name_may_be_left_out_for_one_input(models):
    proc = cli("show", models["symbolic"], "--input-shape", "1x3x6x6", "--json")
    assert json.loads(proc.stdout)["inputs"][0]["shape"] == [1, 3, 6, 6]
    err = cli("show", models["two"], "--input-shape", "1x4", rc=1).stderr
    assert "without NAME=" in err and "['a', 'b']" in err
    proc = cli("show", models["two"], "--input-shape", "a=1x4", "--input-shape", "b=1x4",
               "--json")
    assert json.loads(proc.stdout)["outputs"][0]["shape"] == [1, 4]


def test_symbolic_dims_name_the_flag(models):
    err = cli("run", models["symbolic"], rc=1).stderr
    assert "--input-shape x=" in err and "input_shapes" not in err
    path = conv_model(models["dir"] / "symbatch.onnx", ["N", 3, 6, 6], [0, -1])
    err = cli("show", path).stderr
    assert "graphcnn: warning:" in err and "(pass --input-shape to choose)" in err
    assert json.loads(cli("show", path, "--input-shape", "4x3x6x6", "--json").stdout)[
        "outputs"][0]["shape"] == [4, 5]


@pytest.mark.parametrize("spec,words", [
    ("x=abc", ["'x=abc'", "positive dims"]),
    ("x=1x3x0x6", ["'x=1x3x0x6'", "positive dims"]),
    ("x=-2x3x6x6", ["'x=-2x3x6x6'", "positive dims"]),
    ("nope=1x3x6x6", ["unknown input(s) ['nope']", "['x']"]),
    ("x=1x3x6", ["--input-shape x=1x3x6 has rank 3", "rank 4"]),
    ("x=1x3x7x6", ["--input-shape x=1x3x7x6 conflicts", "dim 2 = 6"]),
])
@pytest.mark.parametrize("command", ["run", "show", "compile", "bench"])
def test_bad_specs_are_one_line_errors(models, spec, words, command):
    extra = ["-o", models["dir"] / "libbad.so"] if command == "compile" else []
    err = cli(command, models["static"], "--input-shape", spec, *extra, rc=1).stderr
    assert all(w in err for w in words), err


def test_a_batch_mixing_graph_is_refused_naming_the_node(models):
    err = cli("run", models["mixing"], "--input-shape", "x=4x3x6x6", rc=1).stderr
    assert "'flat' (reshape)" in err and "re-bind the batch to 4" in err


def test_compile_and_bench_take_the_shape(models):
    lib = models["dir"] / "libsym.so"
    cli("compile", models["symbolic"], "--input-shape", "x=1x3x6x6", "-o", lib)
    header = lib.with_suffix(".h").read_text()
    assert "#define SYM_INPUT_0_SHAPE {1, 3, 6, 6}" in header and "int sym_run_batch(" in header
    proc = cli("bench", models["static"], "--input-shape", "x=3x3x6x6", "--runs", "1",
               "--no-profile", "--json")
    assert json.loads(proc.stdout)
