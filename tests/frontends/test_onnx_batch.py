"""Re-binding a file's batch (`gc.from_onnx(path, batch=N)`, graphcnn/frontends/onnx_batch.py):
the re-bound model computes each sample as the file does at its own batch (checked against
onnxruntime running the original file sample by sample), and a graph that mixes samples is a
ShapeError naming the node."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphcnn as gc
from graphcnn.errors import InputError, ShapeError

RNG = np.random.default_rng(11)


def _model(nodes, inits, out_shape, in_shape=(1, 3, 8, 8), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(a, n) for n, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def classifier(reshape_target, in_batch=1) -> onnx.ModelProto:
    """conv -> relu -> global pool -> Reshape(hard-coded target) -> Gemm, at batch `in_batch`."""
    inits = {"w": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "shape": np.array(reshape_target, np.int64),
             "fw": RNG.standard_normal((5, 4)).astype(np.float32),
             "fb": RNG.standard_normal(5).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Reshape", ["p", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    return _model(nodes, inits, (in_batch, 5), (in_batch, 3, 8, 8))


def _per_sample(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])


@pytest.mark.parametrize("target", [[1, 4], [1, -1], [-1, 4], [0, -1]])
@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_rebound_batch_matches_the_file_per_sample(target, backend):
    model = classifier(target)
    graph = gc.from_onnx(model, batch=6)
    assert graph.inputs[0].shape == (6, 3, 8, 8) and graph.outputs[0].shape == (6, 5)
    x = RNG.standard_normal((6, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(gc.compile(graph, target=backend)(x), _per_sample(model, x),
                               rtol=1e-5, atol=1e-5)


def test_symbolic_batch_is_rebound_too():
    model = classifier([-1, 4])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    graph = gc.from_onnx(model, batch=3)
    assert graph.inputs[0].shape == (3, 3, 8, 8)


@pytest.mark.parametrize("target,file_batch", [([3, -1], 1), ([1, -1], 2)])
def test_reshape_that_moves_the_batch_is_refused_by_name(target, file_batch):
    """A Reshape whose first entry is not the file's batch folds samples together (or the
    channels into the batch): refused by name, never re-bound silently."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"], name="fold"),
             helper.make_node("Relu", ["r"], ["y"], name="relu")]
    in_shape = (file_batch, 3, 8, 8)
    out = np.empty(in_shape).reshape(target).shape
    model = _model(nodes, {"shape": np.array(target, np.int64)}, out, in_shape)
    assert gc.from_onnx(model).outputs[0].shape == out  # the file as it is imports
    with pytest.raises(ShapeError, match="fold"):
        gc.from_onnx(model, batch=4)


def test_node_mixing_samples_is_refused_by_name():
    """Softmax over axis 0 normalises across the batch: no re-binding."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["y"], axis=0, name="across")]
    model = _model(nodes, {}, (1, 3, 8, 8))
    with pytest.raises(ShapeError, match="across"):
        gc.from_onnx(model, batch=4)


def test_concat_with_a_constant_along_the_batch_is_refused():
    """A constant concatenated on axis 1 has the file's batch 1: a shape error naming it."""
    nodes = [helper.make_node("Concat", ["x", "tok"], ["y"], axis=1, name="cls")]
    model = _model(nodes, {"tok": RNG.standard_normal((1, 1, 8, 8)).astype(np.float32)},
                   (1, 4, 8, 8))
    with pytest.raises(ShapeError, match="cls"):
        gc.from_onnx(model, batch=4)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "8"])
def test_batch_is_checked(bad):
    with pytest.raises(InputError):
        gc.from_onnx(classifier([1, 4]), batch=bad)


def test_batch_applies_to_given_input_shapes():
    """input_shapes gives the symbolic H/W; batch replaces its first dim and the file's."""
    model = classifier([1, 4])
    for d in (2, 3):
        model.graph.input[0].type.tensor_type.shape.dim[d].dim_param = "HW"
    graph = gc.from_onnx(model, input_shapes={"x": (1, 3, 10, 10)}, batch=5)
    assert graph.inputs[0].shape == (5, 3, 10, 10) and graph.outputs[0].shape == (5, 5)


def test_input_shapes_first_dim_rebinds_a_static_batch():
    """input_shapes={"x": (6, ...)} over the file's static batch 1 re-binds it as batch=6;
    the other dims must still agree with the file."""
    model = classifier([1, 4])
    graph = gc.from_onnx(model, input_shapes={"x": (6, 3, 8, 8)})
    assert graph.inputs[0].shape == (6, 3, 8, 8) and graph.outputs[0].shape == (6, 5)
    x = RNG.standard_normal((6, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(gc.compile(graph, target="reference")(x), _per_sample(model, x),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ShapeError, match="static dim 3 = 8"):
        gc.from_onnx(model, input_shapes={"x": (6, 3, 8, 9)})


@pytest.mark.parametrize("axes,ok", [([2, 3], True), ([-1, -2], True), ([0], False), ([], False)])
def test_reduction_rebinds_only_off_the_batch_axis(axes, ok):
    """ReduceMean over the spatial axes (the dynamo exporter's global pool) is per sample; over
    the batch axis, or over every axis, it is not."""
    nodes = [helper.make_node("ReduceMean", ["x", "axes"] if axes else ["x"], ["y"], keepdims=1,
                              name="mean")]
    out = np.empty((1, 3, 8, 8)).mean(axis=tuple(axes) or None, keepdims=True).shape
    inits = {"axes": np.array(axes, np.int64)} if axes else {}
    model = _model(nodes, inits, out, opset=18)
    if not ok:
        with pytest.raises(ShapeError, match="mean"):
            gc.from_onnx(model, batch=4)
        return
    x = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
    got = gc.compile(gc.from_onnx(model, batch=4), target="llvm")(x)
    np.testing.assert_allclose(got, _per_sample(model, x), rtol=1e-5, atol=1e-6)


# ----- the pointwise ops (per sample when their other operands do not span the batch) ----------
def _pointwise(op: str, other_shape, extra=()) -> onnx.ModelProto:
    inits = {"w": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "o": np.abs(RNG.standard_normal(other_shape)).astype(np.float32) + 0.5}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Gelu", ["c"], ["g"]),
             helper.make_node(op, ["g", "o", *extra], ["y"])]
    return _model(nodes, inits, (1, 4, 8, 8), opset=20)


@pytest.mark.parametrize("op,other", [("PRelu", (4, 1, 1)), ("Sub", (1, 4, 1, 8)),
                                      ("Div", (8,)), ("Pow", (1,)), ("Max", (4, 8, 8)),
                                      ("Mean", (1, 1, 1, 1))])
def test_pointwise_ops_rebind_per_sample(op, other):
    model = _pointwise(op, other)
    graph = gc.from_onnx(model, batch=3)
    x = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(gc.compile(graph, target="reference")(x), _per_sample(model, x),
                               rtol=1e-5, atol=1e-5)


def test_pointwise_op_with_an_operand_spanning_the_file_batch_is_refused():
    model = _pointwise("Sub", (1, 4, 8, 8))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 2
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(
        RNG.standard_normal((2, 4, 8, 8)).astype(np.float32), "o"))
    with pytest.raises(ShapeError, match="Sub|sub"):
        gc.from_onnx(model, batch=2 * 3)


# ----- spatial resampling ops: per sample, Resize's sizes re-batched --------------------------
def _spatial(nodes, inits, in_shape, opset=19):
    return _model(nodes, inits, [in_shape[0]] + [None] * 3, in_shape, opset)


_CT_WEIGHT = RNG.standard_normal((3, 4, 3, 3)).astype(np.float32)
SPATIAL = {
    "conv_transpose": lambda b: _spatial(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])],
        {"w": _CT_WEIGHT}, (b, 3, 5, 5)),
    "resize_sizes": lambda b: _spatial(
        [helper.make_node("Resize", ["x", "", "", "s"], ["y"], mode="linear")],
        {"s": np.array([b, 3, 9, 7], np.int64)}, (b, 3, 5, 5)),
    "resize_scales": lambda b: _spatial(
        [helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest")],
        {"s": np.array([1, 1, 2, 1.5], np.float32)}, (b, 3, 5, 5)),
    "depth_to_space": lambda b: _spatial(
        [helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")], {},
        (b, 8, 3, 3)),
    "space_to_depth": lambda b: _spatial(
        [helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)], {}, (b, 2, 4, 6)),
    "pad_reflect": lambda b: _spatial(
        [helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")],
        {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)}, (b, 2, 4, 6)),
}


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_spatial_ops_rebind_the_batch(name):
    model = SPATIAL[name](2)
    graph = gc.from_onnx(model, batch=5)
    x = RNG.standard_normal((5,) + graph.inputs[0].shape[1:]).astype(np.float32)
    for backend in ("reference", "llvm"):
        np.testing.assert_allclose(gc.compile(graph, target=backend)(x),
                                   _per_sample(SPATIAL[name](1), x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", [
    _spatial([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest")],
             {"s": np.array([2, 1, 1, 1], np.float32)}, (2, 3, 4, 4)),
    _spatial([helper.make_node("Pad", ["x", "p"], ["y"], mode="edge")],
             {"p": np.array([1, 0, 0, 0, 0, 0, 0, 0], np.int64)}, (2, 3, 4, 4)),
], ids=["resize-along-batch", "pad-batch-axis"])
def test_spatial_ops_mixing_samples_are_refused(model):
    with pytest.raises(ShapeError, match="cannot re-bind the batch"):
        gc.from_onnx(model, batch=4)


def _strided_view_model(indices: np.ndarray, in_shape=(1, 4, 1, 1)) -> onnx.ModelProto:
    """The dynamo exporter's as_strided: Reshape(x, [-1]) -> Gather(constant indices)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "flat"], ["f"], name="flat_view"),
             helper.make_node("Gather", ["f", "idx"], ["y"], axis=0, name="strided")]
    return _model(nodes, {"flat": np.array([-1], np.int64), "idx": indices}, indices.shape,
                  in_shape)


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_strided_view_is_a_reshape_and_rebinds(backend):
    """Gather(Reshape(x, [-1]), arange(k).reshape(S)) over all of x is Reshape(x, S): no gather
    is left, and at a re-bound batch the view keeps each sample's values."""
    model = _strided_view_model(np.arange(4, dtype=np.int64).reshape(1, 4, 1, 1))
    assert [n.op for n in gc.from_onnx(model).nodes] == ["relu", "reshape"]
    graph = gc.from_onnx(model, batch=5)
    assert graph.outputs[0].shape == (5, 4, 1, 1)
    x = RNG.standard_normal((5, 4, 1, 1)).astype(np.float32)
    np.testing.assert_array_equal(gc.compile(graph, target=backend)(x), _per_sample(model, x))


def test_gather_that_is_not_a_view_of_every_sample_is_refused():
    """Indices that reorder, or pick only part of the flat values, stay a gather, which reads
    across the batch and so cannot be re-bound."""
    for idx in (np.array([[3, 2, 1, 0]], np.int64), np.arange(2, dtype=np.int64)[None]):
        model = _strided_view_model(idx)
        assert "gather" in [n.op for n in gc.from_onnx(model).nodes]
        with pytest.raises(ShapeError, match="flat_view|strided"):
            gc.from_onnx(model, batch=3)
