"""Taps (graphcnn/taps.py): named intermediates on every target, also values fusion removed,
compared with the reference interpreter's; unknown names as a typed error with close matches."""
from __future__ import annotations

import numpy as np
import pytest
from debug_models import conv_bn_relu, fallback_model, onnx_model

import graphcnn as gc
from graphcnn.taps import UnknownTapError

TARGETS = ["llvm", "onnxruntime", "reference"]


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def x_for(graph: gc.Graph) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(graph.inputs[0].type.shape).astype(np.float32)


def test_fusion_removes_the_batch_norm_taps_still_see_it():
    graph = conv_bn_relu()
    assert "batch_norm" not in [n.op for n in gc.optimize(graph, target="llvm").nodes]
    x = x_for(graph)
    ref = gc.compile(graph, target="reference").run({"input": x}, taps=["bn", "relu_1"])
    cm = gc.compile(graph, target="llvm")
    got = cm.run({"input": x}, taps=["bn", "relu_1"])
    assert list(got) == ["dense", "bn", "relu_1"]  # outputs first, then the taps as asked
    for name in ("dense", "bn", "relu_1"):
        assert got[name].shape == ref[name].shape
        assert rel_l2(got[name], ref[name]) < 1e-5, name
    # the bn output is not the conv's: the tap holds the normalised values
    assert rel_l2(got["bn"], cm.run({"input": x}, taps=["conv"])["conv"]) > 1e-2
    np.testing.assert_array_equal(got["dense"], cm(x))  # the debug build runs the same kernels


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_taps_every_name(target):
    graph = conv_bn_relu()
    x = x_for(graph)
    ref_model = gc.compile(graph, target="reference")
    cm = gc.compile(graph, target=target)
    names = cm.tensor_names()
    assert names == [v.name for n in graph.nodes for v in n.outputs]
    assert names == ref_model.tensor_names()
    got, want = cm.run({"input": x}, taps=names), ref_model.run({"input": x}, taps=names)
    for name in names:
        assert rel_l2(got[name], want[name]) < 1e-5, name
    plain = cm.run({"input": x})
    assert list(plain) == ["dense"]  # no taps: the outputs alone, as before


def test_onnx_import_taps_by_onnx_tensor_names():
    graph = gc.from_onnx(onnx_model())
    x = x_for(graph)
    cm = gc.compile(graph, target="llvm")
    assert {"conv_out", "bn_out", "relu_out"} <= set(cm.tensor_names())
    taps = ["bn_out", "relu_out"]
    got = cm.run({"x": x}, taps=taps)
    want = gc.compile(graph, target="reference").run({"x": x}, taps=taps)
    for name in taps:
        assert rel_l2(got[name], want[name]) < 1e-5, name
    assert got["relu_out"].min() >= 0 and got["bn_out"].min() < 0


def test_fallback_model_taps_native_and_onnxruntime_values():
    graph = gc.from_onnx(fallback_model(), unsupported="keep")
    x = x_for(graph)
    cm = gc.compile(graph, target="llvm", fallback="onnxruntime")
    got = cm.run({"x": x}, taps=["c1", "hm"])
    want = gc.compile(graph, target="reference").run({"x": x}, taps=["c1", "hm"])
    assert list(got) == ["y", "c1", "hm"]
    for name in got:
        assert rel_l2(got[name], want[name]) < 1e-5, name


def test_no_taps_or_only_outputs_need_no_debug_build():
    cm = gc.compile(conv_bn_relu(), target="reference")
    x = x_for(cm.graph)
    assert list(cm.run({"input": x}, taps=[])) == ["dense"]
    assert list(cm.run({"input": x}, taps=["dense"])) == ["dense"]
    assert cm._recipe.builds == {}


def test_unknown_tap_lists_close_matches():
    cm = gc.compile(conv_bn_relu(), target="reference")
    x = x_for(cm.graph)
    with pytest.raises(UnknownTapError, match=r"'bn_2'.*closest: .*bn_1") as info:
        cm.run({"input": x}, taps=["bn_2"])
    assert isinstance(info.value, gc.InputError)
    with pytest.raises(gc.InputError, match="list of value names"):
        cm.run({"input": x}, taps="bn")


def test_a_loaded_model_cannot_tap(tmp_path):
    cm = gc.compile(conv_bn_relu(), target="llvm")
    cm.save(tmp_path / "m.gcm")
    loaded = gc.load(tmp_path / "m.gcm")
    with pytest.raises(gc.CompileError, match="keeps only its code"):
        loaded.tensor_names()
