"""ONNX import of ConvTranspose, Resize, Upsample, DepthToSpace, SpaceToDepth and Pad's modes
(frontends/onnx_spatial.py, onnx_ops.pad): every schema version from opset 7 on, against
onnxruntime on random data, on reference and llvm; ONNX's Resize/Upsample node cases whose
scales/sizes/roi are runtime inputs, run with those as initializers; bad attributes as typed
errors naming the node and the op."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_conformance import Case, node_cases, run_case

import graphcnn as gc
from graphcnn.errors import ShapeError, UnsupportedOpError

RNG = np.random.default_rng(11)
F = TensorProto.FLOAT
TARGETS = ["reference", "llvm"]
IR_OPS = {"ConvTranspose": "conv_transpose", "Resize": "resize", "Upsample": "resize",
          "DepthToSpace": "depth_to_space", "SpaceToDepth": "space_to_depth", "Pad": "pad"}


def _model(op, opset, x_shape, attrs=None, inits=(), n_inputs=None):
    names = ["x"] + [t.name if t is not None else "" for t in inits]
    node = helper.make_node(op, names, ["y"], name="node", **(attrs or {}))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, x_shape)],
                              [helper.make_tensor_value_info("y", F, None)],
                              initializer=[t for t in inits if t is not None])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=8)


def _f(name, values):
    return numpy_helper.from_array(np.asarray(values, np.float32), name)


def _i(name, values):
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def _w(name, *shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


# (id, model) pairs: each op at each since_version from opset 7, attribute and input forms
MODELS = []
for v in (7, 11, 22):
    MODELS += [
        (f"convtranspose-{v}-stride2-pads", _model("ConvTranspose", v, [1, 3, 5, 6], {
            "strides": [2, 2], "pads": [1, 0, 0, 1], "output_padding": [1, 0]},
            [_w("w", 3, 4, 3, 3), _w("b", 4)])),
        (f"convtranspose-{v}-groups-dilations", _model("ConvTranspose", v, [2, 4, 4, 5], {
            "group": 2, "dilations": [2, 1], "strides": [1, 3]}, [_w("w", 4, 3, 2, 3)])),
        (f"convtranspose-{v}-output-shape", _model("ConvTranspose", v, [1, 2, 4, 4], {
            "strides": [3, 2], "output_shape": [13, 10]}, [_w("w", 2, 3, 3, 3)])),
        (f"convtranspose-{v}-same-upper", _model("ConvTranspose", v, [1, 2, 5, 5], {
            "strides": [2, 2], "auto_pad": "SAME_UPPER"}, [_w("w", 2, 3, 4, 3)])),
        (f"convtranspose-{v}-same-lower", _model("ConvTranspose", v, [1, 2, 5, 5], {
            "strides": [2, 2], "auto_pad": "SAME_LOWER"}, [_w("w", 2, 3, 4, 3)])),
        (f"convtranspose-{v}-valid-1d", _model("ConvTranspose", v, [2, 3, 7], {
            "strides": [3], "auto_pad": "VALID"}, [_w("w", 3, 2, 4), _w("b", 2)])),
        (f"convtranspose-{v}-3d", _model("ConvTranspose", v, [1, 2, 3, 4, 3], {
            "strides": [2, 1, 2], "pads": [0, 1, 0, 1, 0, 0]}, [_w("w", 2, 2, 2, 3, 2)])),
    ]
for v in (7, 9):
    scales = [1.0, 1.0, 2.0, 3.0]
    forms = ({"scales": scales}, ()) if v == 7 else ({}, (_f("s", scales),))
    for mode in ("nearest", "linear"):
        MODELS.append((f"upsample-{v}-{mode}", _model("Upsample", v, [1, 2, 3, 4],
                                                      {"mode": mode, **forms[0]}, forms[1])))
for mode in ("nearest", "linear"):
    MODELS += [(f"resize-10-{mode}-{k}", _model("Resize", 10, [1, 2, 6, 5], {"mode": mode},
                                                [_f("s", s)]))
               for k, s in (("up", [1, 1, 2, 1.5]), ("down", [1, 1, 0.5, 0.6]))]
for v in (11, 13, 18, 19):
    roi = _f("roi", []) if v < 13 else None
    for ctm in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
        for mode in ("nearest", "linear", "cubic"):
            MODELS.append((f"resize-{v}-{mode}-{ctm}", _model("Resize", v, [2, 3, 5, 7], {
                "mode": mode, "coordinate_transformation_mode": ctm},
                [roi, _f("s", [1, 1, 1.6, 0.5714286])])))
    for nm in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        MODELS.append((f"resize-{v}-nearest-{nm}-sizes", _model("Resize", v, [1, 2, 5, 4], {
            "mode": "nearest", "nearest_mode": nm},
            [roi if roi is not None else _f("roi", []), _f("s", []), _i("z", [1, 2, 8, 11])])))
    MODELS.append((f"resize-{v}-crop", _model("Resize", v, [1, 1, 6, 7], {
        "mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
        "extrapolation_value": 2.5},
        [_f("roi", [0, 0, -0.2, 0.3, 1, 1, 0.8, 1.4]), _f("s", [1, 1, 1.5, 2])])))
    MODELS.append((f"resize-{v}-cubic-exclude", _model("Resize", v, [1, 2, 6, 5], {
        "mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1},
        [roi, _f("s", [1, 1, 1.5, 0.7])])))
    MODELS.append((f"resize-{v}-trilinear", _model("Resize", v, [1, 2, 3, 4, 5], {
        "mode": "linear"}, [roi, _f("s", [1, 1, 2, 1.5, 0.8])])))
for policy in ("stretch", "not_larger", "not_smaller"):
    MODELS.append((f"resize-18-axes-{policy}", _model("Resize", 18, [1, 3, 5, 6], {
        "mode": "linear", "axes": [3, 2], "keep_aspect_ratio_policy": policy},
        [None, None, _i("z", [9, 7])])))
MODELS.append(("resize-19-half-pixel-symmetric", _model("Resize", 19, [1, 2, 5, 6], {
    "mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"},
    [None, _f("s", [1, 1, 1.6, 0.7])])))
for v in (7, 11, 13):
    for mode in ("DCR", "CRD") if v >= 11 else ("DCR",):
        MODELS.append((f"depthtospace-{v}-{mode}", _model("DepthToSpace", v, [2, 12, 3, 4], {
            "blocksize": 2, **({"mode": mode} if v >= 11 else {})})))
for v in (7, 13):
    MODELS.append((f"spacetodepth-{v}", _model("SpaceToDepth", v, [2, 3, 6, 4],
                                               {"blocksize": 2})))
for mode in ("reflect", "edge"):
    MODELS.append((f"pad-7-{mode}", _model("Pad", 7, [2, 3, 5, 6], {
        "mode": mode, "pads": [0, 0, 2, 1, 0, 0, 1, 3]})))
    for v in (11, 13):
        MODELS.append((f"pad-{v}-{mode}-negative", _model("Pad", v, [2, 3, 5, 6], {
            "mode": mode}, [_i("p", [0, 0, -1, 2, 0, 0, 2, -2])])))
for v in (18, 19, 21):
    for mode in ("reflect", "edge") + (("wrap",) if v >= 19 else ()):
        MODELS.append((f"pad-{v}-{mode}-axes", _model("Pad", v, [2, 3, 5, 6], {"mode": mode},
                                                     [_i("p", [2, -1, 3, 1]), None,
                                                      _i("a", [3, -2])])))


@pytest.mark.parametrize("model", [m for _, m in MODELS], ids=[i for i, _ in MODELS])
def test_import_matches_onnxruntime(model):
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = RNG.standard_normal(shape).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    graph = gc.from_onnx(model)
    for target in TARGETS:
        got = gc.compile(graph, target=target)(x)
        assert got.shape == want.shape, (target, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=target)


# ONNX's node cases with scales / sizes / roi as runtime inputs, frozen into initializers
_FROZEN = {"roi", "scales", "sizes"}


def _frozen(c: Case) -> Case:
    inputs, outputs = c.data_sets[0]
    g = c.model.graph
    feeds = dict(zip([v.name for v in g.input], inputs))
    keep = [v for v in g.input if v.name not in _FROZEN]
    model = onnx.ModelProto()
    model.CopyFrom(c.model)
    del model.graph.input[:]
    model.graph.input.extend(keep)
    model.graph.initializer.extend(numpy_helper.from_array(feeds[v.name], v.name)
                                   for v in g.input if v.name in _FROZEN)
    return Case(c.name + "_frozen", "node", model, None,
                [([feeds[v.name] for v in keep], outputs)], c.rtol, c.atol)


FROZEN = [c for c in node_cases() if c.op_types <= {"Resize", "Upsample"}
          and "antialias" not in c.name]


def test_frozen_cases_exist():
    assert len(FROZEN) >= 36


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("c", FROZEN, ids=lambda c: c.name)
def test_resize_node_cases_with_inputs_as_initializers(c, target):
    run_case(_frozen(c), target)


@pytest.mark.parametrize("c", [c for c in node_cases() if "resize" in c.name and
                               "antialias" in c.name], ids=lambda c: c.name)
def test_antialias_is_refused_typed(c):
    with pytest.raises(UnsupportedOpError, match="antialias") as e:
        gc.from_onnx(_frozen(c).model)
    assert "node" in str(e.value) and "Resize" in str(e.value)


# ----- bad attributes: typed errors naming the node and the op --------------------------------
def _ct(attrs, w=(3, 4, 3, 3), x=(1, 3, 5, 5), b=None):
    return _model("ConvTranspose", 13, list(x), attrs, [_w("w", *w)] + ([_w("b", b)] if b else []))


def _rs(inits, attrs=None, x=(1, 2, 4, 4), v=13):
    return _model("Resize", v, list(x), attrs or {}, inits)


BAD = [
    ("ct-output-padding-stride", _ct({"strides": [2, 2], "output_padding": [2, 0]}),
     ShapeError, "output_padding"),
    ("ct-group", _ct({"group": 2}), ShapeError, "group 2 must divide"),
    ("ct-weight-channels", _ct({}, w=(4, 4, 3, 3)), ShapeError, "input's 3 channels"),
    ("ct-weight-rank", _ct({}, w=(3, 4, 3)), ShapeError, "rank"),
    ("ct-bias", _ct({}, b=5), ShapeError, "bias"),
    ("ct-kernel-shape", _ct({"kernel_shape": [2, 2]}), ShapeError, "kernel_shape"),
    ("ct-output-shape", _ct({"output_shape": [3, 4, 5]}), ShapeError, "output_shape"),
    ("ct-output-shape-too-big", _ct({"output_shape": [40, 7]}), ShapeError, "output_shape"),
    ("ct-auto-pad", _ct({"auto_pad": "FULL"}), ShapeError, "auto_pad"),
    ("rs-zero-scale", _rs([_f("r", []), _f("s", [1, 1, 0, 2])]), ShapeError, "> 0"),
    ("rs-negative-scale", _rs([_f("r", []), _f("s", [1, 1, -2, 2])]), ShapeError, "> 0"),
    ("rs-scales-length", _rs([_f("r", []), _f("s", [2, 2])]), ShapeError, "4 entries"),
    ("rs-sizes-length", _rs([_f("r", []), _f("s", []), _i("z", [1, 2, 8])]), ShapeError,
     "4 entries"),
    ("rs-sizes-zero", _rs([_f("r", []), _f("s", []), _i("z", [1, 2, 0, 3])]), ShapeError,
     ">= 1"),
    ("rs-both", _rs([_f("r", []), _f("s", [1, 1, 2, 2]), _i("z", [1, 2, 8, 8])]), ShapeError,
     "exactly one"),
    ("rs-mode", _rs([_f("r", []), _f("s", [1, 1, 2, 2])], {"mode": "area"}), ShapeError,
     "unknown mode"),
    ("rs-ctm", _rs([_f("r", []), _f("s", [1, 1, 2, 2])],
                   {"coordinate_transformation_mode": "tf_half_pixel_for_nn"}), ShapeError,
     "coordinate_transformation_mode"),
    ("rs-nearest-mode", _rs([_f("r", []), _f("s", [1, 1, 2, 2])], {"nearest_mode": "up"}),
     ShapeError, "nearest_mode"),
    ("rs-policy", _rs([None, None, _i("z", [8, 8])], {"axes": [2, 3],
                                                      "keep_aspect_ratio_policy": "fit"}, v=18),
     ShapeError, "keep_aspect_ratio_policy"),
    ("rs-axes", _rs([None, None, _i("z", [8, 8])], {"axes": [2, 4]}, v=18), ShapeError,
     "out of range"),
    ("rs-crop-no-roi", _rs([_f("r", []), _f("s", [1, 1, 2, 2])],
                           {"coordinate_transformation_mode": "tf_crop_and_resize"}),
     ShapeError, "roi"),
    ("upsample-shrink", _model("Upsample", 9, [1, 2, 4, 4], {}, [_f("s", [1, 1, 0.5, 1])]),
     ShapeError, ">= 1"),
    ("d2s-channels", _model("DepthToSpace", 13, [1, 6, 2, 2], {"blocksize": 2}), ShapeError,
     "does not divide"),
    ("d2s-mode", _model("DepthToSpace", 13, [1, 8, 2, 2], {"blocksize": 2, "mode": "XYZ"}),
     ShapeError, "mode"),
    ("s2d-spatial", _model("SpaceToDepth", 13, [1, 2, 5, 4], {"blocksize": 2}), ShapeError,
     "does not divide"),
    ("s2d-blocksize", _model("SpaceToDepth", 13, [1, 2, 4, 4], {"blocksize": 0}), ShapeError,
     "blocksize"),
    ("pad-reflect-too-large", _model("Pad", 13, [1, 2, 3, 4], {"mode": "reflect"},
                                     [_i("p", [0, 0, 3, 0, 0, 0, 0, 0])]), ShapeError,
     "reflect pads"),
    ("pad-mode", _model("Pad", 13, [1, 2, 3, 4], {"mode": "mirror"},
                        [_i("p", [0, 0, 1, 0, 0, 0, 0, 0])]), ShapeError, "pad mode"),
    ("pad-wrap-before-19", _model("Pad", 18, [1, 2, 3, 4], {"mode": "wrap"},
                                  [_i("p", [0, 0, 1, 0, 0, 0, 0, 0])]), ShapeError,
     "pad mode"),
]


@pytest.mark.parametrize("model,error,match", [m[1:] for m in BAD], ids=[m[0] for m in BAD])
def test_bad_attributes_are_typed_errors(model, error, match):
    with pytest.raises(error, match=match) as e:
        gc.from_onnx(model, strict=False)
    op = model.graph.node[0].op_type
    assert "node 'node'" in str(e.value) and (f"({op})" in str(e.value) or
                                              f"({IR_OPS[op]})" in str(e.value)), str(e.value)


def test_deprecated_upsample_10_imports_as_9():
    """onnxruntime refuses the deprecated schema; graphcnn reads it as Upsample-9."""
    x = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    graphs = [gc.from_onnx(_model("Upsample", v, [1, 2, 3, 4], {"mode": "linear"},
                                  [_f("s", [1, 1, 2, 1.5])]), strict=False) for v in (9, 10)]
    a, b = (gc.compile(g, target="reference")(x) for g in graphs)
    np.testing.assert_array_equal(a, b)
