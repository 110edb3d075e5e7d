"""Uniform runs of the weights arena stored as fills (weights_fills.py): split/expand round
trips, malformed fills refused, and an ONNX model whose weights are ConstantOfShape fills
cached and saved in a few KB instead of the full arena, loading to the same results."""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
from graphcnn.backends.llvm import cache
from graphcnn.backends.llvm.cache_integrity import BadEntry, arena_bytes
from graphcnn.backends.llvm.weights_fills import BLOCK, FillError, check, expand, split
from graphcnn.backends.reference import interpret
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

import graphcnn as gc
from graphcnn.errors import CacheIntegrityWarning


def arena_with_fills(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, n, dtype=np.uint8)
    f = a[:n // 4 * 4].view(np.float32)
    f[1000:1000 + 3 * BLOCK] = 1.5          # a float fill, not block aligned
    f[5 * BLOCK:7 * BLOCK] = 0.0            # zeros, aligned
    f[7 * BLOCK:8 * BLOCK] = -2.0           # another value right after
    return a


@pytest.mark.parametrize("n", [64, BLOCK, 40 * BLOCK + 64, 40 * BLOCK + 4096 * 3 + 192])
def test_split_expand_round_trip(n):
    a = arena_with_fills(n, n)
    stored, fills = split(a)
    assert stored.nbytes + sum(f[1] for f in fills) == n
    back = expand(stored, fills, check(fills, stored.nbytes, 1 << 40))
    assert np.array_equal(back, a)
    assert not fills or back.ctypes.data % 64 == 0  # a new arena, aligned for the kernels
    if n >= 40 * BLOCK:
        words = {w for _, _, w in fills}
        assert len(fills) >= 3 and stored.nbytes < n - 10 * BLOCK
        assert int(np.array([1.5, 1.5], np.float32).view(np.uint64)[0]) in words


def test_no_fills_stores_the_arena_itself():
    a = np.random.default_rng(0).integers(0, 256, 10 * BLOCK, dtype=np.uint8)
    stored, fills = split(a)
    assert fills == [] and np.shares_memory(stored, a) and stored.nbytes == a.nbytes  # no copy
    assert expand(stored, [], a.nbytes) is stored


@pytest.mark.parametrize("fills, message", [
    ("abc", "not a list"),
    ([[0, 8]], "malformed"),
    ([[4, 8, 0]], "malformed"),                  # unaligned offset
    ([[0, 12, 0]], "malformed"),                 # unaligned size
    ([[0, 0, 0]], "malformed"),                  # empty
    ([[0, 8, -1]], "malformed"),
    ([[0, 8, 1 << 64]], "malformed"),
    ([[0, 8, 1.5]], "malformed"),
    ([[64, 64, 0], [0, 8, 0]], "out of order"),  # unsorted
    ([[0, 64, 0], [32, 64, 0]], "out of order"),  # overlapping
    ([[4096, 64, 0]], "past the"),               # beyond the arena
])
def test_malformed_fills_are_refused(fills, message):
    with pytest.raises(FillError, match=message):
        check(fills, 128, 1 << 40)
    with pytest.raises(BadEntry):
        arena_bytes({"weights_fills": fills, "weights_file_bytes": 128})


def test_fills_past_the_limit_are_refused():
    with pytest.raises(FillError, match="at most"):
        check([[0, 1 << 41, 0]], 0, 1 << 40)


def fill_model(c: int = 32, hw: int = 24) -> onnx.ModelProto:
    """Conv with a ConstantOfShape weight, plus an activation-sized ConstantOfShape bias: the
    shape of the model whose 9 KB file made a 603 MB cache entry."""
    def shape(name, dims):
        return nh.from_array(np.array(dims, np.int64), name)

    def value(v):
        return nh.from_array(np.array([v], np.float32))

    nodes = [h.make_node("ConstantOfShape", ["sw"], ["w"], value=value(0.01)),
             h.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
             h.make_node("ConstantOfShape", ["sb"], ["b"], value=value(1.5)),
             h.make_node("Add", ["y", "b"], ["z"]),
             h.make_node("Relu", ["z"], ["out"])]
    graph = h.make_graph(
        nodes, "fills", [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
        [h.make_tensor_value_info("out", TensorProto.FLOAT, [1, c, hw, hw])],
        [shape("sw", [c, c, 3, 3]), shape("sb", [1, c, hw, hw])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def entry(d):
    (manifest,) = (d / "llvm").glob("*.json")
    return manifest.with_suffix(""), json.loads(manifest.read_text())


def test_constant_of_shape_entry_is_small_and_loads_right(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    graph = gc.from_onnx(fill_model())
    x = np.random.default_rng(3).standard_normal((1, 32, 24, 24)).astype(np.float32)
    want = interpret(graph, [x])[0]
    cold = gc.compile(graph, target="llvm")
    cache.flush()
    stem, manifest = entry(tmp_path)
    weights_file = stem.with_suffix(".weights").stat().st_size
    assert cold.weights_bytes > 100_000 and weights_file < cold.weights_bytes // 50
    assert manifest["weights_fills"] and manifest["weights_file_bytes"] == weights_file
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheIntegrityWarning)
        hit = gc.compile(graph, target="llvm")
    assert hit.from_cache
    assert np.array_equal(np.asarray(hit._weights), np.asarray(cold._weights))
    for cm in (cold, hit):
        got = np.asarray(cm(x))
        assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)


def test_a_changed_fill_word_is_caught(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    graph = gc.from_onnx(fill_model(16, 16))
    gc.compile(graph, target="llvm")
    cache.flush()
    stem, manifest = entry(tmp_path)
    manifest["weights_fills"][0][2] ^= 1  # the digest covers the fills: caught
    stem.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.warns(CacheIntegrityWarning, match="manifest fields differ"):
        cm = gc.compile(graph, target="llvm")
    assert not cm.from_cache
    x = np.random.default_rng(4).standard_normal((1, 16, 16, 16)).astype(np.float32)
    want = interpret(graph, [x])[0]
    assert np.linalg.norm(np.asarray(cm(x)) - want) <= 1e-5 * np.linalg.norm(want)


def test_saved_model_with_fills(tmp_path):
    graph = gc.from_onnx(fill_model())
    cm = gc.compile(graph, target="llvm", cache=False)
    path = tmp_path / "fills.gcm"
    cm.save(path)
    assert path.stat().st_size < cm.weights_bytes // 10
    back = gc.load(path)
    x = np.random.default_rng(5).standard_normal((1, 32, 24, 24)).astype(np.float32)
    assert np.array_equal(np.asarray(back(x)), np.asarray(cm(x)))
