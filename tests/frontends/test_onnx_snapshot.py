"""Import snapshots (graphcnn/frontends/onnx_snapshot.py): an unchanged, recorded model file is
restored without onnx and without reading its weights, to the very graph the import gives;
anything stale or hostile in a record falls back to the import."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from graphcnn.backends.llvm.cache import fingerprint
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import graphcnn as gc
from graphcnn import digests
from graphcnn.digests import constant_digests
from graphcnn.errors import ModelLoadError
from graphcnn.frontends import onnx as frontend
from graphcnn.frontends import onnx_digests, onnx_snapshot
from graphcnn.frontends.file_data import Deferred

RNG = np.random.default_rng(11)


def model(seed: int = 0, batch: int | str = 1) -> onnx.ModelProto:
    """x -> conv (big weight: a file span; small bias: inline) -> batch norm -> relu -> add of
    a folded constant (Mul of two initializers) -> max pool -> y; plus an unused initializer."""
    rng = np.random.default_rng(seed)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    inits = [numpy_helper.from_array(f32(16, 8, 3, 3), "w"),
             numpy_helper.from_array(f32(16), "b"),
             numpy_helper.from_array(f32(16), "scale"),
             numpy_helper.from_array(f32(16), "shift"),
             numpy_helper.from_array(f32(16), "mean"),
             numpy_helper.from_array(np.abs(f32(16)) + 0.5, "var"),
             numpy_helper.from_array(f32(1, 16, 1, 1), "c1"),
             numpy_helper.from_array(f32(1, 16, 1, 1), "c2"),
             numpy_helper.from_array(f32(40, 40), "unused")]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["t"], pads=[1, 1, 1, 1]),
             h.make_node("BatchNormalization", ["t", "scale", "shift", "mean", "var"], ["bn"],
                         epsilon=1e-3),
             h.make_node("Relu", ["bn"], ["r"]),
             h.make_node("Mul", ["c1", "c2"], ["c"]),
             h.make_node("Add", ["r", "c"], ["s"]),
             h.make_node("MaxPool", ["s"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    graph = h.make_graph(nodes, "snap", [h.make_tensor_value_info("x", T.FLOAT, [batch, 8, 6, 6])],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=inits)
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m


@pytest.fixture
def loads(monkeypatch) -> list[int]:
    """Counts the constants read from model files (Deferred loads)."""
    count = [0]
    real = Deferred._read

    def read(self):
        count[0] += 1
        return real(self)
    monkeypatch.setattr(Deferred, "_read", read)
    return count


def recorded(records, m: onnx.ModelProto | None = None, **options) -> tuple[str, gc.Graph]:
    """The model saved and imported (the import, not the snapshot), its record written."""
    path = str(records / "m.onnx")
    onnx.save(m or model(), path)
    graph = frontend.from_onnx(path, **options)
    onnx_digests.wait()
    return path, graph


def record_of(path: str) -> dict:
    return json.loads(onnx_digests._record_path(path).read_text())


def pending(graph: gc.Graph) -> int:
    return sum(v.pending is not None for v in graph.constants)


def same(a: gc.Graph, b: gc.Graph) -> None:
    assert onnx_snapshot.canonical(a) == onnx_snapshot.canonical(b)
    assert fingerprint(a) == fingerprint(b) and str(a) == str(b)
    for u, v in zip(a.constants, b.constants):
        assert u.data.dtype == v.data.dtype and u.data.shape == v.data.shape
        np.testing.assert_array_equal(u.data, v.data)
        assert not u.data.flags.writeable


def test_snapshot_restores_the_imported_graph_without_reading_weights(records, loads):
    path, slow = recorded(records)
    assert "snapshot" in record_of(path)
    fast = gc.from_onnx(path)
    assert pending(fast) >= 1  # the conv weight: a span of the file
    assert constant_digests(fast.constants) == constant_digests(slow.constants)
    copy = fast.copy()
    gc.verify(fast)
    files = pending(fast)
    assert loads[0] == 0 and pending(copy) == files
    same(fast, slow)  # reads them
    assert loads[0] == files
    same(copy, slow)  # the copy shares the loaded arrays
    assert loads[0] == files
    # the digest seeded at load is the one of the bytes read
    assert [digests._hash_array(v.data) for v in fast.constants] == constant_digests(slow.constants)


def test_fast_path_does_not_import_onnx(records):
    path, _ = recorded(records)
    code = ("import sys, graphcnn as gc\n"
            "g = gc.from_onnx(sys.argv[1])\n"
            "print('onnx' in sys.modules, sum(v.pending is not None for v in g.constants))\n")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                         env=dict(os.environ), check=True).stdout.split()
    assert out[0] == "False" and int(out[1]) >= 1


def test_file_changed_after_the_import_is_an_error_on_first_use(records):
    path, _ = recorded(records)
    fast = gc.from_onnx(path)
    with open(path, "r+b") as f:  # in place, same size: the bytes may be the weights'
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    weight = next(v for v in fast.constants if v.pending is not None)
    with pytest.raises(ModelLoadError, match="changed since it was imported.*import the model"):
        weight.data  # noqa: B018
    x = RNG.standard_normal((1, 8, 6, 6)).astype(np.float32)
    with pytest.raises(ModelLoadError, match=repr(path)):
        gc.compile(fast, target="reference")(x)


def test_file_changed_before_the_import_is_imported_again(records):
    path, _ = recorded(records)
    onnx.save(model(seed=1), str(records / "new.onnx"))
    os.replace(records / "new.onnx", path)
    graph = gc.from_onnx(path)
    assert pending(graph) == 0
    same(graph, frontend.from_onnx(model(seed=1)))
    onnx_digests.wait()
    assert record_of(path)["identity"] == onnx_digests.identity(os.stat(path))
    assert pending(gc.from_onnx(path)) >= 1  # recorded again


@pytest.mark.parametrize("options", [
    {"input_shapes": {"x": (1, 8, 6, 6)}},
    {"name": "other"},
    {"max_tensor_bytes": 1 << 20},
    {"max_total_bytes": 1 << 24},
])
def test_other_arguments_import_again(records, options):
    path, _ = recorded(records)
    assert pending(gc.from_onnx(path)) >= 1
    graph = gc.from_onnx(path, **options)
    assert pending(graph) == 0
    same(graph, frontend.from_onnx(path, **options))
    onnx_digests.wait()  # the record now holds this import's snapshot
    again = gc.from_onnx(path, **options)
    assert pending(again) >= 1
    same(again, graph)


def test_arguments_the_import_rejects_are_still_rejected(records):
    path, _ = recorded(records)
    with pytest.raises(TypeError):
        gc.from_onnx(path, no_such_option=1)
    with pytest.raises(gc.InputError):
        gc.from_onnx(path, input_shapes={"nope": (1, 8, 6, 6)})
    with pytest.raises(ModelLoadError, match="max_total_bytes"):
        gc.from_onnx(path, max_total_bytes=100)


def test_import_warnings_are_repeated(records):
    with pytest.warns(UserWarning, match="symbolic batch dim"):  # the import's own
        path, _ = recorded(records, model(batch="N"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = gc.from_onnx(path)
    assert pending(graph) >= 1
    assert [str(w.message) for w in caught] == \
        ["input 'x': symbolic batch dim 'N' set to 1 (pass input_shapes to choose)"]


def test_the_snapshot_is_taken_when_imported_not_when_written(records):
    path = str(records / "m.onnx")
    onnx.save(model(), path)
    graph = frontend.from_onnx(path)
    graph.name = "edited"  # before the record is written in the background
    graph.nodes[-1].outputs[0].name = "renamed"
    onnx_digests.wait()
    same(gc.from_onnx(path), frontend.from_onnx(model()))


def test_too_many_inline_bytes_means_no_snapshot(records, monkeypatch):
    monkeypatch.setattr(onnx_snapshot, "MAX_INLINE_BYTES", 16)
    path, _ = recorded(records)
    record = record_of(path)
    assert "digests" in record and "snapshot" not in record
    assert pending(gc.from_onnx(path)) == 0


def test_a_snapshot_that_does_not_round_trip_is_not_stored(records, monkeypatch):
    real = onnx_snapshot.decode

    def lossy(*args, **kwargs):
        graph = real(*args, **kwargs)
        graph.name = "lost"
        return graph
    monkeypatch.setattr(onnx_snapshot, "decode", lossy)
    path, _ = recorded(records)
    assert "snapshot" not in record_of(path)


def _edit(path: str, change) -> None:
    target = onnx_digests._record_path(path)
    record = json.loads(target.read_text())
    out = change(record)
    target.write_text(out if isinstance(out, str) else json.dumps(record))


def _file_constant(record: dict) -> list:
    return next(c for c in record["snapshot"]["graph"]["constants"] if c[3][0] == "file")


def _set(path: tuple, value):
    def change(record):
        node = record
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


HOSTILE = {
    "not json": lambda r: "{not json",
    "a list": lambda r: "[]",
    "deep": lambda r: "[" * 100_000 + "]" * 100_000,
    "snapshot a list": _set(("snapshot",), []),
    "wrong format": _set(("snapshot", "format"), 99),
    "graph name an int": _set(("snapshot", "graph", "name"), 5),
    "nodes a string": _set(("snapshot", "graph", "nodes"), "x"),
    "unknown op": lambda r: r["snapshot"]["graph"]["nodes"][0].__setitem__(1, "no_such_op"),
    "bad attr": lambda r: r["snapshot"]["graph"]["nodes"][0][3].__setitem__("pads", [9, 9]),
    "extra attr": lambda r: r["snapshot"]["graph"]["nodes"][0][3].__setitem__("zzz", 1),
    "wrong output shape": lambda r: r["snapshot"]["graph"]["nodes"][0][4][0].__setitem__(
        1, [1, 16, 7, 7]),
    "dangling input": lambda r: r["snapshot"]["graph"]["nodes"][0][2].__setitem__(0, "nope"),
    "negative offset": lambda r: _file_constant(r)[3].__setitem__(2, -1),
    "offset past the end": lambda r: _file_constant(r)[3].__setitem__(2, 10**9),
    "float offset": lambda r: _file_constant(r)[3].__setitem__(2, 1.5),
    "span past the end": lambda r: _file_constant(r)[3].__setitem__(
        2, os.path.getsize(r["path"]) - 8),
    "other shape": lambda r: _file_constant(r).__setitem__(1, [16, 8, 3, 2]),
    "huge shape": lambda r: _file_constant(r).__setitem__(1, [10**12, 10**12]),
    "object dtype": lambda r: _file_constant(r).__setitem__(2, "object"),
    "unknown tensor": lambda r: _file_constant(r)[3].__setitem__(1, "nope"),
    "bad digest": lambda r: r["digests"].__setitem__(_file_constant(r)[3][1], "zz"),
    "bad base64": lambda r: next(c for c in r["snapshot"]["graph"]["constants"]
                                 if c[3][0] == "inline")[3].__setitem__(1, "!!"),
    "short inline": lambda r: next(c for c in r["snapshot"]["graph"]["constants"]
                                   if c[3][0] == "inline")[3].__setitem__(1, "AAAA"),
    "stale use": lambda r: r["snapshot"]["graph"]["inputs"][0].__setitem__(3, [0, 0, 0, 0]),
    "missing use": lambda r: r["snapshot"]["graph"]["inputs"][0].__setitem__(3, []),
    "use out of range": lambda r: r["snapshot"]["graph"]["inputs"][0].__setitem__(3, [99, 0]),
    "duplicate name": lambda r: r["snapshot"]["graph"]["nodes"][1][4][0].__setitem__(
        0, r["snapshot"]["graph"]["nodes"][0][4][0][0]),
    "duplicate node name": lambda r: r["snapshot"]["graph"]["nodes"][1].__setitem__(
        0, r["snapshot"]["graph"]["nodes"][0][0]),
    "unreserved name": _set(("snapshot", "graph", "names"), []),
    "annotations a list": _set(("snapshot", "graph", "annotations"), []),
    "warnings not strings": _set(("snapshot", "warnings"), [1]),
    "args a list": _set(("snapshot", "args"), []),
    "over the limits": _set(("snapshot", "args", "max_tensor_bytes"), 16),
    "unknown output": _set(("snapshot", "graph", "outputs"), ["nope"]),
}


def test_a_record_rewritten_unchanged_is_used(records):
    path, slow = recorded(records)
    _edit(path, lambda record: None)  # the edits below go through the same JSON round trip
    graph = gc.from_onnx(path)
    assert pending(graph) >= 1
    same(graph, slow)


@pytest.mark.parametrize("change", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_record_means_the_import(records, change, loads):
    path, slow = recorded(records)
    _edit(path, change)
    graph = gc.from_onnx(path)
    assert pending(graph) == 0 and loads[0] == 0  # imported, nothing read through a snapshot
    same(graph, slow)


def test_compile_from_the_snapshot_gives_the_same_outputs(records, loads):
    path, slow = recorded(records)
    x = RNG.standard_normal((1, 8, 6, 6)).astype(np.float32)
    want = gc.compile(slow, target="reference")(x)
    np.testing.assert_array_equal(gc.compile(gc.from_onnx(path), target="reference")(x), want)
    cold = gc.compile(gc.from_onnx(path), target="llvm")  # a miss: reads the weights
    assert not cold.from_cache and loads[0] > 0
    before = loads[0]
    fast = gc.from_onnx(path)
    hit = gc.compile(fast, target="llvm")
    assert hit.from_cache and loads[0] == before and pending(fast) >= 1  # nothing read
    for got in (cold(x), hit(x)):
        err = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert err < 1e-5
    assert pending(fast) >= 1


@pytest.mark.parametrize("changed", ["_SOURCE", "_GRAPH_SOURCE"])
def test_a_snapshot_of_other_graphcnn_or_onnx_source_is_not_used(records, monkeypatch, changed):
    path, slow = recorded(records)
    onnx_digests.graph_source()  # memoised now
    monkeypatch.setattr(onnx_digests, changed, "another importer")
    graph = gc.from_onnx(path)
    assert pending(graph) == 0
    same(graph, slow)


def test_a_relative_path_reads_the_same_file_after_chdir(records, monkeypatch):
    _, slow = recorded(records)
    monkeypatch.chdir(records)
    graph = gc.from_onnx("m.onnx")
    assert pending(graph) >= 1
    monkeypatch.chdir("/")
    same(graph, slow)


def test_only_a_path_with_plain_arguments_takes_the_snapshot(records):
    path, slow = recorded(records)
    data = open(path, "rb").read()  # noqa: SIM115
    for graph in (gc.from_onnx(data), gc.from_onnx(onnx.load(path)),
                  gc.from_onnx(path, input_shapes={"x": (1.0, 8, 6, 6)})):
        assert pending(graph) == 0
        same(graph, slow)
    assert pending(gc.from_onnx(path)) >= 1
