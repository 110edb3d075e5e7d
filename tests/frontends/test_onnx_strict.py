"""Strict ONNX import (graphcnn/frontends/onnx_strict.py): one test per rule, strict and with
strict=False (today's leniency, one warning per relaxed rule)."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import AttributeProto as A
from onnx import TensorProto as T
from onnx import helper as h

import graphcnn as gc
from graphcnn.errors import ModelLoadError


def vi(name: str, shape, elem=T.FLOAT) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, shape)


def make(nodes, inputs, outputs, inits=(), opset: int = 13, value_info=()) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "g", inputs, outputs, initializer=list(inits),
                         value_info=list(value_info))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def weight(name: str, shape, seed: int = 0) -> onnx.TensorProto:
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return onnx.numpy_helper.from_array(data, name)


def lenient(model: onnx.ModelProto) -> tuple[gc.Graph, list[str]]:
    """Import with strict=False; the graph and the strict=False warnings given."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = gc.from_onnx(model, strict=False)
    return graph, [str(w.message) for w in caught if "strict=False" in str(w.message)]


def _conv_stridez() -> onnx.ModelProto:
    node = h.make_node("Conv", ["x", "w"], ["y"], name="conv0", stridez=[2, 2])
    return make([node], [vi("x", [1, 3, 8, 8])], [vi("y", None)], [weight("w", (4, 3, 3, 3))])


def _concat_without_axis() -> onnx.ModelProto:
    node = h.make_node("Concat", ["x", "x"], ["y"], name="cat0")
    return make([node], [vi("x", [1, 2, 3, 3])], [vi("y", None)])


def _maxpool_undefined_kernel() -> onnx.ModelProto:
    node = h.make_node("MaxPool", ["x"], ["y"], name="pool0", kernel_shape=[2, 2],
                       strides=[2, 2])
    node.attribute[0].type = A.UNDEFINED
    return make([node], [vi("x", [1, 2, 4, 4])], [vi("y", None)])


def _type_disagrees_with_data() -> onnx.ModelProto:
    node = h.make_node("LeakyRelu", ["x"], ["y"], name="lrelu0", alpha=0.5)
    node.attribute[0].type = A.INT  # the data stays in `f`
    return make([node], [vi("x", [2, 3])], [vi("y", None)])


def _relu(inputs=("x",), outputs=None, **graph) -> onnx.ModelProto:
    node = h.make_node("Relu", ["x"], ["y"], name="relu0")
    return make([node], [vi("x", [2, 3])], outputs if outputs is not None else [vi("y", None)],
                **graph)


# name -> (model, what the strict error names)
STRICT_CASES = {
    "unknown_attribute": (_conv_stridez,
                          ["node 'conv0' (Conv)", "unknown attribute 'stridez'",
                           "did you mean 'strides'"]),
    "missing_required_attribute": (_concat_without_axis,
                                   ["node 'cat0' (Concat)", "missing required attribute 'axis'"]),
    "undefined_attribute_type": (_maxpool_undefined_kernel,
                                 ["node 'pool0' (MaxPool)", "'kernel_shape' has no type"]),
    "type_field_disagrees_with_data": (_type_disagrees_with_data,
                                       ["node 'lrelu0' (LeakyRelu)", "'alpha' has type INT",
                                        "data in field(s) f"]),
    "empty_graph": (lambda: make([], [vi("x", [2, 3])], [vi("x", [2, 3])]),
                    ["graph 'g' has no nodes"]),
    "no_outputs": (lambda: _relu(outputs=[]), ["graph 'g' has no outputs"]),
    "declared_output_shape": (lambda: _relu(outputs=[vi("y", [3, 2])]),
                              ["graph output 'y'", "node 'relu0' (Relu)", "shape [3, 2]",
                               "imported: [2, 3]"]),
    "declared_output_rank": (lambda: _relu(outputs=[vi("y", [6])]),
                             ["graph output 'y'", "rank 1"]),
    "declared_output_dtype": (lambda: _relu(outputs=[vi("y", [2, 3], T.INT64)]),
                              ["graph output 'y'", "dtype INT64"]),
    "declared_value_info": (lambda: _relu(outputs=[vi("y", None)],
                                          value_info=[vi("y", [2, 4])]),
                            ["value_info 'y'", "node 'relu0' (Relu)", "shape [2, 4]"]),
}


@pytest.mark.parametrize("name", sorted(STRICT_CASES))
def test_strict_import_refuses(name):
    build, mentions = STRICT_CASES[name]
    with pytest.raises(ModelLoadError) as info:
        gc.from_onnx(build())
    for text in mentions:
        assert text in str(info.value)
    assert "strict=False" in str(info.value)


@pytest.mark.parametrize("name", sorted(STRICT_CASES))
def test_strict_false_imports_with_one_warning(name):
    build, _ = STRICT_CASES[name]
    graph, relaxed = lenient(build())
    assert len(relaxed) == 1, relaxed
    assert len(graph.outputs) == (0 if name == "no_outputs" else 1)


def test_one_warning_per_relaxed_rule_with_the_count():
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv0", stridez=[2, 2], padz=[1]),
             h.make_node("Concat", ["c", "c"], ["y"], name="cat0", axis=1),
             h.make_node("Concat", ["c", "c"], ["z"], name="cat1")]
    model = make(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None), vi("z", None)],
                 [weight("w", (4, 3, 3, 3))])
    _, relaxed = lenient(model)
    assert len(relaxed) == 2
    unknown, missing = relaxed
    assert "2 unknown attribute(s)" in unknown and "(and 1 more)" in unknown
    assert "1 missing required attribute(s)" in missing and "'cat1'" in missing


def test_misspelled_stride_runs_at_the_default_only_when_relaxed():
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    graph, _ = lenient(_conv_stridez())
    assert gc.compile(graph, target="reference")(x).shape == (1, 4, 6, 6)  # stride 1


def test_relaxed_attribute_type_is_read_from_its_data():
    """strict=False reads an UNDEFINED-typed kernel_shape from its ints (not a no-op pool)."""
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 4)).astype(np.float32)
    graph, _ = lenient(_maxpool_undefined_kernel())
    y = gc.compile(graph, target="reference")(x)
    np.testing.assert_array_equal(y, x.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5)))


def test_schema_follows_the_models_opset():
    """BatchNormalization lost `spatial` at opset 9 (and gained training_mode at 14); the
    schema comes from onnx.defs at the model's opset, not a hand-written list."""
    inits = [weight(n, (2,), seed=i) for i, n in enumerate("sbmv")]
    inits[3] = onnx.numpy_helper.from_array(np.array([0.5, 2.0], np.float32), "v")

    def bn(opset: int) -> onnx.ModelProto:
        node = h.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn0",
                           spatial=1)
        return make([node], [vi("x", [1, 2, 3, 3])], [vi("y", None)], inits, opset=opset)

    assert len(gc.from_onnx(bn(7)).nodes) == 1
    with pytest.raises(ModelLoadError, match="unknown attribute 'spatial' \\(BatchNormalization-9"):
        gc.from_onnx(bn(9))


def test_declared_shapes_that_agree_and_symbolic_dims_pass():
    model = _relu(outputs=[h.make_tensor_value_info("y", T.FLOAT, ["n", 3])],
                  value_info=[vi("y", [2, 3])])
    assert len(gc.from_onnx(model).nodes) == 1


def test_strict_must_be_a_bool():
    with pytest.raises(TypeError, match="strict"):
        gc.from_onnx(_relu(), strict="no")


def test_relaxed_rule_warnings_point_at_the_caller():
    with pytest.warns(UserWarning, match="strict=False") as caught:
        gc.from_onnx(_conv_stridez(), strict=False)
    assert caught[0].filename == __file__
