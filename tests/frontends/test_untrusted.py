"""Untrusted ONNX files: a generated corpus of malformed and hostile models, each of which must
fail with a typed error (naming the tensor or node where there is one) and never crash, hang or
allocate without bound. Models are built here with onnx.helper or raw bytes.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import graphcnn as gc
from graphcnn.errors import GraphError, ModelLoadError, ShapeError, UnsupportedOpError


def vi(name: str, shape, elem=T.FLOAT) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, shape)


def make(nodes, inputs, outputs, inits=(), opset: int = 13) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def weight(name: str, shape, seed: int = 0) -> onnx.TensorProto:
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return onnx.numpy_helper.from_array(data, name)


def relu_model(inits=(), extra_nodes=()) -> onnx.ModelProto:
    """x -> Add(x, w) -> Relu -> y, with w (2, 2) from `inits`."""
    nodes = [h.make_node("Add", ["x", "w"], ["s"], name="add"),
             h.make_node("Relu", ["s"], ["y"], name="relu"), *extra_nodes]
    return make(nodes, [vi("x", [2, 2])], [vi("y", [2, 2])], inits)


def external(name: str, location: str, shape=(2, 2), offset: int | None = None,
             length: int | None = None) -> onnx.TensorProto:
    t = T(name=name, data_type=T.FLOAT, dims=list(shape))
    t.data_location = T.EXTERNAL
    entries = {"location": location}
    if offset is not None:
        entries["offset"] = str(offset)
    if length is not None:
        entries["length"] = str(length)
    for k, v in entries.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def save(tmp: Path, proto: onnx.ModelProto, sub: str = "model") -> str:
    folder = tmp / sub
    folder.mkdir(exist_ok=True)
    path = folder / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    return str(path)


def write_outside(tmp: Path) -> Path:
    outside = tmp / "outside"
    outside.mkdir(exist_ok=True)
    secret = outside / "secret.bin"
    secret.write_bytes(np.ones(4, np.float32).tobytes())
    return secret


# ----- the corpus: name -> (build(tmp) -> (model, options), error, text the message names) ----

Case = Callable[[Path], tuple[object, dict]]


def _ext_absolute(tmp):
    secret = write_outside(tmp)
    return save(tmp, relu_model([external("w", str(secret))])), {}


def _ext_dotdot(tmp):
    write_outside(tmp)
    return save(tmp, relu_model([external("w", "../outside/secret.bin")])), {}


def _ext_symlink(tmp):
    secret = write_outside(tmp)
    path = save(tmp, relu_model([external("w", "w.bin")]))
    os.symlink(secret, Path(path).parent / "w.bin")
    return path, {}


def _ext_past_end(tmp):
    path = save(tmp, relu_model([external("w", "w.bin", offset=8)]))
    (Path(path).parent / "w.bin").write_bytes(np.ones(4, np.float32).tobytes())
    return path, {}


def _ext_wrong_length(tmp):
    path = save(tmp, relu_model([external("w", "w.bin", length=8)]))
    (Path(path).parent / "w.bin").write_bytes(np.ones(4, np.float32).tobytes())
    return path, {}


def _ext_missing_file(tmp):
    return save(tmp, relu_model([external("w", "nothere.bin")])), {}


def _ext_from_bytes(tmp):
    return relu_model([external("w", "w.bin")]).SerializeToString(), {}


def _raw_short(tmp):
    t = weight("w", (2, 2))
    t.raw_data = t.raw_data[:-4]
    return relu_model([t]), {}


def _raw_long(tmp):
    t = weight("w", (2, 2))
    t.raw_data = t.raw_data + b"\0" * 4
    return relu_model([t]), {}


def _typed_count(tmp):
    return relu_model([T(name="w", data_type=T.FLOAT, dims=[2, 2], float_data=[1.0, 2.0, 3.0])]), {}


def _negative_dim(tmp):
    t = weight("w", (2, 2))
    t.dims[0] = -2
    return relu_model([t]), {}


def _overflow_dims(tmp):
    t = T(name="w", data_type=T.FLOAT, dims=[2 ** 62, 2 ** 62, 16])
    return relu_model([t]), {}


def _huge_claimed(tmp):
    t = T(name="w", data_type=T.FLOAT, dims=[100000, 100000])
    return relu_model([t]), {}


def _over_configured_limit(tmp):
    nodes = [h.make_node("Add", ["x", "w"], ["y"], name="add")]
    model = make(nodes, [vi("x", [1])], [vi("y", [4, 4])], [weight("w", (4, 4))])
    return model, {"max_tensor_bytes": 32}


def _over_total_limit(tmp):
    return relu_model([weight("w", (2, 2)), weight("unused", (2, 2))]), {"max_total_bytes": 20}


def _string_tensor(tmp):
    return relu_model([h.make_tensor("w", T.STRING, [1], [b"a"])]), {}


def _input_negative_dim(tmp):
    return make([h.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [1, -3])],
                [vi("y", [1, 3])]), {}


def _input_zero_dim(tmp):
    return make([h.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [1, 0, 4])],
                [vi("y", [1, 0, 4])]), {}


def _input_huge(tmp):
    return make([h.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [1 << 20, 1 << 20])],
                [vi("y", None)]), {}


def _shape_input(values):
    return h.make_tensor("shape", T.INT64, [len(values)], values)


def _constant_of_shape_huge(tmp):
    nodes = [h.make_node("ConstantOfShape", ["shape"], ["big"], name="cos"),
             h.make_node("Add", ["x", "big"], ["y"], name="add")]
    return make(nodes, [vi("x", [1])], [vi("y", None)], [_shape_input([1 << 20, 1 << 20])]), {}


def _constant_of_shape_negative(tmp):
    nodes = [h.make_node("ConstantOfShape", ["shape"], ["big"], name="cos"),
             h.make_node("Add", ["x", "big"], ["y"], name="add")]
    return make(nodes, [vi("x", [1])], [vi("y", None)], [_shape_input([4, -1])]), {}


def _expand_huge(tmp):
    nodes = [h.make_node("Expand", ["x", "shape"], ["y"], name="expand")]
    return make(nodes, [vi("x", [1, 1])], [vi("y", None)], [_shape_input([1 << 18, 1 << 18])]), {}


def _expand_huge_constant(tmp):
    nodes = [h.make_node("Expand", ["w", "shape"], ["big"], name="expand"),
             h.make_node("Add", ["x", "big"], ["y"], name="add")]
    inits = [weight("w", (1, 1)), _shape_input([1 << 18, 1 << 18])]
    return make(nodes, [vi("x", [1, 1])], [vi("y", None)], inits), {}


def _range_huge(tmp):
    nodes = [h.make_node("Range", ["a", "b", "c"], ["r"], name="range"),
             h.make_node("Add", ["x", "r"], ["y"], name="add")]
    inits = [h.make_tensor(n, T.FLOAT, [], [v]) for n, v in (("a", 0.0), ("b", 1e15), ("c", 1.0))]
    return make(nodes, [vi("x", [1])], [vi("y", None)], inits), {}


def _pad_huge(tmp):
    nodes = [h.make_node("Pad", ["x", "pads"], ["y"], name="pad")]
    inits = [h.make_tensor("pads", T.INT64, [4], [0, 0, 1 << 40, 1 << 40])]
    return make(nodes, [vi("x", [2, 2])], [vi("y", None)], inits), {}


def _conv(x_shape, w_shape, **attrs):
    nodes = [h.make_node("Conv", ["x", "w"], ["y"], name="conv0", **attrs)]
    return make(nodes, [vi("x", x_shape)], [vi("y", None)], [weight("w", w_shape)])


def _conv_weight_rank(tmp):
    return _conv([1, 3, 8, 8], (4, 3, 3)), {}


def _conv_kernel_too_big(tmp):
    return _conv([1, 3, 4, 4], (4, 3, 7, 7), pads=[1, 1, 1, 1]), {}


def _conv_zero_stride(tmp):
    return _conv([1, 3, 8, 8], (4, 3, 3, 3), strides=[0, 1]), {}


def _conv_zero_weight_dim(tmp):
    return _conv([1, 3, 8, 8], (0, 3, 3, 3)), {}


def _conv_groups(tmp):
    return _conv([1, 3, 8, 8], (4, 3, 3, 3), group=2), {}


def _conv_missing_weight(tmp):
    nodes = [h.make_node("Conv", ["x"], ["y"], name="conv0")]
    return make(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)]), {}


def _conv_empty_weight_name(tmp):
    nodes = [h.make_node("Conv", ["x", "", "b"], ["y"], name="conv0")]
    return make(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], [weight("b", (4,))]), {}


def _relu_two_inputs(tmp):
    nodes = [h.make_node("Relu", ["x", "x"], ["y"], name="relu0")]
    return make(nodes, [vi("x", [2])], [vi("y", None)]), {}


def _bad_attribute_type(tmp):
    nodes = [h.make_node("Conv", ["x", "w"], ["y"], name="conv0", strides="fast")]
    return make(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], [weight("w", (4, 3, 3, 3))]), {}


def _huge_pads_attribute(tmp):
    return _conv([1, 3, 8, 8], (4, 3, 3, 3), pads=[1 << 40] * 4), {}


def _gather_out_of_range(tmp):
    nodes = [h.make_node("Shape", ["x"], ["s"], name="shape"),
             h.make_node("Gather", ["s", "i"], ["d"], name="gather"),
             h.make_node("Reshape", ["x", "d"], ["y"], name="reshape")]
    return make(nodes, [vi("x", [2, 3])], [vi("y", None)],
                [h.make_tensor("i", T.INT64, [1], [7])]), {}


def _reshape_runtime_shape(tmp):
    nodes = [h.make_node("Reshape", ["x", "s"], ["y"], name="reshape")]
    return make(nodes, [vi("x", [2, 3]), vi("s", [2])], [vi("y", None)]), {}


def _cycle(tmp):
    nodes = [h.make_node("Add", ["x", "b"], ["a"], name="n1"),
             h.make_node("Relu", ["a"], ["b"], name="n2"),
             h.make_node("Relu", ["a"], ["y"], name="n3")]
    return make(nodes, [vi("x", [2])], [vi("y", [2])]), {}


def _self_loop(tmp):
    nodes = [h.make_node("Add", ["x", "a"], ["a"], name="loop"),
             h.make_node("Relu", ["a"], ["y"], name="r")]
    return make(nodes, [vi("x", [2])], [vi("y", [2])]), {}


def _dangling(tmp):
    nodes = [h.make_node("Add", ["x", "ghost"], ["y"], name="add")]
    return make(nodes, [vi("x", [2])], [vi("y", [2])]), {}


def _duplicate_outputs(tmp):
    nodes = [h.make_node("Relu", ["x"], ["y"], name="first"),
             h.make_node("Sigmoid", ["x"], ["y"], name="second")]
    return make(nodes, [vi("x", [2])], [vi("y", [2])]), {}


def _output_shadows_input(tmp):
    nodes = [h.make_node("Relu", ["x"], ["x"], name="shadow")]
    return make(nodes, [vi("x", [2])], [vi("x", [2])]), {}


def _undefined_output(tmp):
    nodes = [h.make_node("Relu", ["x"], ["y"], name="r")]
    return make(nodes, [vi("x", [2])], [vi("z", [2])]), {}


def _no_opset(tmp):
    m = relu_model([weight("w", (2, 2))])
    del m.opset_import[:]
    return m, {}


def _opset_too_new(tmp):
    m = relu_model([weight("w", (2, 2))])
    m.opset_import[0].version = 1000
    return m, {}


def _truncated(tmp):
    data = relu_model([weight("w", (64, 64))]).SerializeToString()
    path = tmp / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return str(path), {}


def _random_bytes(tmp):
    return np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), {}


def _text_file(tmp):
    path = tmp / "model.onnx"
    path.write_text("this is not an onnx model\n" * 10)
    return str(path), {}


def _empty_file(tmp):
    path = tmp / "empty.onnx"
    path.write_bytes(b"")
    return str(path), {}


def _missing_path(tmp):
    return str(tmp / "does-not-exist.onnx"), {}


def _not_a_model(tmp):
    return 42, {}


def _bad_utf8(marker: bytes, as_proto: bool = False) -> Case:
    """The model with `marker` (a name, op type, domain or attribute string in it) made
    invalid UTF-8 (protobuf parses it)."""
    def build(tmp):
        nodes = [h.make_node("Add", ["xin", "wts"], ["s"], name="nadd"),
                 h.make_node("MaxPool", ["s"], ["p"], name="npool", kernel_shape=[1, 1],
                             auto_pad="NOTSET"),
                 h.make_node("Relu", ["p"], ["y"], name="nrelu")]
        graph = h.make_graph(nodes, "gname", [vi("xin", [1, 1, 2, 2])], [vi("y", [1, 1, 2, 2])],
                             initializer=[weight("wts", (1, 1, 2, 2))])
        model = h.make_model(graph, opset_imports=[h.make_opsetid("ai.onnx", 13)])
        data = model.SerializeToString()
        assert data.count(marker) >= 1
        data = data.replace(marker, marker[:-1] + b"\xff")
        if not as_proto:
            return data, {}
        proto = onnx.ModelProto()
        proto.ParseFromString(data)
        return proto, {}
    return build


def _ext_nul(tmp):
    return save(tmp, relu_model([external("w", "w.bin\0../../etc/passwd")])), {}


CORPUS: dict[str, tuple[Case, type[Exception], str | None]] = {
    "external_absolute_path": (_ext_absolute, ModelLoadError, "'w'"),
    "external_dotdot": (_ext_dotdot, ModelLoadError, "'w'"),
    "external_symlink_out": (_ext_symlink, ModelLoadError, "'w'"),
    "external_offset_past_end": (_ext_past_end, ModelLoadError, "'w'"),
    "external_length_mismatch": (_ext_wrong_length, ModelLoadError, "'w'"),
    "external_missing_file": (_ext_missing_file, ModelLoadError, "'w'"),
    "external_without_directory": (_ext_from_bytes, ModelLoadError, "'w'"),
    "raw_data_short": (_raw_short, ModelLoadError, "'w'"),
    "raw_data_long": (_raw_long, ModelLoadError, "'w'"),
    "typed_data_count": (_typed_count, ModelLoadError, "'w'"),
    "initializer_negative_dim": (_negative_dim, ModelLoadError, "'w'"),
    "initializer_overflowing_dims": (_overflow_dims, ModelLoadError, "'w'"),
    "initializer_huge_claimed": (_huge_claimed, ModelLoadError, "'w'"),
    "initializer_over_max_tensor_bytes": (_over_configured_limit, ModelLoadError, "max_tensor"),
    "constants_over_max_total_bytes": (_over_total_limit, ModelLoadError, "max_total"),
    "string_initializer": (_string_tensor, ModelLoadError, "STRING"),
    "input_negative_dim": (_input_negative_dim, ShapeError, "'x'"),
    "input_zero_dim": (_input_zero_dim, ShapeError, "'x'"),
    "input_huge": (_input_huge, ShapeError, "'x'"),
    "constant_of_shape_huge": (_constant_of_shape_huge, ShapeError, "'cos'"),
    "constant_of_shape_negative": (_constant_of_shape_negative, ShapeError, "'cos'"),
    "expand_huge_runtime": (_expand_huge, ShapeError, "'expand'"),
    "expand_huge_constant": (_expand_huge_constant, ShapeError, "'expand'"),
    "range_huge": (_range_huge, ShapeError, "'range'"),
    "pad_huge": (_pad_huge, ShapeError, "'pad'"),
    "conv_weight_rank": (_conv_weight_rank, ShapeError, "'conv0'"),
    "conv_kernel_larger_than_padded_input": (_conv_kernel_too_big, ShapeError, "'conv0'"),
    "conv_zero_stride": (_conv_zero_stride, ShapeError, "'conv0'"),
    "conv_zero_size_weight": (_conv_zero_weight_dim, ShapeError, "'conv0'"),
    "conv_groups_mismatch": (_conv_groups, ShapeError, "'conv0'"),
    "conv_missing_weight": (_conv_missing_weight, ShapeError, "'conv0'"),
    "conv_empty_weight_name": (_conv_empty_weight_name, ShapeError, "'conv0'"),
    "relu_two_inputs": (_relu_two_inputs, ShapeError, "'relu0'"),
    "attribute_of_the_wrong_type": (_bad_attribute_type, ModelLoadError, "'conv0'"),
    "conv_huge_pads": (_huge_pads_attribute, ShapeError, "'conv0'"),
    "gather_index_out_of_range": (_gather_out_of_range, ShapeError, "'gather'"),
    "reshape_runtime_shape": (_reshape_runtime_shape, UnsupportedOpError, "reshape"),
    "cycle": (_cycle, GraphError, "cycle"),
    "self_loop": (_self_loop, GraphError, None),
    "dangling_edge": (_dangling, GraphError, "'ghost'"),
    "duplicate_output_names": (_duplicate_outputs, GraphError, "'y'"),
    "output_shadows_input": (_output_shadows_input, GraphError, "'x'"),
    "undefined_graph_output": (_undefined_output, GraphError, "'z'"),
    "missing_opset_import": (_no_opset, ModelLoadError, "opset"),
    "opset_too_new": (_opset_too_new, ModelLoadError, "opset"),
    "truncated_file": (_truncated, ModelLoadError, None),
    "random_bytes": (_random_bytes, ModelLoadError, None),
    "text_file": (_text_file, ModelLoadError, None),
    "empty_file": (_empty_file, ModelLoadError, None),
    "missing_path": (_missing_path, ModelLoadError, "does-not-exist"),
    "not_a_model_object": (_not_a_model, ModelLoadError, "int"),
    "utf8_graph_name": (_bad_utf8(b"gname"), ModelLoadError, "name b'gnam\\xff'"),
    "utf8_op_type": (_bad_utf8(b"Relu"), ModelLoadError, "op_type b'Rel\\xff'"),
    "utf8_node_name": (_bad_utf8(b"nrelu"), ModelLoadError, "name b'nrel\\xff'"),
    "utf8_value_name": (_bad_utf8(b"xin"), ModelLoadError, "b'xi\\xff' is not valid UTF-8"),
    "utf8_initializer_name": (_bad_utf8(b"wts"), ModelLoadError, "b'wt\\xff' is not"),
    "utf8_attribute_name": (_bad_utf8(b"auto_pad"), ModelLoadError, "b'auto_pa\\xff' is not"),
    "utf8_attribute_string": (_bad_utf8(b"NOTSET"), ModelLoadError,
                              "attribute 'auto_pad' string b'NOTSE\\xff' is not valid UTF-8"),
    "utf8_domain": (_bad_utf8(b"ai.onnx"), ModelLoadError, "domain b'ai.onn\\xff'"),
    "utf8_in_a_proto": (_bad_utf8(b"Relu", as_proto=True), ModelLoadError, "<ModelProto>"),
    "external_location_nul": (_ext_nul, ModelLoadError, "NUL"),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_hostile_model_fails_typed(name, tmp_path):
    build, error, mentions = CORPUS[name]
    model, options = build(tmp_path)
    with pytest.raises(error) as info:
        gc.from_onnx(model, **options)
    if mentions:
        assert mentions in str(info.value)


def test_corpus_size(capsys):
    with capsys.disabled():
        print(f"\nuntrusted corpus: {len(CORPUS)} hostile models")
    assert len(CORPUS) >= 40


def test_external_data_inside_the_directory_loads(tmp_path):
    """The control for the external-data cases: a well-formed file next to the model loads."""
    data = np.arange(4, dtype=np.float32)
    path = save(tmp_path, relu_model([external("w", "sub/w.bin", offset=4, length=16)]))
    (Path(path).parent / "sub").mkdir()
    (Path(path).parent / "sub" / "w.bin").write_bytes(b"\0" * 4 + data.tobytes())
    graph = gc.from_onnx(path)
    x = np.random.default_rng(1).standard_normal((2, 2)).astype(np.float32)
    np.testing.assert_allclose(gc.compile(graph, target="reference")(x),
                               np.maximum(x + data.reshape(2, 2), 0), rtol=1e-6)


def test_unsupported_ops_are_listed_in_one_error():
    nodes = [h.make_node("Hardmax", ["x"], ["a"], name="t1"),
             h.make_node("Hardmax", ["a"], ["b"], name="t2"),
             h.make_node("Det", ["b"], ["c"], name="e1"),
             h.make_node("Relu", ["c"], ["d"], name="r"),
             h.make_node("Neg", ["d"], ["e"], name="n1"),
             h.make_node("Custom", ["e"], ["y"], name="c1", domain="my.domain")]
    model = make(nodes, [vi("x", [2])], [vi("y", [2])])
    model.opset_import.append(h.make_opsetid("my.domain", 1))
    with pytest.raises(UnsupportedOpError) as info:
        gc.from_onnx(model)
    assert info.value.ops == {"Hardmax": ["t1", "t2"], "Det": ["e1"], "my.domain.Custom": ["c1"]}
    assert "Hardmax x2" in str(info.value) and "t2" in str(info.value)


def test_unsupported_runtime_helpers_are_listed_too():
    # Equal is imported only as a constant-folding helper: on a runtime tensor it is unsupported
    nodes = [h.make_node("Hardmax", ["x"], ["a"], name="t1"),
             h.make_node("Equal", ["x", "x"], ["b"], name="eq"),
             h.make_node("Cast", ["b"], ["c"], name="cast", to=T.FLOAT),
             h.make_node("Add", ["a", "c"], ["y"], name="add")]
    with pytest.raises(UnsupportedOpError) as info:
        gc.from_onnx(make(nodes, [vi("x", [2])], [vi("y", [2])]))
    assert info.value.ops == {"Equal": ["eq"], "Hardmax": ["t1"]}
    assert "not a constant" in str(info.value)
