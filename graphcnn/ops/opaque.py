"""`onnx_node`: an ONNX node graphcnn has no op for, kept as it is in the file.

`gc.from_onnx(path, unsupported="keep")` imports each node without an importer (or whose
importer needs constants it was not given) as one of these instead of refusing the model. The
node carries its ONNX NodeProto (inputs renamed i0, i1, ..., outputs o0, o1, ...; an omitted
optional slot stays empty), the file's opset, and its output types from ONNX shape inference.
It runs on onnxruntime: the reference interpreter runs a one-node session, the onnxruntime
target exports it as it is, and the llvm target runs the regions of such nodes on onnxruntime
when compiled with `fallback="onnxruntime"` (backends/fallback.py); without a fallback the llvm
target refuses them, naming every one.
"""
from __future__ import annotations

import base64
import functools
from collections.abc import Sequence

import numpy as np

from ..errors import GraphcnnError
from ..tensor_type import TensorType
from .registry import REQUIRED, OpDef, register

OPAQUE = "onnx_node"


def _infer(a: dict, t: list[TensorType]) -> list[TensorType]:
    return [TensorType(tuple(shape), dtype) for shape, dtype in a["outputs"]]


def node_proto(attrs: dict):
    """The stored NodeProto (inputs i<k>, outputs o<k>)."""
    import onnx

    node = onnx.NodeProto()
    node.ParseFromString(base64.b64decode(attrs["node"]))
    return node


def bind(proto, node):
    """`proto` (a stored NodeProto, slots i<k>/o<k>) with its slots renamed to the IR node's
    input and output value names; omitted optional slots stay empty."""
    present, made = iter(node.inputs), iter(node.outputs)
    names = [next(present).name if slot else "" for slot in proto.input]
    out_names = [next(made).name if slot else "" for slot in proto.output]
    del proto.input[:]
    del proto.output[:]
    proto.input.extend(names)
    proto.output.extend(out_names)
    return proto


def encode_node(node) -> str:
    return base64.b64encode(node.SerializeToString()).decode("ascii")


@functools.lru_cache(maxsize=256)
def _session(node_b64: str, domain: str, opset: int, in_types: tuple, out_types: tuple):
    import onnxruntime
    from onnx import helper

    node = node_proto({"node": node_b64})
    present = [name for name in node.input if name]
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(
        np.dtype(dtype)), list(shape)) for name, (shape, dtype) in zip(present, in_types)]
    outputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(
        np.dtype(dtype)), list(shape)) for name, (shape, dtype) in
        zip([o for o in node.output if o], out_types)]
    opsets = [helper.make_opsetid("", opset)] + \
        ([helper.make_opsetid(domain, 1)] if domain not in ("", "ai.onnx") else [])
    model = helper.make_model(helper.make_graph([node], "onnx_node", inputs, outputs),
                              opset_imports=opsets)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise GraphcnnError(f"onnxruntime cannot run ONNX {node.op_type}: {e}") from e


def _compute(a: dict, *arrays: np.ndarray) -> list[np.ndarray]:
    in_types = tuple((tuple(x.shape), x.dtype.name) for x in arrays)
    session = _session(a["node"], a["domain"], a["opset"], in_types,
                       tuple((tuple(s), d) for s, d in a["outputs"]))
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, arrays)))


register(OpDef(OPAQUE, {"op_type": REQUIRED, "domain": "", "opset": REQUIRED, "node": REQUIRED,
                        "outputs": REQUIRED}, _infer, _compute, inputs=(0, None),
               doc="an ONNX node kept as it is, run on onnxruntime"))


def opaque_ops(nodes: Sequence) -> dict[str, list[str]]:
    """ONNX op type -> names of the onnx_node nodes among `nodes` (for UnsupportedOpError)."""
    found: dict[str, list[str]] = {}
    for node in nodes:
        if node.op == OPAQUE:
            op = node.attrs["op_type"]
            domain = node.attrs["domain"]
            found.setdefault(f"{domain}.{op}" if domain not in ("", "ai.onnx") else op,
                             []).append(node.name)
    return found
