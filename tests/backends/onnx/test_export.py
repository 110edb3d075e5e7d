"""ONNX export and the onnxruntime target: valid standard ONNX, names kept, typed errors."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphcnn.backends.onnx.export import OPSET

import graphcnn as gc
from graphcnn import models
from graphcnn.ir import Graph, Node


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def resnet():
    return models.resnet18(width=0.25, size=32)


@pytest.mark.parametrize("opt_level", [0, 2])
def test_export_passes_full_checker_with_fixed_opset(resnet, opt_level):
    graph = gc.optimize(resnet, opt_level=opt_level)
    proto = gc.to_onnx(graph)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import] == [OPSET]
    assert [i.name for i in proto.graph.input] == [v.name for v in graph.inputs]
    assert [o.name for o in proto.graph.output] == [v.name for v in graph.outputs]


def test_optimised_llvm_graph_still_exports_to_standard_onnx(resnet):
    """Fused epilogues and the blocked layout export as plain ONNX ops that onnxruntime runs."""
    graph = gc.optimize(resnet, opt_level=2, target="llvm")
    ops = {n.op for n in graph.nodes}
    x = np.random.default_rng(0).standard_normal(resnet.inputs[0].shape).astype(np.float32)
    ref = gc.compile(resnet, target="reference")(x)
    y = gc.compile(graph, target="onnxruntime", opt_level=0)(x)
    assert rel_l2(y, ref) <= 1e-5, ops


def test_round_trip_through_a_file(tmp_path, resnet):
    path = tmp_path / "resnet.onnx"
    gc.export_onnx(resnet, str(path))
    back = gc.from_onnx(str(path))
    x = np.random.default_rng(1).standard_normal(resnet.inputs[0].shape).astype(np.float32)
    a = gc.compile(resnet, target="reference")(x)
    b = gc.compile(back, target="reference")(x)
    assert rel_l2(b, a) <= 1e-6


def test_onnxruntime_target_reports_providers_and_checks_inputs(resnet):
    cm = gc.compile(resnet, target="onnxruntime")
    assert cm.providers[-1] == "CPUExecutionProvider"
    with pytest.raises(gc.InputError):
        cm(np.zeros((1, 3, 31, 32), np.float32))
    with pytest.raises(gc.InputError):
        cm(np.zeros((1, 3, 32, 32), np.float64))
    with pytest.raises(gc.InputError):
        cm.run({"image": np.zeros((1, 3, 32, 32), np.float32)})


def test_unsupported_ops_are_listed_all_at_once():
    g = Graph("strange")
    x = g.add_input("x", (1, 4))
    y = g.apply("relu", [x])
    for name in ("warp_a", "warp_b"):  # nodes the exporter has no rule for
        node = Node(name, "warp", [y], {})
        node.outputs = (gc.Value(name, y.type, producer=node),)
        g.nodes.append(node)
        y = node.outputs[0]
    g.set_outputs([y])
    with pytest.raises(gc.UnsupportedOpError, match=r"warp x2 \(warp_a, warp_b\)"):
        gc.to_onnx(g)


def test_sum_pool_exports_as_an_exact_sum():
    """No ONNX op sums windows: the export must give the sums exactly, not avg * k."""
    g = gc.Sequential(gc.SumPool2d(3, stride=2, ceil_mode=True)).build((1, 2, 8, 8))
    proto = gc.to_onnx(g)
    assert [n.op_type for n in proto.graph.node] == ["Conv"]
    x = np.random.default_rng(2).integers(-50, 50, (1, 2, 8, 8)).astype(np.float32)
    y = gc.compile(g, target="onnxruntime")(x)
    np.testing.assert_array_equal(y, gc.compile(g, target="reference")(x))


@pytest.mark.parametrize("opt_level", [0, 2])
def test_compile_does_not_mutate_the_callers_graph(resnet, opt_level):
    before = str(resnet)
    weights = {v.name: v.data.copy() for v in resnet.constants}
    nodes = list(resnet.nodes)
    gc.compile(resnet, target="onnxruntime", opt_level=opt_level)
    assert str(resnet) == before
    assert list(resnet.nodes) == nodes
    assert all(np.array_equal(v.data, weights[v.name]) for v in resnet.constants)


def test_threads_option_creates_one_session(resnet):
    cm = gc.compile(resnet, target="onnxruntime", threads=1)
    x = np.random.default_rng(3).standard_normal(resnet.inputs[0].shape).astype(np.float32)
    session = cm.session
    ref = gc.compile(resnet, target="reference")(x)
    assert rel_l2(cm(x), ref) <= 1e-5
    assert cm.session is session
    assert cm.session.get_session_options().intra_op_num_threads == 1
