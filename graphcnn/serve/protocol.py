"""The KServe v2 (Triton) inference protocol's tensors: JSON and binary bodies <-> numpy.

JSON (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol):
    {"id": "...", "inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                              "data": [...]}],            # row-major, flat (or nested) values
     "outputs": [{"name": "softmax"}]}                   # optional: which outputs to return
Binary, for large inputs (one input per body):
    Content-Type: application/octet-stream, raw little-endian bytes, with headers
        X-Shape: 1,1,28,28   X-Datatype: FP32 (default)   X-Input-Name: input (default: the only one)
    Content-Type: application/x-npy, an .npy file (np.save; no pickles), X-Input-Name likewise
and the answer comes back the same way (X-Output-Name picks an output of several).
Every malformed piece is a ProtocolError: the server answers 400 with its message.
"""
from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from graphcnn.errors import InputError

# KServe v2 datatypes and numpy's names for them (BYTES, strings, has no place in a CNN)
DATATYPES = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
             "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32",
             "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64"}
NUMPY_TO_V2 = {np.dtype(v): k for k, v in DATATYPES.items()}
NPY_TYPES = ("application/x-npy", "application/npy")
RAW_TYPE = "application/octet-stream"


class ProtocolError(InputError):
    """A request the protocol does not accept (answered with 400)."""


def dtype_of(datatype: Any, where: str) -> np.dtype:
    if datatype not in DATATYPES:
        raise ProtocolError(f"{where}: datatype {datatype!r} is not one of "
                            f"{', '.join(DATATYPES)}")
    return np.dtype(DATATYPES[datatype])


def datatype_of(dtype: np.dtype) -> str:
    return NUMPY_TO_V2[np.dtype(dtype)]


def shape_of(shape: Any, where: str) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(f"{where}: shape must be a list of non-negative ints, got {shape!r}")
    return tuple(shape)


def decode_json(body: Any) -> tuple[dict[str, np.ndarray], list[str] | None, Any]:
    """An inference request's JSON -> (inputs by name, requested output names or None, id)."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object with an `inputs` list")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("`inputs` must be a non-empty list of tensors")
    feeds: dict[str, np.ndarray] = {}
    for i, t in enumerate(inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise ProtocolError(f"inputs[{i}] must be an object with a `name`")
        where = f"input {t['name']!r}"
        if t["name"] in feeds:
            raise ProtocolError(f"{where} is given twice")
        for key in ("shape", "datatype", "data"):
            if key not in t:
                raise ProtocolError(f"{where}: `{key}` is missing")
        dtype, shape = dtype_of(t["datatype"], where), shape_of(t["shape"], where)
        try:
            x = np.asarray(t["data"], dtype=dtype)
        except (TypeError, ValueError, OverflowError) as e:
            raise ProtocolError(f"{where}: data is not {t['datatype']} values: {e}") from None
        if x.size != math.prod(shape):  # Python ints: a huge shape cannot wrap to a match
            raise ProtocolError(f"{where}: {x.size} values for shape {list(shape)} "
                                f"({math.prod(shape)} values)")
        feeds[t["name"]] = _reshaped(x, shape, where)
    outputs = body.get("outputs")
    names = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
                isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
            raise ProtocolError("`outputs` must be a list of objects with a `name`")
        names = [o["name"] for o in outputs]
    return feeds, names, body.get("id")


def encode_json(model: str, outs: dict[str, np.ndarray], request_id: Any = None) -> dict:
    answer: dict[str, Any] = {"model_name": model, "model_version": "1"}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = [{"name": n, "shape": list(y.shape), "datatype": datatype_of(y.dtype),
                          "data": y.ravel().tolist()} for n, y in outs.items()]
    return answer


def decode_binary(body: bytes, content_type: str, headers: Any,
                  input_names: list[str]) -> dict[str, np.ndarray]:
    """A raw or .npy body -> {input name: array}."""
    name = headers.get("x-input-name")
    if name is None:
        if len(input_names) != 1:
            raise ProtocolError(f"the model has inputs {input_names}: name the one this body "
                                "holds with an X-Input-Name header")
        name = input_names[0]
    if content_type in NPY_TYPES:
        try:
            x = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ProtocolError(f"the body is not an .npy file: {e}") from None
        return {name: x}
    spec = headers.get("x-shape")
    if spec is None:
        raise ProtocolError("a raw application/octet-stream body needs an X-Shape header "
                            "(e.g. X-Shape: 1,1,28,28)")
    try:
        shape = tuple(int(d) for d in spec.split(","))
    except ValueError:
        shape = (-1,)
    if not shape or min(shape) < 0:
        raise ProtocolError(f"X-Shape {spec!r}: write comma-separated non-negative dims")
    dtype = dtype_of(headers.get("x-datatype", "FP32"), f"input {name!r}").newbyteorder("<")
    want = math.prod(shape) * dtype.itemsize
    if len(body) != want:
        raise ProtocolError(f"input {name!r}: {len(body)} bytes for shape {list(shape)} of "
                            f"{dtype.name} ({want} bytes)")
    x = np.frombuffer(body, dtype=dtype).astype(dtype.newbyteorder("="))
    return {name: _reshaped(x, shape, f"input {name!r}")}


def _reshaped(x: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    """x as `shape` (same size), a ProtocolError where numpy cannot hold the shape (a dim past
    its index range beside a zero)."""
    try:
        return x.reshape(shape)
    except (ValueError, OverflowError) as e:
        raise ProtocolError(f"{where}: shape {list(shape)}: {e}") from None


def encode_binary(y: np.ndarray, content_type: str) -> tuple[bytes, dict[str, str]]:
    """One output as the request's binary form: (body, headers)."""
    headers = {"X-Shape": ",".join(map(str, y.shape)), "X-Datatype": datatype_of(y.dtype)}
    if content_type in NPY_TYPES:
        buf = io.BytesIO()
        np.save(buf, y, allow_pickle=False)
        return buf.getvalue(), headers
    return np.ascontiguousarray(y, dtype=y.dtype.newbyteorder("<")).tobytes(), headers
