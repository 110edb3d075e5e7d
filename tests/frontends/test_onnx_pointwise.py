"""The pointwise ONNX ops opset by opset against onnxruntime (runtime Clip bounds, PRelu's
slopes, n-ary Min/Max/Mean, Gelu-20's two forms, legacy broadcasting) and their bad attributes
and shapes as typed errors naming the node and the op."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper as h
from test_onnx_import import build, check, node, rand

import graphcnn as gc
from graphcnn.errors import ShapeError


@pytest.mark.parametrize("opset", [11, 12, 13, 22])
@pytest.mark.parametrize("bounds", ["min-max", "min", "max", "const-min-runtime-max"])
def test_clip_runtime_bounds_become_max_min(bounds, opset):
    x, lo, hi = rand(3, 17), np.array(-0.3, np.float32), np.array(0.6, np.float32)
    feeds, inits = {"x": x}, {}
    if bounds == "min-max":
        feeds.update(lo=lo, hi=hi)
        ins = ["x", "lo", "hi"]
    elif bounds == "min":
        feeds["lo"] = lo
        ins = ["x", "lo"]
    elif bounds == "max":
        feeds["hi"] = hi
        ins = ["x", "", "hi"]
    else:
        inits["lo"], feeds["hi"] = lo, hi
        ins = ["x", "lo", "hi"]
    graph = check([node("Clip", ins)], feeds, inits, opset=opset)
    assert "clip" not in [n.op for n in graph.nodes]
    got = gc.compile(graph, target="llvm").run(feeds)["y"]
    np.testing.assert_allclose(got, gc.compile(graph, target="reference").run(feeds)["y"])


def test_constant_clip_bounds_stay_the_fused_activation():
    inits = {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    graph = check([node("Clip", ["x", "lo", "hi"])], {"x": rand(2, 9)}, inits, opset=13)
    assert [n.op for n in graph.nodes] == ["clip"]


@pytest.mark.parametrize("opset", [7, 9, 16, 22])
@pytest.mark.parametrize("slope", [(4, 1, 1), (1,), (5,), (3, 4, 1, 5)])
def test_prelu_slopes_broadcast_into_x(slope, opset):
    check([node("PRelu", ["x", "s"])], {"x": rand(3, 4, 2, 5)}, {"s": rand(*slope)}, opset=opset)


def test_prelu_opset6_one_dim_slope_is_per_channel():
    x, s = rand(2, 3, 4), rand(3)
    want = np.where(x >= 0, x, x * s.reshape(3, 1))
    check([node("PRelu", ["x", "s"])], {"x": x}, {"s": s}, opset=6, expected=[want])


@pytest.mark.parametrize("opset", [6, 8, 13])
@pytest.mark.parametrize("op", ["Min", "Max", "Mean", "Sum"])
def test_n_ary_ops(op, opset):
    shapes = [(3, 7)] * 3 if opset < 8 else [(3, 7), (7,), (3, 1)]
    feeds = {f"x{i}": rand(*s) for i, s in enumerate(shapes)}
    check([node(op, list(feeds))], feeds, opset=opset)


@pytest.mark.parametrize("opset", [6, 7, 13, 14])
@pytest.mark.parametrize("op", ["Sub", "Div"])
def test_sub_div_with_broadcasting(op, opset):
    if opset < 7:  # the legacy broadcast attribute: b's dims line up with a's from axis 1
        a, b = rand(2, 3, 4), rand(3)
        fn = np.subtract if op == "Sub" else np.divide
        check([node(op, ["a", "b"], broadcast=1, axis=1)], {"a": a, "b": b}, opset=opset,
              expected=[fn(a, b.reshape(3, 1))])
    else:
        check([node(op, ["a", "b"])], {"a": rand(2, 3, 4), "b": rand(3, 1)}, opset=opset)


@pytest.mark.parametrize("opset", [7, 12, 13, 15])
def test_pow(opset):
    x, e = np.abs(rand(4, 5)) + np.float32(0.1), rand(5)
    check([node("Pow", ["x", "e"])], {"x": x, "e": e}, opset=opset)


@pytest.mark.parametrize("approximate", [None, "none", "tanh"])
def test_gelu20_both_forms(approximate):
    attrs = {} if approximate is None else {"approximate": approximate}
    graph = check([node("Gelu", ["x"], **attrs)], {"x": rand(3, 19) * 3}, opset=20)
    assert [n.op for n in graph.nodes] == ["gelu_tanh" if approximate == "tanh" else "gelu"]


@pytest.mark.parametrize("op,attrs,opset", [
    ("Elu", {"alpha": 0.4}, 6), ("Selu", {"alpha": 1.2, "gamma": 0.9}, 6),
    ("Celu", {"alpha": 0.5}, 12), ("ThresholdedRelu", {"alpha": 0.3}, 10),
    ("Softplus", {}, 7), ("Softsign", {}, 7), ("Mish", {}, 18), ("Erf", {}, 9),
    ("Tanh", {}, 7), ("Round", {}, 11), ("Sign", {}, 9), ("Reciprocal", {}, 7),
])
def test_unary_with_attributes(op, attrs, opset):
    check([node(op, ["x"], **attrs)], {"x": rand(4, 11) * 2}, opset=opset)


# ----- typed errors ----------------------------------------------------------------------------
def _import_error(nodes, feeds, inits=None, opset=13):
    with pytest.raises(ShapeError) as info:
        gc.from_onnx(build(nodes, feeds, inits, opset))
    return str(info.value)


def test_gelu_unknown_approximate():
    msg = _import_error([node("Gelu", ["x"], approximate="fast")], {"x": rand(3)}, opset=20)
    assert "gelu0" in msg and "Gelu" in msg and "'fast'" in msg


def test_celu_alpha_zero():
    msg = _import_error([node("Celu", ["x"], alpha=0.0)], {"x": rand(3)}, opset=12)
    assert "celu0" in msg and "celu" in msg and "alpha" in msg
    g = gc.Graph("celu")
    with pytest.raises(ShapeError, match="alpha must be non-zero"):
        g.apply("celu", [g.add_input("x", (3,))], {"alpha": 0.0})


def test_prelu_slope_that_does_not_broadcast_into_x():
    msg = _import_error([node("PRelu", ["x", "s"])], {"x": rand(2, 3, 4)}, {"s": rand(3, 4, 1)})
    assert "prelu0" in msg and "prelu" in msg.lower() and "broadcast" in msg
    msg = _import_error([node("PRelu", ["x", "s"])], {"x": rand(2, 3, 4)}, {"s": rand(2, 1, 1, 1)})
    assert "prelu0" in msg


@pytest.mark.parametrize("op", ["Pow", "Div", "Sub", "Max", "Mean"])
def test_shapes_that_do_not_broadcast(op):
    msg = _import_error([node(op, ["a", "b"])], {"a": rand(2, 3), "b": rand(4)})
    assert f"{op.lower()}0" in msg and op in msg and "broadcast" in msg


def test_clip_runtime_bound_not_a_scalar():
    msg = _import_error([node("Clip", ["x", "lo"])], {"x": rand(2, 3), "lo": rand(3)})
    assert "clip0" in msg and "min must be a scalar" in msg


def test_integer_division_by_zero_at_import():
    inits = {"a": np.array([4, 5], np.int64), "b": np.array([2, 0], np.int64)}
    model = h.make_model(h.make_graph(
        [node("Div", ["a", "b"], ["q"]), node("Cast", ["q"], to=1)], "t", [],
        [h.make_tensor_value_info("y", 1, None)],
        initializer=[__import__("onnx").numpy_helper.from_array(v, k) for k, v in inits.items()]),
        opset_imports=[h.make_opsetid("", 13)])
    with pytest.raises(ShapeError, match="integer division by zero"):
        gc.from_onnx(model)
