"""Import snapshots: importing an unchanged model file again without the onnx package and
without reading its weights.

When a large model file is imported (the conditions of onnx_digests' record: a path, no
external data, large enough, not racy), the record also stores the imported Graph as JSON
(`encode`): names, types, nodes, attributes, use lists, annotations, the from_onnx arguments it
was made with and the warnings the import gave. A constant that is exactly an initializer
decoded from a raw_data span of the file is stored as a reference (initializer, offset; its
digest is the record's); any other (small initializers protobuf keeps, folded constants) is
stored inline (base64) if they are small together, else there is no snapshot. No pickle: the
cache directory is not trusted to run code. The snapshot is taken in the importing thread and
checked in the recording one: it is only stored if decoding it gives the same graph
(`canonical`).

`load` (the fast path of graphcnn.from_onnx) rebuilds the graph from the snapshot if the file's
identity, graphcnn's and onnx's source and the from_onnx arguments all match, through the
graph's own methods: nodes keep their recorded names and output types (Graph.restore_node,
verify() checks them against the shape rules), and file constants become `Deferred` loaders
(file_data.py), read on first use (a compile cache hit needs only their recorded digests).
Everything in a record is checked (types, names, offsets within the file, dtypes, limits, op
schemas, use lists in node order as the graph links them, then verify()): anything off returns
None and the caller imports the file the normal way.

This module must not import onnx (see test_onnx_snapshot.py).
"""
from __future__ import annotations

import base64
import copy
import json
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import GraphcnnError
from ..ir import Graph, TensorType, Value
from ..verify import verify
from . import onnx_digests
from .file_data import Deferred
from .onnx_limits import DEFAULT_MAX_TENSOR_BYTES, DEFAULT_MAX_TOTAL_BYTES

FORMAT = 1
MAX_INLINE_BYTES = 4 << 20  # at most this many bytes of constants stored in the JSON itself
DTYPES = frozenset({"float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8",
                    "uint16", "uint32", "uint64", "bool"})  # onnx_safety's decodable types
_OPTIONS = frozenset({"max_tensor_bytes", "max_total_bytes", "name", "base_dir", "strict"})


class _Bad(Exception):
    """A snapshot that does not describe a valid graph."""


# ----- the from_onnx arguments ----------------------------------------------------------------
def _int(x: Any) -> int:
    if type(x) is int:
        return x
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return int(x)
    raise _Bad(f"not an int: {x!r}")


def arguments(input_shapes: Any, options: Mapping[str, Any]) -> dict | None:
    """from_onnx's arguments in the form a snapshot records them (defaults filled in, shapes as
    lists of ints), or None if they are not plain enough to compare (then: no fast path).
    `base_dir` is left out: it only locates external data, which a snapshot never has."""
    if set(options) - _OPTIONS:
        return None  # an unknown option: the import reports it
    name = options.get("name")
    if name is not None and not isinstance(name, str):
        return None
    strict = options.get("strict", True)
    if not isinstance(strict, bool):
        return None
    try:
        shapes = {}
        if input_shapes is not None:
            if not isinstance(input_shapes, Mapping):
                return None
            for key, dims in input_shapes.items():
                if not isinstance(key, str) or isinstance(dims, (str, bytes)):
                    return None
                shapes[key] = [_int(d) for d in dims]
        return {"input_shapes": shapes,
                "max_tensor_bytes": _int(options.get("max_tensor_bytes",
                                                     DEFAULT_MAX_TENSOR_BYTES)),
                "max_total_bytes": _int(options.get("max_total_bytes", DEFAULT_MAX_TOTAL_BYTES)),
                "name": name, "strict": strict}
    except (_Bad, TypeError):
        return None


# ----- encoding ---------------------------------------------------------------------------------
def _type(v: Value) -> list:
    return [list(v.type.shape), v.type.dtype]


def _uses(v: Value, index: dict[int, int]) -> list[int]:
    return [x for node, i in v.uses for x in (index[id(node)], i)]


def encode(graph: Graph, files: Mapping[int, tuple[np.ndarray, str, int, int]], args: dict,
           warned: list[str], path: str, st: os.stat_result) -> Callable[[], dict | None] | None:
    """The snapshot of `graph` (as the importer returns it): None if it cannot have one, else a
    function that finishes it (JSON form) and returns it, or None if it does not decode to the
    same graph.

    Call this in the importing thread: it takes from the graph all the snapshot needs (the
    caller may change the graph afterwards); the function may run in any thread (the record is
    written in the background). `files`: id(array) -> (the array, initializer name, start, end
    of its raw_data in the file) for the initializers decoded from the file's bytes."""
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    constants, inline = [], 0
    for v in graph.constants:
        a = v.data
        if v.pending is not None or a.dtype.name not in DTYPES or \
                a.dtype.name != v.type.dtype or a.shape != v.type.shape:
            return None
        ref = files.get(id(a))
        if ref is not None and ref[0] is a and ref[3] - ref[2] == a.nbytes:
            source = ["file", ref[1], ref[2]]
        else:
            inline += a.nbytes
            if inline > MAX_INLINE_BYTES:
                return None
            little = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
            source = ["inline", base64.b64encode(little.tobytes()).decode("ascii")]
        constants.append([v.name, *_type(v), source, _uses(v, index)])
    nodes = [[n.name, n.op, [v.name for v in n.inputs], dict(n.attrs),
              [[o.name, *_type(o), _uses(o, index)] for o in n.outputs]]
             for n in graph.nodes]
    snapshot = {"format": FORMAT, "args": args, "warnings": list(warned), "graph": {
        "name": graph.name, "names": sorted(graph.reserved_names()),
        "annotations": copy.deepcopy(graph.annotations),
        "inputs": [[v.name, *_type(v), _uses(v, index)] for v in graph.inputs],
        "constants": constants, "nodes": nodes, "outputs": [v.name for v in graph.outputs]}}
    sources = {id(ref[0]): ref for ref in files.values()}
    want = canonical(graph, lambda v: _source_of(v, sources))
    tensors = {ref[1]: [ref[0].dtype.str, list(ref[0].shape)] for ref in files.values()}

    def finish() -> dict | None:
        try:
            # as stored: JSON types only (tuples become lists; anything else fails here)
            stored = json.loads(json.dumps(snapshot))
            twin = decode(stored, path, onnx_digests.identity(st), st.st_size, tensors,
                          {name: "00" * 32 for name in tensors})
        except (_Bad, GraphcnnError, ValueError, TypeError, KeyError, RecursionError,
                OverflowError):
            return None
        return stored if canonical(twin, lambda v: _source_of(v, sources)) == want else None

    return finish


def _source_of(v: Value, files: Mapping[int, tuple]) -> tuple:
    """Where a constant's bytes come from, for `canonical`: a file span or the bytes."""
    pending = v.pending
    if pending is not None:
        return ("file", pending.offset, pending.nbytes, pending.dtype.str)
    a = v.data
    ref = files.get(id(a))
    if ref is not None and ref[0] is a:
        return ("file", ref[2], ref[3] - ref[2], a.dtype.str)
    return ("inline", a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())


def canonical(graph: Graph, source=None) -> list:
    """Everything a snapshot must reproduce: names, types, ops, attrs (repr: 1, 1.0 and True
    differ), the order of use lists, annotations, the reserved names; with `source(value)`
    where each constant's bytes come from."""
    index = {id(n): i for i, n in enumerate(graph.nodes)}

    def value(v: Value) -> tuple:
        return (v.name, v.type.shape, v.type.dtype,
                [(index.get(id(n), -1), i) for n, i in v.uses])

    out = [repr(graph.name), sorted(graph.reserved_names()), repr(graph.annotations),
           [value(v) for v in graph.inputs],
           [(value(v), source(v) if source else None) for v in graph.constants]]
    for n in graph.nodes:
        out.append((n.name, n.op, [v.name for v in n.inputs], repr(sorted(n.attrs.items())),
                    [value(o) for o in n.outputs]))
    out.append([v.name for v in graph.outputs])
    return out


# ----- decoding ---------------------------------------------------------------------------------
def _str(x: Any) -> str:
    if not isinstance(x, str):
        raise _Bad(f"not a string: {x!r}")
    return x


def _list(x: Any, n: int | None = None) -> list:
    if not isinstance(x, list) or (n is not None and len(x) != n):
        raise _Bad(f"not a list of {n}: {x!r}")
    return x


def _tensor_type(shape: Any, dtype: Any, known: dict | None = None) -> TensorType:
    """The TensorType of a stored (shape, dtype); `known` interns them (a model repeats a few
    types many times, and TensorType's constructor normalises through numpy)."""
    dims = tuple(_int(d) for d in _list(shape))
    key = (dims, _str(dtype))
    if known is not None and key in known:
        return known[key]
    if any(d < 0 for d in dims) or dtype not in DTYPES:
        raise _Bad(f"bad type {shape!r} {dtype!r}")
    t = TensorType(dims, dtype)
    if known is not None:
        known[key] = t
    return t


def decode(snapshot: Any, path: str, identity: list[int], size: int, tensors: Any, digests: Any
           ) -> Graph:
    """The Graph a snapshot describes, verified, or _Bad (or another error: a caller takes any
    as "no snapshot"). `tensors` and `digests`: the record's descriptions and digests of the
    initializers, by name; `size`: the file's size. Built through the graph's own methods
    (add_input, restore_constant, restore_node): output types as recorded, checked by verify."""
    if not isinstance(snapshot, dict) or snapshot.get("format") != FORMAT:
        raise _Bad("not a snapshot of this format")
    g, args = snapshot["graph"], snapshot["args"]
    if not isinstance(g, dict) or not isinstance(args, dict) or \
            not isinstance(tensors, dict) or not isinstance(digests, dict):
        raise _Bad("not a snapshot")
    max_tensor, max_total = _int(args["max_tensor_bytes"]), _int(args["max_total_bytes"])
    graph = Graph(_str(g["name"]))
    names = {_str(n) for n in _list(g["names"])}
    annotations = g["annotations"]
    if not isinstance(annotations, dict) or \
            not all(isinstance(a, dict) for a in annotations.values()):
        raise _Bad("annotations")
    values: dict[str, Value] = {}
    uses: list[tuple[Value, list]] = []
    types: dict[tuple, TensorType] = {}

    def define(value: Value, stored_uses: Any) -> None:
        if value.name not in names:
            raise _Bad(f"value name {value.name!r} is not reserved")
        values[value.name] = value
        uses.append((value, _list(stored_uses)))

    for entry in _list(g["inputs"]):
        name, shape, dtype, stored = _list(entry, 4)
        t = _tensor_type(shape, dtype, types)
        define(graph.add_input(_str(name), t.shape, t.dtype), stored)
    total = 0
    for entry in _list(g["constants"]):
        name, shape, dtype, source, stored = _list(entry, 5)
        t = _tensor_type(shape, dtype, types)
        nbytes = t.nbytes
        total += nbytes
        if nbytes > max_tensor or total > max_total:
            raise _Bad("over the import's size limits")
        source = _list(source)
        kind = _str(source[0]) if source else None
        if kind == "file":
            _, tname, offset = _list(source, 3)
            offset = _int(offset)
            if tensors.get(_str(tname)) != [np.dtype(t.dtype).str, list(t.shape)] or \
                    not 0 <= offset <= size - nbytes:
                raise _Bad(f"constant {name!r}: not an initializer's bytes in the file")
            digest = bytes.fromhex(_str(digests[tname]))
            if len(digest) != 32:
                raise _Bad("digest")
            data = Deferred(path, identity, offset, nbytes, np.dtype(t.dtype), t.shape, digest,
                            f"%{name} (initializer {tname!r})")
        elif kind == "inline":
            _, text = _list(source, 2)
            raw = base64.b64decode(_str(text), validate=True)
            if len(raw) != nbytes:
                raise _Bad(f"constant {name!r}: {len(raw)} bytes for {t}")
            dtype = np.dtype(t.dtype)
            data = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(t.shape)
            data.setflags(write=False)
        else:
            raise _Bad(f"constant {name!r}: source {kind!r}")
        define(graph.restore_constant(_str(name), t, data), stored)
    for entry in _list(g["nodes"]):
        name, op, inputs, attrs, outputs = _list(entry, 5)
        name = _str(name)
        if name not in names or not isinstance(attrs, dict):
            raise _Bad(f"node {name!r}: a name not reserved, or attributes not a dict")
        ins = []
        for i in _list(inputs):
            if _str(i) not in values:
                raise _Bad(f"node {name!r}: input {i!r} is not defined before it")
            ins.append(values[i])
        outs, stored_uses = [], []
        for out in _list(outputs):
            oname, shape, dtype, stored = _list(out, 4)
            outs.append((_str(oname), _tensor_type(shape, dtype, types)))
            stored_uses.append(stored)
        node = graph.restore_node(name, _str(op), ins, {_str(k): v for k, v in attrs.items()},
                                  outs)
        for value, stored in zip(node.outputs, stored_uses):
            define(value, stored)
    graph.set_outputs([values[_str(n)] for n in _list(g["outputs"])])
    # use lists: as the graph linked them (node order), which is what the import records
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    for value, stored in uses:
        if not all(type(x) is int for x in stored) or _uses(value, index) != stored:
            raise _Bad(f"use list of %{value.name}")
    graph.reserve_names(names)
    graph.annotations = annotations
    verify(graph)
    return graph


# ----- the fast path ----------------------------------------------------------------------------
def load(model: Any, input_shapes: Any, options: Mapping[str, Any]) -> Graph | None:
    """The graph `from_onnx(model, input_shapes, **options)` would import, from the file's
    snapshot; None if there is none that applies (then import the file)."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    args = arguments(input_shapes, options)
    if args is None:
        return None
    try:
        path = os.fspath(model)
        if not isinstance(path, str):
            return None
        st = os.stat(path)
        record = onnx_digests.read_record(path)
        if record is None:
            return None
        identity = onnx_digests.identity(st)
        snapshot = record.get("snapshot")
        if record.get("identity") != identity or not isinstance(snapshot, dict) or \
                snapshot.get("source") != onnx_digests.graph_source() or \
                snapshot.get("args") != args:
            return None
        graph = decode(snapshot, os.path.abspath(path), identity, st.st_size,
                       record.get("tensors"), record.get("digests"))
        warned = [_str(w) for w in _list(snapshot.get("warnings"))]
    except Exception:  # noqa: BLE001  (a hostile or stale record: import the file instead)
        return None
    for message in warned:  # what the import said about this model (symbolic batch dims)
        warnings.warn(message, stacklevel=3)
    return graph
