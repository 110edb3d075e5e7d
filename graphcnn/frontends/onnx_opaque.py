"""Import of an ONNX node graphcnn has no op for, as an `onnx_node` (graphcnn/ops/opaque.py).

The node's output types come from ONNX shape inference over the node alone, with its constant
inputs as initializers (so a Resize's scales or a Reshape's shape give static shapes); a type
that inference leaves open is a ShapeError naming the node, since every IR value is static.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ShapeError
from ..ir import Graph, Value
from ..ops.opaque import OPAQUE, encode_node
from .onnx_safety import np_dtype


def import_opaque(graph: Graph, node: onnx.NodeProto, name: str, opset: int,
                  inputs: list[Value | None]) -> list[Value | None]:
    """One onnx_node for `node`; returns a Value per ONNX output (None for an omitted one)."""
    where = f"node {name!r} ({node.op_type})"
    stored = onnx.NodeProto()
    stored.CopyFrom(node)
    stored.name = name
    del stored.input[:]
    del stored.output[:]
    present: list[Value] = []
    for value in inputs:
        if value is None:
            stored.input.append("")
        else:
            stored.input.append(f"i{len(present)}")
            present.append(value)
    stored.output.extend(f"o{i}" if out else "" for i, out in enumerate(node.output))
    graph_inputs, initializers = [], []
    for slot, value in zip([i for i in stored.input if i], present):
        if value.is_constant:
            initializers.append(numpy_helper.from_array(value.data, slot))
        else:
            graph_inputs.append(helper.make_tensor_value_info(
                slot, helper.np_dtype_to_tensor_dtype(np.dtype(value.type.dtype)), list(value.shape)))
    outs = [o for o in stored.output if o]
    domain = node.domain or ""
    opsets = [helper.make_opsetid("", opset)] + \
        ([helper.make_opsetid(domain, 1)] if domain not in ("", "ai.onnx") else [])
    probe = helper.make_model(
        helper.make_graph([stored], "probe", graph_inputs,
                          [helper.make_empty_tensor_value_info(o) for o in outs], initializers),
        opset_imports=opsets)
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError,
            ValueError, TypeError) as e:
        raise ShapeError(f"{where}: ONNX shape inference failed: {e}") from None
    known = {vi.name: vi for vi in list(inferred.graph.output) + list(inferred.graph.value_info)}
    types = []
    for o in outs:
        vi = known.get(o)
        tt = vi.type.tensor_type if vi is not None else None
        if tt is None or not tt.elem_type or not tt.HasField("shape") or \
                any(not d.HasField("dim_value") for d in tt.shape.dim):
            raise ShapeError(f"{where}: ONNX shape inference leaves output {o} without a "
                             f"static shape and dtype")
        types.append(((tuple(int(d.dim_value) for d in tt.shape.dim)),
                      np_dtype(tt.elem_type, f"{where} output {o}").name))
    ir_node = graph.add_node(OPAQUE, present, {
        "op_type": node.op_type, "domain": domain, "opset": int(opset),
        "node": encode_node(stored), "outputs": tuple(types)}, name=name)
    result: list[Value | None] = []
    made = iter(ir_node.outputs)
    for out in node.output:
        result.append(next(made) if out else None)
    return result
