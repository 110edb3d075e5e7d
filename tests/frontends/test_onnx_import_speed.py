"""The ONNX import's fast path for large initializers (onnx_wire.split_initializers, one copy of
the weights): the same graph as a whole-proto parse, a fallback for every layout it does not
handle, arrays the graph owns. Speed itself is measured in benchmarks/bench_zoo.py."""
from __future__ import annotations

import mmap
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import graphcnn as gc
from graphcnn import digests
from graphcnn.digests import constant_digests
from graphcnn.errors import ModelLoadError
from graphcnn.frontends import onnx as frontend
from graphcnn.frontends import onnx_digests, onnx_wire
from graphcnn.frontends.onnx_safety import load_model, load_model_split

RNG = np.random.default_rng(7)


def model(big: int = 3, small: int = 2) -> onnx.ModelProto:
    """x -> (conv with a big weight + bias) -> add of a small constant -> y, plus unused inits."""
    w = RNG.standard_normal((16, 8, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(RNG.standard_normal(16).astype(np.float32), "b"),
             numpy_helper.from_array(RNG.standard_normal((1, 16, 1, 1)).astype(np.float32), "c")]
    inits += [numpy_helper.from_array(RNG.standard_normal((40, 40)).astype(np.float32),
                                      f"big{i}") for i in range(big - 1)]
    inits += [numpy_helper.from_array(np.arange(3, dtype=np.int64) + i, f"small{i}")
              for i in range(small)]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["t"], pads=[1, 1, 1, 1]),
             h.make_node("Add", ["t", "c"], ["y"])]
    graph = h.make_graph(nodes, "speed", [h.make_tensor_value_info("x", T.FLOAT, [1, 8, 6, 6])],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=inits)
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def same_graphs(a: gc.Graph, b: gc.Graph) -> None:
    assert str(a) == str(b)
    for u, v in zip(a.constants, b.constants):
        assert u.data.dtype == v.data.dtype
        np.testing.assert_array_equal(u.data, v.data)


def test_split_cuts_out_large_raw_data_only():
    data = model().SerializeToString()
    skeleton, spans = onnx_wire.split_initializers(data)
    assert len(skeleton) < len(data) // 2
    proto = onnx.ModelProto()
    proto.ParseFromString(skeleton)
    full = onnx.ModelProto()
    full.ParseFromString(data)
    assert len(spans) == len(full.graph.initializer)
    for t, want, span in zip(proto.graph.initializer, full.graph.initializer, spans):
        assert (t.name, list(t.dims), t.data_type) == (want.name, list(want.dims), want.data_type)
        if span is None:  # small: still in the proto
            assert t.raw_data == want.raw_data
        else:
            assert not t.HasField("raw_data") and data[span[0]:span[1]] == want.raw_data
    assert any(s is None for s in spans) and any(s is not None for s in spans)


def test_path_bytes_and_proto_import_the_same_graph(tmp_path):
    m = model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    from_path, from_bytes = gc.from_onnx(str(path)), gc.from_onnx(m.SerializeToString())
    same_graphs(from_path, gc.from_onnx(m))
    same_graphs(from_bytes, gc.from_onnx(m))
    x = RNG.standard_normal((1, 8, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(gc.compile(from_path, target="reference")(x),
                                  gc.compile(gc.from_onnx(m), target="reference")(x))


def test_constants_are_owned_read_only_and_not_views_of_the_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(model(), path)
    graph = gc.from_onnx(str(path))
    for v in graph.constants:
        assert not v.data.flags.writeable
        assert v.data.flags.aligned
        base = v.data
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        assert not isinstance(base, (mmap.mmap, memoryview, bytes))


def test_constants_survive_the_file_changing(tmp_path):
    m = model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    graph = gc.from_onnx(str(path))
    path.write_bytes(b"\0" * path.stat().st_size)
    same_graphs(graph, gc.from_onnx(m))


def test_load_model_gives_a_whole_proto(tmp_path):
    m = model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    proto, base_dir = load_model(str(path))
    assert proto == m and base_dir == str(tmp_path)


def _with_two_graph_fields(m: onnx.ModelProto) -> bytes:
    extra = onnx.ModelProto()
    extra.graph.doc_string = "merged by protobuf"
    return m.SerializeToString() + extra.SerializeToString()


@pytest.mark.parametrize("make", [
    lambda m: _with_two_graph_fields(m),
    lambda m: m.SerializeToString()[:-3],  # truncated
    lambda m: b"\xff" * 64,  # not protobuf
    lambda m: b"",
])
def test_unexpected_layouts_fall_back_to_protobuf(make):
    data = make(model())
    assert onnx_wire.split_initializers(data) is None
    want = onnx.ModelProto()
    try:
        want.ParseFromString(data)
    except Exception:  # noqa: BLE001  (protobuf rejects it: so must the importer)
        want = None
    if want is None or not want.HasField("graph"):
        with pytest.raises(ModelLoadError):
            gc.from_onnx(data)
        return
    loaded = load_model_split(data)
    assert loaded.spans is None and loaded.proto == want


def test_repeated_raw_data_falls_back():
    m = model()
    # a TensorProto with raw_data twice (protobuf keeps the last): rebuild the first big one
    t = onnx.TensorProto()
    t.CopyFrom(m.graph.initializer[0])
    twice = t.SerializeToString() + onnx_wire._field(9, b"\0" * len(t.raw_data))
    g = onnx.GraphProto()
    g.CopyFrom(m.graph)
    del g.initializer[:]
    body = g.SerializeToString() + onnx_wire._field(5, twice)
    top = onnx.ModelProto()
    top.CopyFrom(m)
    top.ClearField("graph")
    data = top.SerializeToString() + onnx_wire._field(7, body)
    assert onnx_wire.split_initializers(data) is None
    proto = load_model_split(data).proto
    assert proto.graph.initializer[0].raw_data == b"\0" * len(t.raw_data)


def test_import_prefetches_the_digests_a_compile_needs(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(model(), path)
    graph = gc.from_onnx(str(path))
    digests = constant_digests(graph.constants)
    import hashlib
    for v, d in zip(graph.constants, digests):
        want = hashlib.sha256(f"{v.data.dtype.str}{v.data.shape}".encode())
        want.update(np.ascontiguousarray(v.data).view(np.uint8))
        assert d == want.digest()


# ----- remembered digests of unchanged files (onnx_digests; `records`: conftest.py) --------------
def counting_hashes(monkeypatch) -> list[int]:
    calls = [0]
    real = digests._hash_array

    def count(array):
        calls[0] += 1
        return real(array)
    monkeypatch.setattr(digests, "_hash_array", count)
    return calls


def test_unchanged_file_seeds_digests_instead_of_hashing(records, monkeypatch):
    path = str(records / "m.onnx")
    onnx.save(model(), path)
    first = gc.from_onnx(path)
    want = constant_digests(first.constants)
    onnx_digests.wait()
    assert list((records / "cache" / "onnx-digests").glob("*.json"))
    calls = counting_hashes(monkeypatch)
    again = frontend.from_onnx(path)  # the import itself (gc.from_onnx takes the snapshot)
    initializers = [v for v in again.constants if v.data.nbytes >= 64]
    assert constant_digests(initializers) == [d for v, d in zip(first.constants, want)
                                              if v.data.nbytes >= 64]
    assert calls[0] == 0


def test_replaced_file_is_hashed_again(records, monkeypatch):
    path = str(records / "m.onnx")
    onnx.save(model(), path)
    gc.from_onnx(path)
    onnx_digests.wait()
    onnx.save(model(), str(records / "new.onnx"))  # other weights, same sizes
    os.replace(records / "new.onnx", path)
    calls = counting_hashes(monkeypatch)
    graph = gc.from_onnx(path)
    onnx_digests.wait()
    got = constant_digests(graph.constants)
    assert calls[0] > 0
    monkeypatch.undo()
    fresh = [digests._hash_array(v.data) for v in graph.constants]
    assert got == fresh


def test_record_of_another_decoder_is_ignored(records, monkeypatch):
    path = str(records / "m.onnx")
    onnx.save(model(), path)
    gc.from_onnx(path)
    onnx_digests.wait()
    monkeypatch.setattr(onnx_digests, "_SOURCE", "another importer")
    calls = counting_hashes(monkeypatch)
    constant_digests(gc.from_onnx(path).constants)
    assert calls[0] > 0


def test_racy_file_is_not_recorded(records, monkeypatch):
    monkeypatch.setattr(onnx_digests, "RACY_SECONDS", 3600.0)
    path = str(records / "m.onnx")
    onnx.save(model(), path)
    constant_digests(gc.from_onnx(path).constants)
    onnx_digests.wait()
    assert not (records / "cache" / "onnx-digests").exists()


def test_parallel_decode_gives_the_same_graph(tmp_path, monkeypatch):

    m = model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    serial = gc.from_onnx(str(path))
    monkeypatch.setattr(frontend, "PARALLEL_DECODE_BYTES", 0)
    same_graphs(gc.from_onnx(str(path)), serial)


@pytest.mark.parametrize("parallel", [False, True])
def test_total_limit_is_checked_before_anything_is_decoded(monkeypatch, parallel):

    def fail(*args, **kwargs):
        raise AssertionError("decoded before the limits were checked")
    monkeypatch.setattr(frontend, "tensor_to_array", fail)
    if parallel:
        monkeypatch.setattr(frontend, "PARALLEL_DECODE_BYTES", 0)
    with pytest.raises(ModelLoadError, match="max_total_bytes"):
        gc.from_onnx(model().SerializeToString(), max_total_bytes=10_000)


def test_external_weights_are_never_remembered(records):
    """The .onnx file's identity says nothing about its external data file: a changed w.bin
    must change the digests (and so the compile cache key)."""
    path = str(records / "ext.onnx")
    m = model()
    onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="w.bin", size_threshold=0)
    first = gc.from_onnx(path)
    before = constant_digests(first.constants)
    onnx_digests.wait()
    assert not list((records / "cache" / "onnx-digests").glob("*.json"))
    data = bytearray((records / "w.bin").read_bytes())
    data[:64] = bytes(64)  # the first weights change in place; the .onnx file does not
    (records / "w.bin").write_bytes(bytes(data))
    again = gc.from_onnx(path)
    assert constant_digests(again.constants) != before


def test_import_works_without_a_home_for_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("GRAPHCNN_CACHE_DIR", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")
    monkeypatch.setattr(onnx_digests.Path, "home", staticmethod(no_home))
    monkeypatch.setattr(onnx_digests, "MIN_RECORD_BYTES", 0)
    path = str(tmp_path / "m.onnx")
    onnx.save(model(), path)
    assert gc.from_onnx(path).constants
    onnx_digests.wait()
