"""Loading ONNX files that may be hostile: size limits, tensor decoding, external data.

Every check here runs before memory is allocated for the thing it guards, so a model cannot make
the importer allocate more than `Limits` allows, read files outside its own directory, or crash
the process. Failures are ModelLoadError naming the tensor (or the file).

Rules:
1. The model is parsed without onnx's external-data loader (it follows any path it is given).
2. A tensor's element count is the product of its dims as Python ints (no overflow); negative
   dims are rejected; its byte size must fit `max_tensor_bytes` before it is decoded.
3. raw_data must hold exactly prod(dims) x itemsize bytes; typed fields exactly prod(dims) values.
4. External data: a relative `location` with no `..` part, whose real path (symlinks resolved)
   stays inside the model's directory; offset and length inside the file; exactly the tensor's
   byte size is read.
5. All constants together must fit `max_total_bytes`.
6. Every text field of the model (names, op types, domains, attribute strings, external-data
   keys, ...) is valid UTF-8 (protobuf hands invalid UTF-8 out as bytes), checked right after
   parsing; an external-data location has no NUL byte.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from ..errors import ModelLoadError
from .onnx_limits import DEFAULT_MAX_TENSOR_BYTES, DEFAULT_MAX_TOTAL_BYTES

__all__ = ["DEFAULT_MAX_TENSOR_BYTES", "DEFAULT_MAX_TOTAL_BYTES", "Limits", "LoadedModel",
           "load_model", "load_model_split", "np_dtype", "read_external", "tensor_to_array"]


@dataclass
class Limits:
    """Size limits; `from_onnx(..., max_tensor_bytes=..., max_total_bytes=...)` sets them."""

    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    total_bytes: int = 0  # constants accounted so far

    def check_tensor(self, what: str, shape: tuple[int, ...], itemsize: int,
                     error: type[Exception] = ModelLoadError) -> int:
        """Rule 2: the byte size of a tensor of `shape`, or `error` if it breaks a limit."""
        if any(d < 0 for d in shape):
            raise error(f"{what}: negative dimension in shape {list(shape)}")
        nbytes = math.prod(shape) * itemsize
        if nbytes > self.max_tensor_bytes:
            raise error(f"{what}: shape {list(shape)} needs {nbytes} bytes, over the limit "
                        f"max_tensor_bytes={self.max_tensor_bytes}")
        return nbytes

    def account(self, what: str, nbytes: int, error: type[Exception] = ModelLoadError) -> None:
        """Rule 5."""
        self.check_room(what, nbytes, error)
        self.total_bytes += nbytes

    def check_room(self, what: str, nbytes: int, error: type[Exception] = ModelLoadError
                   ) -> None:
        """Rule 5 for `nbytes` more, before they are allocated."""
        if self.total_bytes + nbytes > self.max_total_bytes:
            raise error(f"{what}: constants total {self.total_bytes + nbytes} bytes, over the "
                        f"limit max_total_bytes={self.max_total_bytes}")


# ONNX element types graphcnn can hold as constants, and the repeated field that stores them
_TYPED_FIELD = {
    TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data",
    TensorProto.INT64: "int64_data", TensorProto.INT32: "int32_data",
    TensorProto.INT16: "int32_data", TensorProto.INT8: "int32_data",
    TensorProto.UINT8: "int32_data", TensorProto.UINT16: "int32_data",
    TensorProto.BOOL: "int32_data", TensorProto.FLOAT16: "int32_data",
    TensorProto.UINT32: "uint64_data", TensorProto.UINT64: "uint64_data",
}


def np_dtype(elem_type: int, what: str) -> np.dtype:
    if elem_type not in _TYPED_FIELD:
        name = TensorProto.DataType.Name(elem_type) if elem_type in \
            TensorProto.DataType.values() else str(elem_type)
        raise ModelLoadError(f"{what}: element type {name} is not supported")
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def load_model(model, base_dir: str | None = None) -> tuple[onnx.ModelProto, str | None]:
    """Rule 1: a ModelProto from a path, bytes or a ModelProto, and the directory that external
    data may be read from (None: external data is refused)."""
    loaded = load_model_split(model, base_dir)
    if loaded.spans is not None:  # put the cut-out raw_data back: a caller wants a whole proto
        for t, span in zip(loaded.proto.graph.initializer, loaded.spans):
            if span is not None:
                t.raw_data = bytes(loaded.buffer[span[0]:span[1]])
    loaded.release()
    return loaded.proto, loaded.base_dir


@dataclass
class LoadedModel:
    """A parsed model whose large initializers may still sit in the file's buffer: `spans[i]`
    is graph initializer i's raw_data (start, end) in `buffer`, cut out of `proto` (see
    onnx_wire); None for all or one means the proto holds the data."""

    proto: onnx.ModelProto
    base_dir: str | None
    buffer: object = None
    spans: list[tuple[int, int] | None] | None = None
    path: str | None = None  # the file it was read from, its os.stat then, when (time.time_ns)
    stat: os.stat_result | None = None
    read_ns: int = 0

    def raw(self, i: int) -> memoryview | None:
        if self.spans is None or self.spans[i] is None:
            return None
        start, end = self.spans[i]
        return memoryview(self.buffer)[start:end]

    def release(self) -> None:
        """Drop the file's buffer (freed once no array views it)."""
        self.buffer, self.spans = None, None


def load_model_split(model, base_dir: str | None = None) -> LoadedModel:
    """load_model, keeping the large initializers' raw_data out of protobuf when the model is
    a file or bytes (the file is read into one buffer; see onnx_wire). Call `release()` when done."""
    from .onnx_wire import split_initializers

    if isinstance(model, onnx.ModelProto):
        check_text(model, "<ModelProto>")
        return LoadedModel(model, base_dir)
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, what = bytes(model), "<bytes>"
    elif isinstance(model, (str, os.PathLike)):
        what = os.fspath(model)
        base_dir = base_dir or os.path.dirname(os.path.abspath(what))
        data, st, read_ns = _map_file(what)
    else:
        raise ModelLoadError(f"from_onnx takes a path, bytes or onnx.ModelProto, got "
                             f"{type(model).__name__}")
    split = split_initializers(data)
    if split is None:
        loaded = LoadedModel(_parse(bytes(data), what), base_dir)
    else:
        skeleton, spans = split
        loaded = LoadedModel(_parse(skeleton, what), base_dir, data, spans)
    if isinstance(model, (str, os.PathLike)):
        loaded.path, loaded.stat, loaded.read_ns = what, st, read_ns
    return loaded


def _map_file(path: str) -> tuple[object, os.stat_result, int]:
    """The file's bytes, read once into one buffer (not mmap'd: a file truncated while it is
    mapped kills the process with SIGBUS, e.g. an exporter re-saving the model meanwhile),
    with the file's stat and the time it was read."""
    try:
        with open(path, "rb") as f:
            st, read_ns = os.fstat(f.fileno()), time.time_ns()
            # a numpy buffer: faulted in far faster than a bytearray here (25 vs 60 ms for
            # 100 MB); read through a memoryview, whose indexing gives ints (onnx_wire)
            buf = np.empty(st.st_size, np.uint8)
            got = f.readinto(memoryview(buf)) if st.st_size else 0  # shrank: what is there
            rest = f.read()  # grew meanwhile (or not a regular file): keep it all
            data = memoryview(buf)[:got] if not rest else bytes(memoryview(buf)[:got]) + rest
            return data, st, read_ns
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path!r}: {e.strerror or e}") from None


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and friends: bad bytes)
        raise ModelLoadError(f"{what} is not a valid ONNX model (protobuf parse failed: {e})") \
            from None
    if not proto.HasField("graph"):
        raise ModelLoadError(f"{what} is not an ONNX model (no graph; truncated or another "
                             f"format?)")
    check_text(proto, what)
    return proto


# per message type: its text fields and its message fields, as (name, repeated)
_LAYOUTS: dict[str, tuple[list[tuple[str, bool]], list[tuple[str, bool]]]] = {}
# bytes fields that ONNX defines as UTF-8 text: an attribute's STRING(S) values
_TEXT_BYTES = {"onnx.AttributeProto": (("s", False), ("strings", True))}


def _layout(descriptor) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    layout = _LAYOUTS.get(descriptor.full_name)
    if layout is None:
        text, messages = [], []
        for f in descriptor.fields:
            repeated = getattr(f, "is_repeated", None)  # protobuf >= 5; `label` before
            repeated = f.label == f.LABEL_REPEATED if repeated is None else repeated
            if f.type == f.TYPE_STRING:
                text.append((f.name, repeated))
            elif f.type == f.TYPE_MESSAGE:
                messages.append((f.name, repeated))
        layout = _LAYOUTS[descriptor.full_name] = (text, messages)
    return layout


def _part(message, name: str, index: int | None) -> str:
    """How an error names a part of the model: a node by its name and op type when those are
    text, anything else by its field path."""
    at = name if index is None else f"{name}[{index}]"
    if isinstance(message, onnx.NodeProto) and isinstance(message.name, str) and \
            isinstance(message.op_type, str):
        return f"{at} (node {message.name!r}, {message.op_type})"
    return at


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_text(message, where: str = "model") -> None:
    """Rule 6: every string field of `message` and the messages in it is a str, and every
    attribute string valid UTF-8."""
    text, messages = _layout(message.DESCRIPTOR)
    for name, repeated in text:
        values = getattr(message, name)
        for value in values if repeated else (values,):
            if not isinstance(value, str):
                raise ModelLoadError(f"{where}: {name} {bytes(value)!r} is not valid UTF-8")
    for name, repeated in _TEXT_BYTES.get(message.DESCRIPTOR.full_name, ()):
        values = getattr(message, name)
        for value in values if repeated else (values,):
            if not _utf8(value):
                raise ModelLoadError(f"{where}: attribute {message.name!r} string {value!r} "
                                     f"is not valid UTF-8")
    for name, repeated in messages:
        if repeated:
            for i, part in enumerate(getattr(message, name)):
                check_text(part, f"{where}.{_part(part, name, i)}")
        elif message.HasField(name):
            part = getattr(message, name)
            check_text(part, f"{where}.{_part(part, name, None)}")


def tensor_to_array(t: TensorProto, limits: Limits, base_dir: str | None,
                    what: str | None = None, raw_data: memoryview | None = None) -> np.ndarray:
    """Rules 2-4: decode one TensorProto (initializer or Constant value) into a read-only array
    of its own (one copy of the data). `raw_data`: the tensor's raw_data when it was cut out of
    the proto (onnx_wire)."""
    what = what or f"tensor {t.name!r}"
    dtype = np_dtype(t.data_type, what)
    shape = tuple(int(d) for d in t.dims)
    nbytes = limits.check_tensor(what, shape, dtype.itemsize)
    count = math.prod(shape)
    if t.data_location == TensorProto.EXTERNAL:
        raw = read_external(t, nbytes, base_dir, what)
    elif raw_data is not None:
        raw = raw_data
    elif t.HasField("raw_data") or (t.raw_data and len(t.raw_data)):
        raw = t.raw_data
    else:
        raw = None
    if raw is not None:
        if len(raw) != nbytes:
            raise ModelLoadError(f"{what}: raw_data has {len(raw)} bytes but dims {list(shape)} "
                                 f"of {dtype.name} need {nbytes}")
        # astype copies: the array owns its memory, aligned, in native byte order
        array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
        array.setflags(write=False)
        return array
    else:
        field = getattr(t, _TYPED_FIELD[t.data_type])
        if len(field) != count:
            raise ModelLoadError(f"{what}: {len(field)} values stored but dims {list(shape)} "
                                 f"need {count}")
        if t.data_type == TensorProto.FLOAT16:  # stored as the uint16 bit pattern
            array = np.array(field, dtype=np.uint16).view(np.float16)
        else:
            array = np.array(field).astype(dtype)
        array = array.reshape(shape)
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def read_external(t: TensorProto, nbytes: int, base_dir: str | None, what: str) -> bytes:
    """Rule 4."""
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    if "\0" in location:
        raise ModelLoadError(f"{what}: external data location {location!r} contains a NUL "
                             f"byte")
    if base_dir is None:
        raise ModelLoadError(f"{what}: external data {location!r} but the model was not loaded "
                             f"from a file (pass base_dir=...)")
    if not location or os.path.isabs(location) or location.startswith(("/", "\\")) or \
            any(part == ".." for part in location.replace("\\", "/").split("/")) or \
            ":" in location:
        raise ModelLoadError(f"{what}: external data location {location!r} must be a relative "
                             f"path inside the model's directory")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise ModelLoadError(f"{what}: external data {location!r} resolves outside the model's "
                             f"directory (symlink?)")
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else nbytes
    except ValueError:
        raise ModelLoadError(f"{what}: external data offset/length are not integers") from None
    if offset < 0 or length != nbytes:
        raise ModelLoadError(f"{what}: external data offset {offset} / length {length} do not "
                             f"describe the tensor's {nbytes} bytes")
    try:
        if not os.path.isfile(path):
            raise ModelLoadError(f"{what}: external data file {location!r} is missing or not a "
                                 f"regular file")
        size = os.path.getsize(path)
        if offset + length > size:
            raise ModelLoadError(f"{what}: external data {location!r} has {size} bytes, the "
                                 f"tensor needs [{offset}, {offset + length})")
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
    except OSError as e:
        raise ModelLoadError(f"{what}: cannot read external data {location!r}: {e}") from None
    if len(data) != length:
        raise ModelLoadError(f"{what}: external data {location!r} is truncated")
    return data
