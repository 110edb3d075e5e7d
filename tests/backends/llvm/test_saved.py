"""cm.save / gc.load: one file, loaded without recompiling (also in another process), damaged
or foreign files refused with a ModelLoadError; compiled models of every target pickle."""
from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from graphcnn.backends.llvm import saved
from graphcnn.backends.reference import interpret
from llvm_cases import rel_l2

import graphcnn as gc
from graphcnn.errors import CompileError, ModelLoadError


def two_output_graph() -> gc.Graph:
    gc.manual_seed(7)
    b = gc.GraphBuilder("twohead")
    x = b.input("image", (2, 3, 8, 8))
    f = gc.ReLU()(gc.Conv2d(3, 4, 3, padding=1)(x))
    logits = gc.Dense(4 * 8 * 8, 5)(gc.Flatten()(f))
    return b.build(gc.Softmax()(logits), f)


@pytest.fixture(scope="module")
def graph():
    return two_output_graph()


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(8).standard_normal((2, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def saved_file(graph, tmp_path_factory):
    cm = gc.compile(graph, target="llvm", cpu="x86-64-v3", cache=False)
    path = tmp_path_factory.mktemp("saved") / "twohead.gcm"
    cm.save(path)
    return path


LOAD_IN_A_CHILD = """
import sys
import numpy as np
import graphcnn as gc
cm = gc.load(sys.argv[1], threads=2)
assert "graphcnn.backends.llvm.lower" not in sys.modules, "load recompiled"
outs = cm.run({"image": np.load(sys.argv[2])})
np.savez(sys.argv[3], **outs)
print(cm.input_names, cm.output_names, cm.target)
"""


def test_load_in_another_process_runs_without_recompiling(saved_file, graph, x, tmp_path):
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-c", LOAD_IN_A_CHILD, str(saved_file),
                           str(tmp_path / "x.npy"), str(tmp_path / "y.npz")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [v.name for v in graph.outputs]
    assert proc.stdout.split("] [")[1].startswith(", ".join(repr(n) for n in names))
    got = np.load(tmp_path / "y.npz")
    for name, want in zip(names, interpret(graph, [x])):
        assert rel_l2(got[name], want) <= 1e-5


def test_loaded_model_keeps_the_signature_and_checks_inputs(saved_file, graph, x):
    cm = gc.load(saved_file)
    assert cm.input_names == ["image"] and cm.output_names == [v.name for v in graph.outputs]
    assert cm.input_types["image"] == graph.inputs[0].type
    with pytest.raises(gc.InputError, match="shape"):
        cm(x[:1])
    with pytest.raises(ModelLoadError, match="keeps its code, not its graph"):
        cm.profile(x)


def _damaged(path, tmp_path, edit) -> str:
    data = bytearray(path.read_bytes())
    out = tmp_path / "damaged.gcm"
    out.write_bytes(bytes(edit(data)))
    return str(out)


@pytest.mark.parametrize("edit,message", [
    (lambda d: d[: len(d) // 2], "truncated"),
    (lambda d: d[:-1], "truncated: the weights"),
    (lambda d: d + b"\0", "bytes after the weights"),
    (lambda d: d[:-8] + bytes(x ^ 0xFF for x in d[-8:]), "weights digest"),
    (lambda d: b"PK\x03\x04" + d[4:], "not a graphcnn saved model"),
    (lambda d: d[:5], "not a graphcnn saved model"),
    (lambda d: d[:16] + d[16:].replace(b'"workspace_bytes":', b'"workspace_bytez":', 1),
     "workspace_bytes"),
], ids=["half", "last-byte", "trailing", "flipped-weights", "zip", "tiny", "field"])
def test_damaged_files_are_a_model_load_error(saved_file, tmp_path, edit, message):
    with pytest.raises(ModelLoadError, match=message):
        gc.load(_damaged(saved_file, tmp_path, edit))


def test_missing_file_or_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        gc.load(tmp_path / "nope.gcm")
    with pytest.raises(ModelLoadError, match="is a directory"):
        gc.load(tmp_path)


def _resaved(graph, tmp_path, monkeypatch, **fields) -> str:
    """A well-formed file (digests recomputed) whose manifest differs in `fields`."""
    cm = gc.compile(graph, target="llvm", cache=True)
    real = saved.manifest_of
    monkeypatch.setattr(saved, "manifest_of", lambda m: {**real(m), **fields})
    path = tmp_path / "foreign.gcm"
    cm.save(path)
    monkeypatch.setattr(saved, "manifest_of", real)
    return str(path)


def test_a_file_for_other_cpu_features_is_refused(graph, tmp_path, monkeypatch):
    path = _resaved(graph, tmp_path, monkeypatch,
                    features="+avx2,+graphcnn-imaginary-feature")
    with pytest.raises(ModelLoadError, match="lacks: \\+graphcnn-imaginary-feature"):
        gc.load(path)
    path = _resaved(graph, tmp_path, monkeypatch, cpu="some-other-cpu", features="")
    with pytest.raises(ModelLoadError, match="built for CPU some-other-cpu"):
        gc.load(path)


def test_a_file_from_another_graphcnn_version_is_refused(graph, tmp_path, monkeypatch):
    path = _resaved(graph, tmp_path, monkeypatch, graphcnn_version="0.0.1")
    with pytest.raises(ModelLoadError, match="saved by graphcnn 0.0.1"):
        gc.load(path)


def test_save_into_a_missing_directory(graph, tmp_path):
    cm = gc.compile(graph, target="llvm")
    with pytest.raises(ModelLoadError, match="does not exist"):
        cm.save(tmp_path / "no" / "m.gcm")


@pytest.mark.parametrize("target", ["llvm", "reference", "onnxruntime"])
def test_compiled_models_pickle(graph, x, target):
    cm = gc.compile(graph, target=target)
    again = pickle.loads(pickle.dumps(cm))
    assert again.target == target and again.output_names == cm.output_names
    for a, b in zip(cm(x), again(x)):
        np.testing.assert_array_equal(a, b)


def test_a_pickled_llvm_model_pickles_again(graph, x):
    twice = pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(gc.compile(graph)))))
    assert rel_l2(twice(x)[0], interpret(graph, [x])[0]) <= 1e-5


def test_save_is_for_the_llvm_target(graph, tmp_path):
    with pytest.raises(CompileError, match="export_onnx"):
        gc.compile(graph, target="reference").save(tmp_path / "m.gcm")


def test_outputs_that_repeat_a_value_survive_save_and_load(tmp_path):
    g = gc.Graph("views")
    v = g.add_input("x", (2, 3))
    r = g.apply("relu", [v])
    g.set_outputs([r, v, r])
    xv = np.random.default_rng(9).standard_normal((2, 3)).astype(np.float32)
    gc.compile(g, target="llvm", opt_level=0).save(tmp_path / "views.gcm")
    for a, b in zip(gc.load(tmp_path / "views.gcm")(xv), interpret(g, [xv])):
        np.testing.assert_array_equal(a, b)
