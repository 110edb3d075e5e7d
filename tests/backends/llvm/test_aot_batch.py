"""AOT `<name>_run_batch(n, ...)`: a library compiled at batch B runs n samples as ceil(n/B)
slices (the tail through padded copies), called through ctypes and compared with the
reference interpreter on the graph re-batched to n."""
from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
from graphcnn.backends.llvm import export_library
from graphcnn.backends.llvm.aot import find_cc
from graphcnn.backends.reference import interpret
from llvm_cases import rel_l2

import graphcnn as gc
from graphcnn.rebatch import rebatch

pytestmark = pytest.mark.skipif(find_cc() is None, reason="no C compiler (cc) to link")

RNG = np.random.default_rng(21)


def cnn(batch: int = 3) -> gc.Graph:
    gc.manual_seed(11)
    return gc.Sequential(
        gc.Conv2d(3, 5, 3, padding=1), gc.ReLU(), gc.MaxPool2d(2),
        gc.Conv2d(5, 7, 3), gc.ReLU(),
        gc.Flatten(), gc.Dense(7 * 3 * 3, 10), gc.Softmax(),
    ).build((batch, 3, 10, 10))


def macros(header: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (.+)$", header, re.MULTILINE))


class Library:
    """A library's run_batch called with numpy arrays."""

    def __init__(self, path, stem: str):
        self.lib = ctypes.CDLL(str(path))
        self.m = macros(path.with_suffix(".h").read_text())
        self.entry = getattr(self.lib, f"{stem}_run_batch")
        self.entry.restype = ctypes.c_int
        self.entry.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_void_p]
        size = int(self.m[f"{stem.upper()}_BATCH_WORKSPACE_BYTES"])
        raw = np.zeros(size + 64, np.uint8)
        start = -raw.ctypes.data % 64
        self.workspace, self._raw = raw[start:start + size], raw

    def __call__(self, n: int, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> int:
        ins = (ctypes.c_void_p * len(inputs))(*[x.ctypes.data for x in inputs])
        outs = (ctypes.c_void_p * len(outputs))(*[y.ctypes.data for y in outputs])
        return self.entry(n, ins, outs, self.workspace.ctypes.data)


def test_run_batch_matches_the_reference_for_any_n(tmp_path):
    graph = cnn(3)
    export_library(graph, tmp_path / "libnet.so")
    header = (tmp_path / "libnet.h").read_text()
    assert ("int net_run_batch(int64_t n, float** inputs, float** outputs, void* workspace);"
            in header)
    m = macros(header)
    assert m["NET_BATCH"] == "3" and m["NET_ERROR_BATCH"] == "(-1)"
    assert m["NET_INPUT_0_SAMPLE_SIZE"] == "300" and m["NET_OUTPUT_0_SAMPLE_SIZE"] == "10"
    lib = Library(tmp_path / "libnet.so", "net")
    for n in (1, 3, 7):  # one sample (a tail only), B, 2B + 1
        x = RNG.standard_normal((n, 3, 10, 10)).astype(np.float32)
        y = np.full((n, 10), np.nan, np.float32)
        assert lib(n, [x], [y]) == 0
        assert rel_l2(y, interpret(rebatch(graph, n), [x])[0]) <= 1e-5
    guard = np.full((4, 10), 7.0, np.float32)  # rows past n are never written
    assert lib(1, [x], [guard]) == 0 and (guard[1:] == 7.0).all()
    for bad in (0, -3):
        assert lib(bad, [x], [y]) == -1


def test_several_inputs_and_outputs(tmp_path):
    b = gc.GraphBuilder("two")
    a, c = b.input("a", (2, 5)), b.input("c", (2, 5))
    graph = b.build(gc.add(a, c), gc.ReLU()(a))
    export_library(graph, tmp_path / "libtwo.so", name="pair")
    lib = Library(tmp_path / "libtwo.so", "pair")
    n = 5
    xs = [RNG.standard_normal((n, 5)).astype(np.float32) for _ in range(2)]
    ys = [np.full((n, 5), np.nan, np.float32) for _ in range(2)]
    assert lib(n, xs, ys) == 0
    np.testing.assert_array_equal(ys[0], xs[0] + xs[1])
    np.testing.assert_array_equal(ys[1], np.maximum(xs[0], 0))


def test_no_batch_entry_for_a_graph_mixing_samples(tmp_path):
    b = gc.GraphBuilder("mix")
    x = b.input("x", (2, 6))
    export_library(b.build(b.op("reduce_sum", [x], name="total", axes=(0,), keepdims=1)),
                   tmp_path / "libmix.so")
    header = (tmp_path / "libmix.h").read_text()
    assert "/* no mix_run_batch:" in header and "'total' (reduce_sum)" in header
    assert "MIX_BATCH" not in header
    assert not hasattr(ctypes.CDLL(str(tmp_path / "libmix.so")), "mix_run_batch")
