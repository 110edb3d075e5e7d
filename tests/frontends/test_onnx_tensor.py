"""ONNX import of Gather, Slice, Split, Expand, Tile, Cast, Where, ArgMax, ArgMin
(frontends/onnx_tensor.py): every schema version from opset 7 on, attribute and input forms,
on runtime data, against onnx's reference evaluator on reference and llvm; ONNX's node cases
that give index arguments as runtime inputs, run with those as initializers; bad attributes as
typed errors naming the node."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.defs
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx_conformance import Case, node_cases, run_case

import graphcnn as gc
from graphcnn.errors import ShapeError, UnsupportedOpError
from graphcnn.frontends.onnx_context import IMPORTERS

OPS = ("Gather", "Slice", "Split", "Expand", "Tile", "Cast", "Where", "ArgMax", "ArgMin")
RNG = np.random.default_rng(5)
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _versions(op: str) -> list[int]:
    return sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                   if s.name == op and s.domain == "" and s.since_version >= 1})


def _model(op: str, version: int, inputs, outputs, attrs=None, inits=()):
    """One node `op` at opset `version` (7 at least) over the graph inputs, then the
    initializers."""
    opset = max(version, 7)
    names = [i.name for i in inputs] + [t.name for t in inits if t.name not in
                                        {i.name for i in inputs}]
    node = helper.make_node(op, names, [o.name for o in outputs], name="node", **(attrs or {}))
    graph = helper.make_graph([node], "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _int(name, values):
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def case(op: str, version: int):
    """(model, feeds) of one node at `version` of `op` (its model opset), on runtime data."""
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    xi = _vi("x", F, [3, 4, 5])
    if op == "Gather":
        ids = np.array([[3, -1], [0, -4]], np.int64)
        m = _model(op, version, [xi, _vi("i", I64, [2, 2])], [_vi("y", F, None)], {"axis": 1})
        return m, {"x": x, "i": ids}
    if op == "Cast":
        m = _model(op, version, [xi], [_vi("y", I64, None)], {"to": I64})
        return m, {"x": x * 10}
    if op == "Slice":
        if version < 10:
            m = _model(op, version, [xi], [_vi("y", F, None)],
                       {"starts": [1, -4], "ends": [100, -1], "axes": [0, 2]})
            return m, {"x": x}
        inits = [_int("s", [-1, 1]), _int("e", [-100, 4]), _int("a", [2, 1]), _int("k", [-2, 2])]
        m = _model(op, version, [xi], [_vi("y", F, None)], inits=inits)
        return m, {"x": x}
    if op == "Split":
        outs = [_vi("y0", F, None), _vi("y1", F, None)]
        if version < 13:
            m = _model(op, version, [xi], outs, {"axis": 2, "split": [2, 3]})
        elif version < 18:
            m = _model(op, version, [xi], outs, {"axis": 2}, inits=[_int("sp", [2, 3])])
        else:
            outs.append(_vi("y2", F, None))
            m = _model(op, version, [xi], outs, {"axis": -1, "num_outputs": 3})
        return m, {"x": x}
    if op == "Expand":
        m = _model(op, version, [_vi("x", F, [4, 1])], [_vi("y", F, None)],
                   inits=[_int("sh", [2, 1, 6])])
        return m, {"x": RNG.standard_normal((4, 1)).astype(np.float32)}
    if op == "Tile":
        m = _model(op, version, [xi], [_vi("y", F, None)], inits=[_int("r", [1, 2, 3])])
        return m, {"x": x}
    if op == "Where":
        m = _model(op, version, [_vi("c", TensorProto.BOOL, [4, 1]), xi, _vi("z", F, [5])],
                   [_vi("y", F, None)])
        return m, {"c": RNG.random((4, 1)) < 0.5, "x": x,
                   "z": RNG.standard_normal(5).astype(np.float32)}
    attrs = {"axis": -2, "keepdims": 0}
    if version >= 12:
        attrs["select_last_index"] = 1
    m = _model(op, version, [xi], [_vi("y", I64, None)], attrs)
    return m, {"x": np.round(x).astype(np.float32)}  # ties


VERSIONED = [(op, v) for op in OPS for v in _versions(op) if v in IMPORTERS[op].versions]


def test_every_version_from_opset_7_is_imported():
    for op in OPS:
        newest_before_7 = max((v for v in _versions(op) if v <= 7), default=None)
        wanted = {v for v in _versions(op) if v >= 7} | (
            {newest_before_7} if newest_before_7 else set())
        assert wanted <= set(IMPORTERS[op].versions), op


@pytest.mark.parametrize("op,version", VERSIONED, ids=[f"{o}-{v}" for o, v in VERSIONED])
def test_import_matches_onnx_reference(op, version):
    model, feeds = case(op, version)
    want = ReferenceEvaluator(model).run(None, feeds)
    graph = gc.from_onnx(model)
    inputs = [feeds[v.name] for v in graph.inputs]
    for target in ("reference", "llvm"):
        got = gc.compile(graph, target=target)(*inputs)
        got = list(got) if isinstance(got, tuple) else [got]
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype, (target, g.dtype, w.dtype)
            np.testing.assert_array_equal(g, w, err_msg=f"{op}-{version} on {target}")


# node cases whose index arguments are runtime inputs (excluded in test_onnx_conformance.py):
# run them with those inputs as initializers holding the case's values
_FROZEN = {"starts", "ends", "axes", "steps", "split", "repeats", "shape", "new_shape"}


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


EMPTY = {"test_slice_start_out_of_bounds", "test_split_zero_size_splits_opset13",
         "test_split_zero_size_splits_opset18"}  # zero-size tensors: graphcnn has none
FROZEN = [c for c in node_cases() if any(v.name in _FROZEN for v in c.model.graph.input)
          and c.op_types <= {"Slice", "Split", "Tile", "Expand"}
          and c.name not in EMPTY]


def test_frozen_cases_exist():
    assert len(FROZEN) >= 14


@pytest.mark.parametrize("target", ["reference", "llvm"])
@pytest.mark.parametrize("c", FROZEN, ids=lambda c: c.name)
def test_node_cases_with_index_inputs_as_initializers(c, target):
    run_case(_frozen(c), target)


# ----- bad attributes: typed errors naming the node -------------------------------------------
def _split(attrs, version=13, inits=(), outs=2):
    return _model("Split", version, [_vi("x", F, [4, 6])],
                  [_vi(f"y{i}", F, None) for i in range(outs)], attrs, inits=inits)


@pytest.mark.parametrize("model,error,match", [
    (_split({"axis": 1}, inits=[_int("sp", [2, 3])]), ShapeError, "sum to 5"),
    (_split({"axis": 1, "split": [4, 4]}, version=11), ShapeError, "sum to 8"),
    (_split({"axis": 1, "num_outputs": 7}, version=18, outs=7), ShapeError, "num_outputs 7"),
    (_split({"axis": 3}, version=11), ShapeError, "axis 3 out of range"),
    (_split({"axis": 1}, version=11, outs=4), ShapeError, "equal parts"),
    (_model("Slice", 13, [_vi("x", F, [4, 6])], [_vi("y", F, None)],
            inits=[_int("s", [0]), _int("e", [3]), _int("a", [1]), _int("k", [0])]),
     ShapeError, "non-zero"),
    (_model("Slice", 13, [_vi("x", F, [4, 6])], [_vi("y", F, None)],
            inits=[_int("s", [0]), _int("e", [3]), _int("a", [2])]), ShapeError, "out of range"),
    (_model("Cast", 13, [_vi("x", F, [4, 6])], [_vi("y", TensorProto.DOUBLE, None)],
            {"to": TensorProto.DOUBLE}), UnsupportedOpError, "runtime cast to float64"),
    (_model("Cast", 13, [_vi("x", F, [4, 6])], [_vi("y", TensorProto.UINT8, None)],
            {"to": TensorProto.UINT8}), UnsupportedOpError, "runtime cast to uint8"),
    (_model("Tile", 13, [_vi("x", F, [4, 6])], [_vi("y", F, None)],
            inits=[_int("r", [1, -2])]), ShapeError, ">= 1"),
    (_model("Gather", 13, [_vi("x", F, [4, 6])], [_vi("y", F, None)], {"axis": 1},
            inits=[_int("i", [6])]), ShapeError, "out of range"),
    (_model("ArgMax", 13, [_vi("x", F, [4, 6])], [_vi("y", I64, None)], {"axis": -3}),
     ShapeError, "out of range"),
], ids=["split-sum-input", "split-sum-attr", "num-outputs", "split-axis", "split-unequal-11",
        "slice-step-0", "slice-axis", "cast-float64", "cast-uint8", "tile-negative",
        "gather-const-index", "argmax-axis"])
def test_bad_attributes_are_typed_errors(model, error, match):
    with pytest.raises(error, match=match) as e:
        gc.from_onnx(model, strict=False)
    assert "node" in str(e.value)
