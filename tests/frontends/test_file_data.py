"""Constants read from a model file on first use (graphcnn/frontends/file_data.py: Deferred,
the file-reading LazyData of restored import snapshots)."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc
from graphcnn.digests import _hash_array, constant_digests
from graphcnn.frontends.file_data import Deferred, file_identity
from graphcnn.ir import Graph, TensorType, Value


def deferred_graph(tmp_path, dtype=np.float32) -> tuple[Graph, np.ndarray, object]:
    """A conv whose weight is a Deferred over a file holding it at offset 5."""
    want = np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(dtype)
    path = tmp_path / "weights.bin"
    path.write_bytes(b"head!" + want.astype(want.dtype.newbyteorder("<")).tobytes() + b"tail")
    loader = Deferred(str(path), file_identity(path.stat()), 5, want.nbytes, want.dtype,
                      want.shape, _hash_array(want), "%w")
    g = Graph("deferred")
    x = g.add_input("x", (1, 2, 6, 6))
    w = Value(g.unique_name("w"), TensorType(want.shape, want.dtype.name), pending=loader)
    g.set_outputs([g.apply("conv", [x, w], {"pads": (1, 1, 1, 1)}, name="conv")])
    return g, want, loader


def test_deferred_constant_is_read_once_on_first_use(tmp_path):
    g, want, loader = deferred_graph(tmp_path)
    c = g.copy()
    w = g.constants[0]
    assert w.is_constant and w.pending is loader and c.constants[0].pending is loader
    gc.verify(g)
    gc.verify(c)
    assert constant_digests(c.constants) == [loader.digest]
    assert not loader.loaded  # copies, verify and digests read nothing
    np.testing.assert_array_equal(c.constants[0].data, want)
    assert loader.loaded and w.pending is loader  # g's value still defers to the loader...
    assert w.data is c.constants[0].data  # ...which read the file once for both
    assert not w.data.flags.writeable and w.data.dtype == want.dtype
    assert constant_digests([w]) == [loader.digest]
    w.data = np.zeros_like(want)  # setting data drops the loader
    assert w.pending is None and not w.data.any()


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int8, np.uint16])
def test_deferred_constant_dtypes(tmp_path, dtype):
    _, want, loader = deferred_graph(tmp_path, dtype)
    got = loader.load()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    v = Value("v", TensorType(want.shape, want.dtype.name), data=got)
    assert constant_digests([v]) == [loader.digest]


def test_deferred_constant_of_a_changed_file_is_a_model_load_error(tmp_path):
    g, _, loader = deferred_graph(tmp_path)
    path = tmp_path / "weights.bin"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + b"X")  # same size, new content
    with pytest.raises(gc.ModelLoadError, match=r"weights\.bin.*changed since it was imported.*%w"):
        g.constants[0].data  # noqa: B018
    assert g.constants[0].pending is loader  # still pending: a later access fails the same way


def test_deferred_constant_past_the_end_of_its_file_is_a_model_load_error(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 10)
    loader = Deferred(str(path), file_identity(path.stat()), 4, 8, np.dtype(np.float32), (2,),
                      b"\0" * 32, "%c")
    with pytest.raises(gc.ModelLoadError, match="short.bin"):
        loader.load()
    path.unlink()
    with pytest.raises(gc.ModelLoadError, match="cannot read constant %c"):
        loader.load()


def test_verify_checks_a_deferred_constant_against_its_declared_shape(tmp_path):
    g, _, loader = deferred_graph(tmp_path)
    g.constants[0].type = TensorType((3, 2, 3, 4))
    with pytest.raises(gc.GraphError, match="differs from type"):
        gc.verify(g)
    assert not loader.loaded
