"""Reading an ONNX file's weights without pushing them through protobuf.

A ResNet-50 file is ~100 MB, nearly all of it the `raw_data` of graph initializers. Parsing it
whole copies those bytes into the protobuf arena, `TensorProto.raw_data` copies them out again as
`bytes`, and the decoder copies once more. Instead the protobuf wire format is walked just deep
enough (ModelProto.graph -> GraphProto.initializer -> TensorProto.raw_data) to cut every
initializer's raw_data out: the rest of the file (a few hundred KB) is parsed by protobuf as
usual, and each initializer is decoded straight from its span of the file (one copy).

`split_initializers` is a fast path, never a second parser: anything it does not expect (a
repeated non-repeated field that protobuf would merge, a group, a truncated or oversized length)
makes it return None and the caller parses the whole file with protobuf, which also produces the
proper error for a malformed one. Fields it does not touch are copied byte for byte, so protobuf
sees the same model minus those raw_data fields.
"""
from __future__ import annotations

# field numbers in onnx.proto (proto2): ModelProto.graph, GraphProto.initializer,
# TensorProto.raw_data
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_RAW_DATA = 9
_LENGTH_DELIMITED = 2
SMALL_TENSOR_BYTES = 1 << 12  # initializers smaller than this stay in the parsed proto


class _Unexpected(Exception):
    """A layout the fast path leaves to protobuf."""


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Unexpected
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(buf, pos: int, end: int):
    """(field number, wire type, field start, value start, value end) for each field."""
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Unexpected
        if wire == 0:
            _, pos = _varint(buf, pos, end)
            value = pos
        elif wire == 1:
            value, pos = pos, pos + 8
        elif wire == _LENGTH_DELIMITED:
            n, value = _varint(buf, pos, end)
            pos = value + n
        elif wire == 5:
            value, pos = pos, pos + 4
        else:  # groups (3, 4) are deprecated and absent from onnx.proto
            raise _Unexpected
        if pos > end:
            raise _Unexpected
        yield number, wire, start, value, pos


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LENGTH_DELIMITED) + _encode_varint(len(payload)) + \
        payload


def _tensor(buf, start: int, end: int) -> tuple[bytes, tuple[int, int] | None]:
    """The TensorProto without raw_data, and raw_data's span (None: it has none)."""
    parts, span, last = [], None, start
    for number, wire, fstart, value, fend in _fields(buf, start, end):
        if number == _TENSOR_RAW_DATA:
            if wire != _LENGTH_DELIMITED or span is not None:
                raise _Unexpected  # a repeated raw_data: protobuf keeps the last, leave it
            span = (value, fend)
            parts.append(bytes(buf[last:fstart]))
            last = fend
    parts.append(bytes(buf[last:end]))
    return b"".join(parts), span


def _graph(buf, start: int, end: int) -> tuple[bytes, list[tuple[int, int] | None]]:
    parts, spans, last = [], [], start
    for number, wire, fstart, value, fend in _fields(buf, start, end):
        if number != _GRAPH_INITIALIZER:
            continue
        if wire != _LENGTH_DELIMITED:
            raise _Unexpected
        if fend - value < SMALL_TENSOR_BYTES:
            spans.append(None)  # kept as is: protobuf decodes it
            continue
        parts.append(bytes(buf[last:fstart]))
        tensor, span = _tensor(buf, value, fend)
        parts.append(_field(_GRAPH_INITIALIZER, tensor))
        spans.append(span)
        last = fend
    parts.append(bytes(buf[last:end]))
    return b"".join(parts), spans


def split_initializers(buf) -> tuple[bytes, list[tuple[int, int] | None]] | None:
    """(the serialized model without the large initializers' raw_data, for each graph
    initializer in order the (start, end) of its raw_data in `buf`, or None where the proto
    keeps it), or None if the fast path does not apply."""
    try:
        graph = None
        for number, wire, fstart, value, fend in _fields(buf, 0, len(buf)):
            if number == _MODEL_GRAPH:
                if wire != _LENGTH_DELIMITED or graph is not None:
                    return None  # protobuf would merge two graph fields
                graph = (fstart, value, fend)
        if graph is None:
            return None
        fstart, value, fend = graph
        body, spans = _graph(buf, value, fend)
    except _Unexpected:
        return None
    if not any(spans):
        return None
    skeleton = bytes(buf[:fstart]) + _field(_MODEL_GRAPH, body) + bytes(buf[fend:])
    return skeleton, spans
