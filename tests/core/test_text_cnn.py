"""A Kim-style text CNN on the DSL: Embedding (int64 token ids) -> transpose -> Conv1d of widths
3/4/5 -> ReLU -> max over time -> concat -> dense, on every target, and through ONNX."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc

VOCAB, DIM, LENGTH, FILTERS, CLASSES = 50, 24, 17, 8, 5


def text_cnn(batch: int = 3, ids_dtype: str = "int64") -> gc.Graph:
    gc.manual_seed(11)
    b = gc.GraphBuilder("text_cnn")
    ids = b.input("ids", (batch, LENGTH), ids_dtype)
    x = gc.transpose(gc.Embedding(VOCAB, DIM)(ids), (0, 2, 1))  # (N, D, L)
    pooled = [gc.GlobalMaxPool1d()(gc.ReLU()(gc.Conv1d(DIM, FILTERS, width)(x)))
              for width in (3, 4, 5)]
    y = gc.Dense(3 * FILTERS, CLASSES)(gc.Flatten()(gc.concat(pooled, axis=1)))
    return b.build(y)


def _ids(batch: int = 3, dtype: str = "int64", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-VOCAB, VOCAB, (batch, LENGTH)).astype(dtype)


@pytest.mark.parametrize("ids_dtype", ["int64", "int32"])
def test_text_cnn_matches_the_reference_on_every_target(ids_dtype):
    graph = text_cnn(ids_dtype=ids_dtype)
    ids = _ids(dtype=ids_dtype)
    want = gc.compile(graph, target="reference")(ids)
    assert want.shape == (3, CLASSES) and want.dtype == np.float32
    for level in (0, 1, 2, 3):
        got = gc.compile(graph, target="llvm", opt_level=level)(ids)
        assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want), level
    ort = gc.compile(graph, target="onnxruntime")(ids)
    assert np.linalg.norm(ort - want) <= 1e-5 * np.linalg.norm(want)


def test_text_cnn_round_trips_through_onnx(tmp_path):
    graph = text_cnn()
    gc.export_onnx(graph, str(tmp_path / "text_cnn.onnx"))
    back = gc.from_onnx(str(tmp_path / "text_cnn.onnx"))
    assert back.inputs[0].type.dtype == "int64"
    ids = _ids(seed=3)
    want = gc.compile(graph, target="reference")(ids)
    got = gc.compile(back, target="llvm")(ids)
    assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)


def test_an_unknown_token_is_an_input_error_on_every_native_target():
    graph = text_cnn()
    ids = _ids()
    ids[2, 5] = VOCAB
    for target in ("reference", "llvm"):
        with pytest.raises(gc.InputError, match=r"node 'embedding' \(gather\)"):
            gc.compile(graph, target=target)(ids)


def test_embedding_refuses_float_ids():
    b = gc.GraphBuilder("bad")
    with pytest.raises(gc.ShapeError, match="token ids"):
        gc.Embedding(4, 2)(b.input("x", (2, 3)))


def test_sequential_builds_an_int64_input():
    graph = gc.Sequential(gc.Embedding(10, 4), gc.Flatten()).build((2, 3), input_dtype="int64")
    assert graph.inputs[0].type.dtype == "int64"
    ids = np.array([[1, 2, 3], [-1, 0, 9]])
    np.testing.assert_array_equal(gc.compile(graph, target="llvm")(ids),
                                  gc.compile(graph, target="reference")(ids))
