"""ONNX import of LayerNormalization, InstanceNormalization, GroupNormalization (opset 18: scale
and bias per group; 21: per channel), LpNormalization, MeanVarianceNormalization: numerics on
reference, llvm (opt levels 0..3) and onnxruntime against numpy, and a typed error for each bad
attribute."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphcnn as gc
from graphcnn.errors import ShapeError, UnsupportedOpError
from graphcnn.frontends.onnx import from_onnx

RNG = np.random.default_rng(7)


def _model(op: str, opset: int, shape, attrs: dict, params=(), n_outputs: int = 1
           ) -> onnx.ModelProto:
    names = ["x"] + [f"p{i}" if p is not None else "" for i, p in enumerate(params)]
    inits = [numpy_helper.from_array(p, f"p{i}") for i, p in enumerate(params) if p is not None]
    outs = ["y"] + [f"y{i}" for i in range(1, n_outputs)]
    node = helper.make_node(op, names, outs, name="n", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(shape))], [helper.make_tensor_value_info(
            o, TensorProto.FLOAT, None) for o in outs], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _standardize(x, axes, eps):
    x = x.astype(np.float64)
    m = x.mean(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(((x - m) ** 2).mean(axis=axes, keepdims=True) + eps)


def _check(model, x, want, targets=("reference", "llvm", "onnxruntime"), tol=1e-5):
    graph = from_onnx(model)
    runs = [(t, 2) for t in targets] + [("llvm", level) for level in (0, 1, 3)]
    for target, level in runs:
        got = gc.compile(graph, target=target, opt_level=level)(x)
        got = got if isinstance(got, tuple) else (got,)
        want_all = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want_all):
            err = np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30)
            assert err < tol, f"{target} at opt level {level}: rel L2 {err:.2e}"


@pytest.mark.parametrize("axis", [-1, 1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm(axis, bias):
    x = RNG.standard_normal((2, 8, 5, 24)).astype(np.float32) * 3 + 1
    norm = x.shape[axis % 4:]
    scale, b = RNG.standard_normal(norm).astype(np.float32), RNG.standard_normal(norm)
    params = [scale] + ([b.astype(np.float32)] if bias else [])
    want = _standardize(x, tuple(range(axis % 4, 4)), 1e-5) * scale + (b if bias else 0)
    _check(_model("LayerNormalization", 17, x.shape, {"axis": axis}, params), x, want)


def test_layer_norm_broadcast_scale_and_stats_outputs():
    x = RNG.standard_normal((3, 4, 10)).astype(np.float32)
    scale = np.array([1.5], np.float32)  # broadcast to the normalized shape (10,)
    model = _model("LayerNormalization", 17, x.shape, {"axis": -1, "epsilon": 1e-3}, [scale],
                   n_outputs=3)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    inv = 1 / np.sqrt(((x64 - mean) ** 2).mean(axis=-1, keepdims=True) + 1e-3)
    _check(model, x, ((x64 - mean) * inv * 1.5, mean, inv), targets=("reference", "llvm"))


@pytest.mark.parametrize("version", [1, 6, 22])
def test_instance_norm(version):
    x = RNG.standard_normal((2, 5, 7, 9)).astype(np.float32)
    scale, b = RNG.standard_normal(5).astype(np.float32), RNG.standard_normal(5).astype(np.float32)
    want = _standardize(x, (2, 3), 1e-4) * scale.reshape(5, 1, 1) + b.reshape(5, 1, 1)
    _check(_model("InstanceNormalization", max(version, 7), x.shape, {"epsilon": 1e-4},
                  [scale, b]), x, want)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_norm(opset):
    x = RNG.standard_normal((2, 6, 5, 7)).astype(np.float32)
    groups = 3
    n = groups if opset == 18 else 6
    scale, b = RNG.standard_normal(n).astype(np.float32), RNG.standard_normal(n).astype(np.float32)
    per_channel = (np.repeat(scale, 2), np.repeat(b, 2)) if opset == 18 else (scale, b)
    want = _standardize(x.reshape(2, groups, -1), (2,), 1e-5).reshape(x.shape)
    want = want * per_channel[0].reshape(6, 1, 1) + per_channel[1].reshape(6, 1, 1)
    model = _model("GroupNormalization", opset, x.shape, {"num_groups": groups}, [scale, b])
    targets = ("reference", "llvm", "onnxruntime")
    _check(model, x, want, targets=targets)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_lp_norm(p, axis):
    x = RNG.standard_normal((3, 20, 6)).astype(np.float32)
    norm = np.linalg.norm(x.astype(np.float64), ord=p, axis=axis, keepdims=True) if p == 2 \
        else np.abs(x.astype(np.float64)).sum(axis=axis, keepdims=True)
    _check(_model("LpNormalization", 7, x.shape, {"axis": axis, "p": p}), x, x / norm)


@pytest.mark.parametrize("axes", [None, [0, 2, 3], [1], [2, 3]])
def test_mean_variance_norm(axes):
    x = RNG.standard_normal((2, 3, 5, 17)).astype(np.float32)
    ax = tuple(axes or (0, 2, 3))
    x64 = x.astype(np.float64)
    m = x64.mean(axis=ax, keepdims=True)
    want = (x64 - m) / (np.sqrt(((x64 - m) ** 2).mean(axis=ax, keepdims=True)) + 1e-9)
    attrs = {} if axes is None else {"axes": axes}
    _check(_model("MeanVarianceNormalization", 13, x.shape, attrs), x, want)


# ----- bad attributes: typed errors naming the node and its op --------------------------------
BAD = [
    ("LayerNormalization", 17, (2, 3), {"epsilon": -1.0}, [np.ones(3, np.float32)], "epsilon"),
    ("LayerNormalization", 17, (2, 3), {"axis": 2}, [np.ones(3, np.float32)], "axis"),
    ("LayerNormalization", 17, (2, 3), {}, [np.ones(2, np.float32)], "broadcast"),
    ("InstanceNormalization", 7, (1, 2, 3), {"epsilon": -0.5},
     [np.ones(2, np.float32), np.zeros(2, np.float32)], "epsilon"),
    ("InstanceNormalization", 7, (1, 2, 3), {},
     [np.ones(3, np.float32), np.zeros(2, np.float32)], "scale"),
    ("GroupNormalization", 21, (1, 6, 3), {"num_groups": 4},
     [np.ones(6, np.float32), np.zeros(6, np.float32)], "num_groups"),
    ("GroupNormalization", 21, (1, 6, 3), {"num_groups": 0},
     [np.ones(6, np.float32), np.zeros(6, np.float32)], "num_groups"),
    ("GroupNormalization", 18, (1, 6, 3), {"num_groups": 3},
     [np.ones(6, np.float32), np.zeros(6, np.float32)], "per group"),
    ("GroupNormalization", 21, (1, 6, 3), {"num_groups": 3, "epsilon": -1.0},
     [np.ones(6, np.float32), np.zeros(6, np.float32)], "epsilon"),
    ("LpNormalization", 7, (2, 3), {"p": 3}, [], "p 3"),
    ("LpNormalization", 7, (2, 3), {"axis": -3}, [], "axis"),
    ("MeanVarianceNormalization", 13, (2, 3), {}, [], "out of range"),
    ("MeanVarianceNormalization", 13, (2, 3, 4), {"axes": [1, -2]}, [], "repeat"),
]


@pytest.mark.parametrize("op,opset,shape,attrs,params,match", BAD,
                         ids=[f"{b[0]}-{b[5]}" for b in BAD])
def test_bad_attributes_are_shape_errors(op, opset, shape, attrs, params, match):
    with pytest.raises(ShapeError, match=match) as info:
        from_onnx(_model(op, opset, shape, attrs, params))
    assert "'n'" in str(info.value) and op in str(info.value)


def test_runtime_group_scale_at_opset_18_is_a_typed_error():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])
    node = helper.make_node("GroupNormalization", ["x", "s", "s"], ["y"], name="n",
                            num_groups=2)
    g = helper.make_graph([node], "g", [x, s], [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, None)])
    with pytest.raises(UnsupportedOpError, match="GroupNormalization"):
        from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))


def _style_block_model() -> onnx.ModelProto:
    """conv -> InstanceNormalization -> Relu -> conv, as style-transfer networks are exported
    (20 channels: the last block of 16 has padding lanes)."""
    inits = [numpy_helper.from_array(RNG.standard_normal(s).astype(np.float32) * 0.3, n)
             for n, s in (("w1", (20, 3, 3, 3)), ("b1", (20,)), ("g", (20,)), ("beta", (20,)),
                          ("w2", (8, 20, 3, 3)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("InstanceNormalization", ["c1", "g", "beta"], ["n1"],
                              epsilon=1e-5),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "style", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 10, 12])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 8, 10, 12])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("opt_level", [2, 3])
def test_instance_norm_runs_blocked_between_convs(opt_level):
    from graphcnn.backends.reference import interpret
    graph = from_onnx(_style_block_model())
    opt = gc.optimize(graph, opt_level=opt_level, target="llvm")
    names = [n.op for n in opt.nodes]
    norm = next(n for n in opt.nodes if n.op == "group_norm")
    assert norm.attrs["layout"] == "NCHWc", names
    convs = [i for i, n in enumerate(opt.nodes) if n.op == "conv"]
    assert not {"to_blocked", "from_blocked"} & set(names[convs[0]:convs[-1]]), names
    x = RNG.standard_normal((1, 3, 10, 12)).astype(np.float32)
    want = interpret(graph, [x])[0]
    for target in ("llvm", "onnxruntime"):
        got = gc.compile(graph, target=target, opt_level=opt_level)(x)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
