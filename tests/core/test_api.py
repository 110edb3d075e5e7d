"""gc.compile / CompiledModel contract on the reference target (other targets repeat it)."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc


@pytest.fixture
def graph():
    return gc.Sequential(gc.Conv2d(1, 2, 3, seed=0), gc.ReLU(), gc.Flatten(),
                         gc.Dense(2 * 4 * 4, 3, seed=1), gc.Softmax()).build((2, 1, 6, 6))


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)


def test_call_and_run_agree(graph, x):
    cm = gc.compile(graph, target="reference")
    y = cm(x)
    outs = cm.run({"input": x})
    assert list(outs) == cm.output_names and cm.input_names == ["input"]
    np.testing.assert_array_equal(outs[cm.output_names[0]], y)


def test_compile_does_not_mutate_the_graph(graph):
    before = str(graph)
    for level in range(4):
        gc.compile(graph, target="reference", opt_level=level)
    assert str(graph) == before


@pytest.mark.parametrize("bad,match", [
    (lambda x: x[:, :, :5], "shape"),
    (lambda x: x.astype(np.float64), "dtype float64"),
    (lambda x: x.astype(np.int32), "dtype int32"),
])
def test_input_errors(graph, x, bad, match):
    cm = gc.compile(graph, target="reference")
    with pytest.raises(gc.InputError, match=match):
        cm(bad(x))


def test_wrong_names_and_counts(graph, x):
    cm = gc.compile(graph, target="reference")
    with pytest.raises(gc.InputError, match="unknown input name"):
        cm.run({"images": x})
    with pytest.raises(gc.InputError, match="takes 1 input"):
        cm(x, x)


def test_non_contiguous_input_is_copied(graph, x):
    cm = gc.compile(graph, target="reference")
    wide = np.repeat(x, 2, axis=3)[:, :, :, ::2]
    assert not wide.flags.c_contiguous
    np.testing.assert_array_equal(cm(wide), cm(x))


def test_unknown_target():
    with pytest.raises(gc.CompileError, match="unknown target"):
        gc.compile(gc.Sequential(gc.ReLU()).build((1, 2)), target="tpu")


@pytest.mark.parametrize("target", ["llvm", "reference", "onnxruntime"])
@pytest.mark.parametrize("level", [9, 7, -1, "2", 2.0, True])
def test_opt_level_out_of_range_is_a_typed_error_naming_the_levels(graph, target, level):
    from graphcnn.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match=r"opt_level must be one of \(0, 1, 2, 3\)") as e:
        gc.compile(graph, target=target, opt_level=level)
    assert isinstance(e.value, gc.CompileError) and isinstance(e.value, ValueError)
    with pytest.raises(gc.CompileError, match=r"\(0, 1, 2, 3\)"):
        gc.optimize(graph, opt_level=9)
