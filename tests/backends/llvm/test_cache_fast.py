"""gc.compile's early cache lookup (cache.source_key, compile_graph): a hit on the graph as given
skips verify-then-optimise, lowering and codegen, and the model it returns behaves like the one
a miss builds; anything that may change the code misses."""
from __future__ import annotations

import importlib
import re

import numpy as np
import pytest
from llvm_cases import rnd

import graphcnn as gc
from graphcnn import passes
from graphcnn.digests import constant_digests, prefetch_constant_digests
from graphcnn.ir import Graph

backend = importlib.import_module("graphcnn.backends.llvm")
cache = importlib.import_module("graphcnn.backends.llvm.cache")


def block(seed: int = 3) -> Graph:
    """Conv + batch norm + residual: the passes fold and fuse, so skipping them matters."""
    gc.manual_seed(seed)
    b = gc.GraphBuilder("fastblock")
    x = b.input("input", (1, 8, 10, 10))
    y = gc.ReLU()(gc.BatchNorm2d(16)(gc.Conv2d(8, 16, 3, padding=1, bias=False)(x)))
    y = gc.BatchNorm2d(16)(gc.Conv2d(16, 16, 3, padding=1)(y))
    short = gc.Conv2d(8, 16, 1)(x)
    return b.build(gc.Softmax()(gc.Flatten()(gc.ReLU()(y + short))))


def no_passes(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("a cache hit must not run the pass pipeline")
    monkeypatch.setattr(passes, "optimize", fail)


def test_hit_skips_passes_and_matches_miss_bit_for_bit(monkeypatch):
    graph = block()
    x = rnd(1, 8, 10, 10)
    miss = gc.compile(graph, target="llvm")
    assert not miss.from_cache
    want = miss(x)
    no_passes(monkeypatch)
    hit = gc.compile(graph, target="llvm")
    assert hit.from_cache
    np.testing.assert_array_equal(hit(x), want)
    np.testing.assert_array_equal(hit.run({"input": x})[hit.output_names[0]], want)
    assert (hit.input_names, hit.output_names) == (miss.input_names, miss.output_names)
    assert hit.input_types == miss.input_types and hit.output_types == miss.output_types
    assert (hit.memory_bytes, hit.weights_bytes) == (miss.memory_bytes, miss.weights_bytes)
    assert hit.kernels == miss.kernels
    assert repr(hit) == repr(miss)
    assert hit._graph is None  # repr and calls did not need the optimised graph


def test_hit_graph_is_the_optimised_graph_derived_on_demand():
    graph = block()
    miss = gc.compile(graph, target="llvm")
    hit = gc.compile(graph, target="llvm")
    assert hit.from_cache and hit._graph is None
    assert str(hit.graph) == str(miss.graph)
    assert [n.op for n in hit.graph.nodes] == [n.op for n in miss.graph.nodes]


def test_hit_model_does_not_see_later_edits_of_the_callers_graph():
    graph = block()
    gc.compile(graph, target="llvm")
    hit = gc.compile(graph, target="llvm")
    want = str(gc.optimize(graph, target="llvm"))
    graph.set_outputs([graph.inputs[0]])  # the caller edits their graph afterwards
    assert str(hit.graph) == want


def test_hit_profile_works():
    graph = block()
    x = rnd(1, 8, 10, 10)
    miss = gc.compile(graph, target="llvm")
    hit = gc.compile(graph, target="llvm")
    assert hit.from_cache
    got, want = hit.profile(x, runs=1), miss.profile(x, runs=1)
    assert [(r["node"], r["op"]) for r in got] == [(r["node"], r["op"]) for r in want]


@pytest.mark.skipif(__import__("shutil").which("cc") is None, reason="needs a C compiler")
def test_hit_export_library_matches_miss(tmp_path):
    graph = block()
    miss = gc.compile(graph, target="llvm")
    hit = gc.compile(graph, target="llvm")
    assert hit.from_cache
    a = miss.export_library(tmp_path / "libmiss.so")
    b = hit.export_library(tmp_path / "libhit.so")
    assert (tmp_path / "libhit.so").exists()
    def same(path: str) -> str:
        with open(path) as f:
            return re.sub(r"(?i)miss|hit", "X", f.read())
    assert same(a) == same(b)


def test_changed_constant_misses():
    graph = block()
    gc.compile(graph, target="llvm")
    edited = graph.copy()
    w = next(v for v in edited.constants if v.type.rank == 4)
    data = w.data.copy()
    data.flat[0] += 1.0
    w.data = data
    x = rnd(1, 8, 10, 10)
    cm = gc.compile(edited, target="llvm")
    assert not cm.from_cache
    from graphcnn.backends.reference import interpret
    np.testing.assert_allclose(cm(x), interpret(edited, [x])[0], rtol=1e-4, atol=1e-6)


def test_changed_graph_misses():
    gc.compile(block(seed=3), target="llvm")
    assert gc.compile(block(seed=3), target="llvm").from_cache  # equal graphs share an entry
    assert not gc.compile(block(seed=4), target="llvm").from_cache
    renamed = block(seed=3)
    renamed.name = "other"
    assert not gc.compile(renamed, target="llvm").from_cache


@pytest.mark.parametrize("options", [{"opt_level": 1}, {"opt_level": 3}, {"cpu": "generic"},
                                     {"rewrites": False}])
def test_changed_option_misses(options):
    graph = block()
    gc.compile(graph, target="llvm")
    assert not gc.compile(graph, target="llvm", **options).from_cache
    assert gc.compile(graph, target="llvm", **options).from_cache


def test_thread_count_shares_the_entry():
    graph = block()
    gc.compile(graph, target="llvm", threads=1)
    cm = gc.compile(graph, target="llvm", threads=2)
    assert cm.from_cache and cm.threads == 2


def test_changed_source_or_cpu_misses(monkeypatch):
    graph = block()
    gc.compile(graph, target="llvm")
    real_source = cache._source_digest()
    monkeypatch.setattr(cache, "_SOURCE_DIGEST", "a changed graphcnn source")
    assert not gc.compile(graph, target="llvm").from_cache
    monkeypatch.setattr(cache, "_SOURCE_DIGEST", real_source)  # (undo() would drop the
    assert gc.compile(graph, target="llvm").from_cache          # temporary cache dir too)
    real = backend.cpu_and_features
    monkeypatch.setattr(backend, "cpu_and_features",
                        lambda cpu: (real(cpu)[0], real(cpu)[1] + ",+imaginary"))
    assert not gc.compile(graph, target="llvm").from_cache


def test_cache_off_never_hits(monkeypatch):
    graph = block()
    gc.compile(graph, target="llvm")
    assert not gc.compile(graph, target="llvm", cache=False).from_cache


def test_source_digest_covers_passes_and_ir():
    roots = {p.name for p in cache._source_roots()}
    assert {"graphcnn", "llvm", "passes"} <= roots


def test_fingerprint_sees_what_the_printer_may_not():
    graph = block()
    other = graph.copy()
    other.annotations = {other.nodes[0].name: {"family": "x"}}
    assert cache.fingerprint(graph) != cache.fingerprint(other)
    assert cache.fingerprint(graph) == cache.fingerprint(graph.copy())


def test_constant_digests_are_memoised_and_follow_the_data():
    g = Graph("d")
    a = g.add_constant(rnd(300, 300), "a")
    b = g.add_constant(rnd(300, 300), "b")
    prefetch_constant_digests([a, b])
    first = constant_digests([a, b])
    assert first == constant_digests([a, b]) and first[0] != first[1]
    twin = g.add_constant(a.data, "twin")  # a copy with equal bytes: equal digest
    assert constant_digests([twin]) == first[:1]
    writable = a.data.copy()  # not read-only: hashed every time, never memoised
    c = g.add_constant(writable, "c")
    c.data = writable
    before = constant_digests([c])
    writable[0, 0] += 1
    assert constant_digests([c]) != before


def test_skipping_the_second_pipeline_run_in_lowering_changes_nothing():
    """compile_graph lowers without re-running the level-2 pipeline it just ran; the backend's
    own compile (rewrites on) runs it again: same code, same bits."""
    graph = block()
    x = rnd(1, 8, 10, 10)
    once = gc.compile(graph, target="llvm", cache=False)
    twice = backend.compile(gc.optimize(graph, target="llvm"), cache=False)
    assert once.kernels == twice.kernels
    np.testing.assert_array_equal(once(x), twice(x))


def test_hit_with_input_and_constant_outputs():
    g = Graph("passthrough")
    x = g.add_input("x", (3, 5))
    c = g.add_constant(rnd(2, 2), "c")
    g.set_outputs([x, g.apply("relu", [x]), c])
    xv = rnd(3, 5)
    want = gc.compile(g, target="llvm")(xv)
    hit = gc.compile(g, target="llvm")
    assert hit.from_cache
    for a, b in zip(hit(xv), want):
        np.testing.assert_array_equal(a, b)


def test_entry_whose_signature_differs_from_the_graph_runs_the_pipeline(monkeypatch):
    """A hit rebuilds the model from the caller's graph, so the entry must record the same
    inputs and outputs; otherwise the pipeline runs and the model is built on its result."""
    graph = block()
    x = rnd(1, 8, 10, 10)
    want = gc.compile(graph, target="llvm")(x)
    real = cache.io_signature
    monkeypatch.setattr(cache, "io_signature", lambda g: real(g) + [["changed"]])
    ran = []
    real_optimize = passes.optimize
    monkeypatch.setattr(passes, "optimize",
                        lambda *a, **k: ran.append(1) or real_optimize(*a, **k))
    cm = gc.compile(graph, target="llvm")
    assert ran and cm._graph is not None
    np.testing.assert_array_equal(cm(x), want)
