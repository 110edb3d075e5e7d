"""Every attribute of every importable op, set to values its schema does not allow: the import
either succeeds with a graph that still verifies, or fails with a typed GraphcnnError that names
the node and the op. A bare KeyError / ValueError / IndexError / ZeroDivisionError (or a crash)
is a defect.

The material is ONNX's own node cases that the conformance test selects (one node each, so
a mutated attribute belongs to a known node). Each int attribute is set to a large positive, a
large negative and a zero value; each ints attribute to an empty list, a list one longer than
before, and all-negative / all-zero entries; each string attribute to an unknown word; each
float attribute to NaN, negative and zero. This exercises the validation of axes, strides,
pads, block sizes, modes and epsilons across the op table, including the ops added later.
"""
from __future__ import annotations

import math

import onnx
import pytest
from onnx import AttributeProto, helper
from onnx_conformance import in_op_set, node_cases

import graphcnn as gc
from graphcnn.errors import GraphcnnError


def _single_node_cases() -> list:
    out = []
    for case in node_cases():
        nodes = case.model.graph.node
        if len(nodes) == 1 and in_op_set(case) and nodes[0].attribute:
            out.append(case)
    return out


def _mutations(attr: AttributeProto) -> list:
    if attr.type == AttributeProto.INT:
        return [2**31 - 1, -(2**31), 0, 99, -99]
    if attr.type == AttributeProto.INTS:
        ints = list(attr.ints)
        return [[], ints + [1], [-9] * max(len(ints), 1), [0] * max(len(ints), 1)]
    if attr.type == AttributeProto.STRING:
        return ["no_such_mode"]
    if attr.type == AttributeProto.FLOAT:
        return [math.nan, -1.0, 0.0]
    return []


def _mutated(model: onnx.ModelProto, index: int, value) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    node = m.graph.node[0]
    old = node.attribute[index]
    new = helper.make_attribute(old.name, value, attr_type=old.type)
    node.attribute[index].CopyFrom(new)
    if not node.name:
        node.name = "swept"
    return m


CASES = [(case, i, value) for case in _single_node_cases()
         for i, attr in enumerate(case.model.graph.node[0].attribute)
         for value in _mutations(attr)]


def _id(item) -> str:
    case, i, value = item
    return f"{case.name}-{case.model.graph.node[0].attribute[i].name}={value!r}"[:120]


@pytest.mark.parametrize("item", CASES, ids=[_id(c) for c in CASES])
def test_bad_attribute_is_typed_or_harmless(item):
    case, i, value = item
    model = _mutated(case.model, i, value)
    node = model.graph.node[0]
    try:
        graph = gc.from_onnx(model)
    except GraphcnnError as e:
        text = str(e)
        assert node.name in text or node.op_type in text, \
            f"{type(e).__name__} names neither node {node.name!r} nor op {node.op_type}: {text}"
        return
    gc.verify(graph)


def test_the_sweep_covers_the_op_table():
    """The sweep is not vacuous: it mutates many ops' attributes."""
    ops = {case.model.graph.node[0].op_type for case, _, _ in CASES}
    assert len(ops) >= 25 and len(CASES) >= 1000, (len(ops), len(CASES))
