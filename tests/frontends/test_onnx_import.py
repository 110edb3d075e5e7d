# ruff: noqa: C408  (attribute tables read best as dict(...))
"""The import table, op by op and opset by opset: every attribute variant the importer resolves,
checked numerically on random inputs against onnxruntime (or, for the opsets onnxruntime does
not implement, onnx's reference evaluator)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import graphcnn as gc
from graphcnn.errors import InputError, ShapeError, UnsupportedOpError

RNG = np.random.default_rng(0)


def rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def i64(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def build(nodes, feeds: dict, inits: dict | None = None, opset: int = 13,
          outputs=("y",)) -> onnx.ModelProto:
    inputs = [h.make_tensor_value_info(k, T.FLOAT, list(v.shape)) for k, v in feeds.items()]
    graph = h.make_graph(nodes, "t", inputs,
                         [h.make_tensor_value_info(o, T.FLOAT, None) for o in outputs],
                         initializer=[numpy_helper.from_array(v, k)
                                      for k, v in (inits or {}).items()])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = 7 if opset < 15 else 8
    return model


def check(nodes, feeds: dict, inits: dict | None = None, opset: int = 13,
          outputs=("y",), expected: list | None = None) -> gc.Graph:
    model = build(nodes, feeds, inits, opset, outputs)
    if expected is None:
        expected = oracle(model, feeds)
    graph = gc.from_onnx(model)
    got = gc.compile(graph, target="reference").run(feeds)
    assert list(got) == list(outputs)  # ONNX output names survive import
    for name, want in zip(outputs, expected):
        assert got[name].shape == want.shape
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5)
    return graph


def oracle(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    try:
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    except Exception:  # noqa: BLE001  (an op version or attribute onnxruntime lacks)
        return ReferenceEvaluator(model).run(None, feeds)


def node(op, inputs, outputs=("y",), **attrs):
    return h.make_node(op, list(inputs), list(outputs), name=f"{op.lower()}0", **attrs)


# ----- convolution ----------------------------------------------------------------------------

CONV_VARIANTS = {
    "same_upper_stride2": dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    "same_lower_stride2": dict(auto_pad="SAME_LOWER", strides=[2, 2]),
    "same_upper_dilated": dict(auto_pad="SAME_UPPER", dilations=[2, 2]),
    "valid": dict(auto_pad="VALID", strides=[2, 1]),
    "asymmetric_pads": dict(pads=[0, 1, 2, 3]),
    "dilated_strided": dict(dilations=[2, 1], strides=[1, 2], pads=[1, 1, 1, 1]),
    "kernel_shape_attr": dict(kernel_shape=[3, 3], group=1),
}


@pytest.mark.parametrize("opset", [1, 11, 22])
@pytest.mark.parametrize("variant", sorted(CONV_VARIANTS))
def test_conv_variants(variant, opset):
    check([node("Conv", ["x", "w", "b"], **CONV_VARIANTS[variant])], {"x": rand(1, 4, 9, 8)},
          {"w": rand(6, 4, 3, 3), "b": rand(6)}, opset=opset)


def test_conv_groups_no_bias_and_1d_3d():
    check([node("Conv", ["x", "w"], group=2)], {"x": rand(2, 4, 7, 7)}, {"w": rand(6, 2, 3, 3)})
    check([node("Conv", ["x", "w"], pads=[1, 2])], {"x": rand(1, 3, 10)}, {"w": rand(2, 3, 4)})
    check([node("Conv", ["x", "w"], strides=[2, 1, 1])], {"x": rand(1, 2, 5, 4, 4)},
          {"w": rand(3, 2, 2, 2, 2)})


def test_conv_kernel_shape_must_match_the_weight():
    with pytest.raises(ShapeError, match="conv0"):
        gc.from_onnx(build([node("Conv", ["x", "w"], kernel_shape=[5, 5])], {"x": rand(1, 2, 8, 8)},
                           {"w": rand(3, 2, 3, 3)}))


# ----- pooling ----------------------------------------------------------------------------------

POOL_VARIANTS = {
    "plain": dict(kernel_shape=[3, 3]),
    "strided_pads": dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 2]),
    "same_upper": dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER"),
    "same_lower": dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_LOWER"),
    "valid": dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"),
    "ceil_mode": dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    "ceil_mode_pads": dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    "dilations": dict(kernel_shape=[2, 2], dilations=[2, 2]),
}
_NEEDS = {"ceil_mode": 10, "ceil_mode_pads": 10, "dilations": 10}


def _variants(opsets: list[int], needs: dict[str, int]) -> list[tuple[str, int]]:
    """(variant, opset) pairs where the opset has the variant's attributes."""
    return [(v, o) for v in sorted(POOL_VARIANTS) for o in opsets if o >= needs.get(v, 0)]


@pytest.mark.parametrize("variant,opset", _variants([8, 10, 12, 22], _NEEDS))
def test_max_pool_variants(variant, opset):
    check([node("MaxPool", ["x"], **POOL_VARIANTS[variant])], {"x": rand(1, 3, 9, 10)},
          opset=opset)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("variant,opset", _variants([7, 10, 11, 19, 22],
                                                   {**_NEEDS, "dilations": 19}))
def test_average_pool_variants(variant, count_include_pad, opset):
    check([node("AveragePool", ["x"], count_include_pad=count_include_pad,
                **POOL_VARIANTS[variant])], {"x": rand(1, 3, 9, 10)}, opset=opset)


def test_average_pool_opset1_excludes_padding():
    """AveragePool-1: "divided by the number of elements exclude pad" (= count_include_pad 0)."""
    x = {"x": rand(1, 2, 5, 5)}
    attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    want = oracle(build([node("AveragePool", ["x"], count_include_pad=0, **attrs)], x, opset=7), x)
    check([node("AveragePool", ["x"], **attrs)], x, opset=6, expected=want)


def test_max_pool_indices_output_is_unsupported():
    model = build([node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2])],
                  {"x": rand(1, 1, 4, 4)}, outputs=("y",))
    with pytest.raises(UnsupportedOpError, match="Indices") as info:
        gc.from_onnx(model)
    assert info.value.ops == {"MaxPool": ["maxpool0"]}


def test_global_pools():
    check([node("GlobalAveragePool", ["x"], ["a"]), node("GlobalMaxPool", ["x"], ["b"]),
           node("Add", ["a", "b"])], {"x": rand(2, 3, 5, 4)})


# ----- activations --------------------------------------------------------------------------------

def test_activations():
    check([node("Relu", ["x"], ["a"]), node("LeakyRelu", ["a"], ["b"]),
           node("LeakyRelu", ["b"], ["c"], alpha=0.3), node("Sigmoid", ["c"])],
          {"x": rand(2, 3, 4)})


@pytest.mark.parametrize("opset", [6, 11, 12, 13])
def test_clip_attributes_or_inputs(opset):
    if opset < 11:
        nodes = [node("Clip", ["x"], min=-0.5, max=0.7)]
        inits = {}
    else:
        nodes = [node("Clip", ["x", "lo", "hi"])]
        inits = {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}
    check(nodes, {"x": rand(3, 4)}, inits, opset=opset)


def test_clip_with_only_a_max_input():
    check([node("Clip", ["x", "", "hi"])], {"x": rand(3, 4)}, {"hi": np.array(0.2, np.float32)})


@pytest.mark.parametrize("opset,axis", [(1, 1), (11, 1), (11, 0), (11, 2), (11, -1), (11, -3),
                                        (13, 1), (13, -1), (13, 0)])
def test_softmax_axis_semantics(opset, axis):
    graph = check([node("Softmax", ["x"], axis=axis)], {"x": rand(2, 3, 4, 5)}, opset=opset)
    coerced = opset < 13 and axis % 4 != 3
    assert [n.op for n in graph.nodes] == (["flatten", "softmax", "reshape"] if coerced
                                           else ["softmax"])


def test_softmax_default_axis_differs_by_opset():
    x = {"x": rand(2, 3, 4)}
    check([node("Softmax", ["x"])], x, opset=11)  # axis 1, over dims 1 and 2 together
    check([node("Softmax", ["x"])], x, opset=13)  # axis -1


# ----- dense -------------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [6, 7, 9, 11, 13])
@pytest.mark.parametrize("attrs,c_shape", [
    ({}, (5,)), ({"transA": 1}, (4, 5)), ({"transB": 1}, (1, 5)), ({"alpha": 0.5}, (4, 1)),
    ({"beta": 2.0, "transA": 1, "transB": 1}, ()), ({"alpha": 0.3, "beta": 0.0}, (4, 5)),
])
def test_gemm(attrs, c_shape, opset):
    a = rand(3, 4) if attrs.get("transA") else rand(4, 3)
    b = rand(5, 3) if attrs.get("transB") else rand(3, 5)
    if opset < 7:
        attrs = {**attrs, "broadcast": 1}
    check([node("Gemm", ["a", "b", "c"], **attrs)], {"a": a}, {"b": b, "c": rand(*c_shape)},
          opset=opset)


def test_gemm_without_c():
    check([node("Gemm", ["a", "b"], transB=1, alpha=2.0)], {"a": rand(2, 3)}, {"b": rand(4, 3)},
          opset=11)


def test_matmul_batched_and_vector():
    check([node("MatMul", ["a", "b"], ["m"]), node("MatMul", ["m", "v"])],
          {"a": rand(2, 3, 4)}, {"b": rand(4, 5), "v": rand(5)})


# ----- data movement -------------------------------------------------------------------------------

@pytest.mark.parametrize("opset,axis", [(1, 0), (9, 3), (11, -1), (13, -4), (13, 2)])
def test_flatten_axis(opset, axis):
    check([node("Flatten", ["x"], axis=axis)], {"x": rand(2, 3, 4, 5)}, opset=opset)


@pytest.mark.parametrize("shape,allowzero", [((0, -1), 0), ((-1, 4), 0), ((2, 0, 4, 1), 0),
                                             ((6, 4), 1), ((3, -1, 2), 1)])
def test_reshape_zero_and_minus_one(shape, allowzero):
    opset = 14 if allowzero else 13
    attrs = {"allowzero": allowzero} if allowzero else {}
    check([node("Reshape", ["x", "s"], **attrs)], {"x": rand(2, 3, 4)}, {"s": i64(*shape)},
          opset=opset)


def test_reshape_needs_a_constant_shape():
    model = build([node("Reshape", ["x", "s"])], {"x": rand(2, 3), "s": rand(2)})
    with pytest.raises(UnsupportedOpError, match="reshape0.*shape is not a constant|shape"):
        gc.from_onnx(model)


def test_transpose_default_and_explicit():
    check([node("Transpose", ["x"], ["t"]), node("Transpose", ["t"], perm=[1, 0, 2])],
          {"x": rand(2, 3, 4)})


def test_concat_negative_axis_and_constants():
    check([node("Concat", ["x", "c", "x"], axis=-2)], {"x": rand(2, 3, 4)}, {"c": rand(2, 1, 4)})


@pytest.mark.parametrize("opset", [2, 11, 13, 18, 19])
def test_pad_attribute_or_inputs(opset):
    pads = [0, 1, 2, 0, 2, 1]
    if opset < 11:
        nodes, inits = [node("Pad", ["x"], pads=pads, value=1.5)], {}
    else:
        nodes = [node("Pad", ["x", "p", "v"])]
        inits = {"p": i64(*pads), "v": np.array(1.5, np.float32)}
    check(nodes, {"x": rand(2, 3, 4)}, inits, opset=opset)


def test_pad_axes_input_and_negative_pads():
    check([node("Pad", ["x", "p", "", "axes"])], {"x": rand(2, 3, 4)},
          {"p": i64(2, -1, 1, -1), "axes": i64(-1, 1)}, opset=18)


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_pad_reflect_and_edge_modes(mode):
    check([node("Pad", ["x", "p"], mode=mode)], {"x": rand(2, 3)}, {"p": i64(0, 1, 0, 1)})


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_squeeze_unsqueeze_attributes_or_inputs(opset):
    if opset < 13:
        nodes = [node("Unsqueeze", ["x"], ["u"], axes=[0, -1]), node("Squeeze", ["u"], axes=[-1])]
        inits = {}
    else:
        nodes = [node("Unsqueeze", ["x", "ua"], ["u"]), node("Squeeze", ["u", "sa"])]
        inits = {"ua": i64(0, -1), "sa": i64(-1)}
    check(nodes, {"x": rand(3, 4)}, inits, opset=opset)


def test_squeeze_without_axes():
    check([node("Squeeze", ["x"])], {"x": rand(1, 3, 1, 4)})


def test_identity_and_sum():
    check([node("Identity", ["x"], ["i"]), node("Sum", ["i", "a", "b"])],
          {"x": rand(2, 3, 4)}, {"a": rand(3, 1), "b": rand(4)})


@pytest.mark.parametrize("opset", [7, 10, 12, 13, 22])
def test_dropout_is_identity_at_inference(opset):
    if opset < 12:
        nodes, inits = [node("Dropout", ["x"], ratio=0.3)], {}
    else:
        nodes = [node("Dropout", ["x", "r", "t"])]
        inits = {"r": np.array(0.3, np.float32), "t": np.array(False)}
    check(nodes, {"x": rand(2, 5)}, inits, opset=opset)


def test_dropout_training_mode_true_is_unsupported():
    model = build([node("Dropout", ["x", "r", "t"])], {"x": rand(2, 5)},
                  {"r": np.array(0.3, np.float32), "t": np.array(True)})
    with pytest.raises(UnsupportedOpError, match="training_mode"):
        gc.from_onnx(model)


def test_dropout_mask_output_is_all_true():
    model = build([node("Dropout", ["x"], ["y", "mask"])], {"x": rand(2, 5)}, opset=13)
    graph = gc.from_onnx(model)
    assert graph.outputs[0].name == "y"


# ----- arithmetic and normalisation ----------------------------------------------------------------

@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_legacy_broadcast_with_axis(op):
    a, b = rand(2, 3, 4, 5), rand(3, 4)
    want = (a + b[:, :, None]) if op == "Add" else (a * b[:, :, None])
    check([node(op, ["a", "b"], broadcast=1, axis=1)], {"a": a}, {"b": b}, opset=6,
          expected=[want])


@pytest.mark.parametrize("op", ["Add", "Mul"])
@pytest.mark.parametrize("opset", [7, 13, 14])
def test_numpy_broadcast(op, opset):
    check([node(op, ["a", "b"])], {"a": rand(2, 1, 4), "b": rand(3, 1)}, opset=opset)


@pytest.mark.parametrize("opset", [6, 7, 9, 14, 15])
def test_batch_norm(opset):
    attrs = {"epsilon": 1e-3}
    if opset < 7:
        attrs["is_test"] = 1
    c = 3
    params = {"s": rand(c), "bb": rand(c), "m": rand(c), "v": np.abs(rand(c)) + 0.5}
    check([node("BatchNormalization", ["x", "s", "bb", "m", "v"], **attrs)],
          {"x": rand(2, c, 4, 5)}, params, opset=opset)


def test_batch_norm_spatial_zero():
    x = rand(2, 3, 4)
    s, b, m = rand(3, 4), rand(3, 4), rand(3, 4)
    v = np.abs(rand(3, 4)) + 0.5
    want = (x - m) / np.sqrt(v + 1e-5) * s + b
    check([node("BatchNormalization", ["x", "s", "bb", "m", "v"], spatial=0)], {"x": x},
          {"s": s, "bb": b, "m": m, "v": v}, opset=7, expected=[want])


def test_batch_norm_training_is_unsupported():
    model = build([node("BatchNormalization", ["x", "s", "b", "m", "v"], training_mode=1)],
                  {"x": rand(2, 3, 4)}, {k: rand(3) for k in "sbmv"}, opset=15)
    with pytest.raises(UnsupportedOpError, match="training"):
        gc.from_onnx(model)


def test_lrn():
    check([node("LRN", ["x"], size=3, alpha=1e-2, beta=0.6, bias=1.5)], {"x": rand(1, 5, 3, 3)})


# ----- constant folding of exporter helpers ---------------------------------------------------------

def test_pytorch_style_flatten_folds_away():
    nodes = [node("Shape", ["x"], ["s"]),
             h.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             h.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             h.make_node("Concat", ["n1", "m1"], ["target"], axis=0),
             h.make_node("Reshape", ["x", "target"], ["y"])]
    graph = check(nodes, {"x": rand(2, 3, 4)},
                  {"zero": np.array(0, np.int64), "ax": i64(0), "m1": i64(-1)})
    assert [n.op for n in graph.nodes] == ["reshape"]


def test_constant_shape_arithmetic_folds():
    nodes = [h.make_node("Shape", ["x"], ["s"], start=1),
             h.make_node("Cast", ["s"], ["sf"], to=T.FLOAT),
             h.make_node("Div", ["sf", "two"], ["half"]),
             h.make_node("Floor", ["half"], ["fl"]),
             h.make_node("Cast", ["fl"], ["hi"], to=T.INT64),
             h.make_node("Sub", ["hi", "one"], ["hm"]),
             h.make_node("ConstantOfShape", ["hm"], ["ones"],
                         value=numpy_helper.from_array(np.array([1.5], np.float32))),
             h.make_node("Slice", ["x", "st", "en", "axs"], ["cut"]),
             h.make_node("Constant", [], ["k"], value_floats=[2.0]),
             h.make_node("Mul", ["ones", "k"], ["w"]),
             h.make_node("Expand", ["w", "shp"], ["we"]),
             h.make_node("MatMul", ["xr", "we"], ["y"])]
    feeds = {"x": rand(4, 6), "xr": rand(2, 2)}
    inits = {"two": np.array([2.0], np.float32), "one": i64(1), "st": i64(0), "en": i64(1),
             "axs": i64(0), "shp": i64(2, 2)}
    graph = check(nodes, feeds, inits, opset=15)  # a Slice of the runtime x imports too
    assert [n.op for n in graph.nodes] == ["matmul"]  # (and, unused, is dropped)
    nodes[7] = h.make_node("Identity", ["x"], ["cut"])
    graph = check(nodes, feeds, inits, opset=15)
    assert [n.op for n in graph.nodes] == ["matmul"]


def test_cast_of_a_runtime_value_to_its_own_type():
    check([h.make_node("Cast", ["x"], ["y"], to=T.FLOAT)], {"x": rand(3)})


def test_expand_of_a_runtime_value():
    check([h.make_node("Expand", ["x", "s"], ["y"])], {"x": rand(3, 1)}, {"s": i64(2, 3, 4)})


# ----- graph-level behaviour ---------------------------------------------------------------------------

def test_initializers_listed_as_inputs_are_constants():
    model = build([node("Add", ["x", "w"])], {"x": rand(2, 3), "w": rand(2, 3)},
                  {"w": rand(2, 3)})
    graph = gc.from_onnx(model)
    assert [v.name for v in graph.inputs] == ["x"]


def test_unknown_input_shapes_key():
    with pytest.raises(InputError, match="nope"):
        gc.from_onnx(build([node("Relu", ["x"])], {"x": rand(2)}), input_shapes={"nope": (1,)})


def test_input_shapes_must_agree_with_static_dims():
    with pytest.raises(ShapeError, match="conflicts"):
        gc.from_onnx(build([node("Relu", ["x"])], {"x": rand(2, 3)}), input_shapes={"x": (2, 4)})


def test_symbolic_non_batch_dim_needs_input_shapes():
    model = build([node("Relu", ["x"])], {"x": rand(2, 3)})
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "width"
    with pytest.raises(ShapeError, match="'x'.*width"):
        gc.from_onnx(model)
    graph = gc.from_onnx(model, input_shapes={"x": (2, 7)})
    assert graph.inputs[0].type.shape == (2, 7)


def test_path_bytes_and_proto_import_alike(tmp_path):
    model = build([node("Relu", ["x"])], {"x": rand(2)})
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    texts = {str(gc.from_onnx(m)) for m in (model, str(path), path.read_bytes(), path)}
    assert len(texts) == 1


def test_output_that_is_an_input():
    graph = gc.from_onnx(build([node("Relu", ["x"])], {"x": rand(2)}, outputs=("y", "x")))
    assert [v.name for v in graph.outputs] == ["y", "x"]


def test_unsorted_nodes_are_sorted():
    nodes = [node("Relu", ["a"]), node("Sigmoid", ["x"], ["a"])]
    check(nodes, {"x": rand(3)})


def test_dead_nodes_are_dropped():
    graph = check([node("Relu", ["x"]), node("Sigmoid", ["x"], ["unused"])], {"x": rand(3)})
    assert [n.op for n in graph.nodes] == ["relu"]


def test_every_importer_covers_opsets_7_to_22():
    """Each op in the table handles every schema version it resolves to at opsets 7..22."""
    from graphcnn.frontends.onnx import IMPORTERS, since_version

    gaps = {(op, opset, since_version(op, "", opset)) for op, spec in IMPORTERS.items()
            for opset in range(7, 23)
            if since_version(op, "", opset) not in (None, *spec.versions)}
    assert not gaps
