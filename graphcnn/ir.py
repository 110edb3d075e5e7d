"""The IR core: tensor types, values, nodes and the graph that owns them.

Use lists are kept in one place: only Graph's methods (`add_node`, `replace_all_uses_with`,
`replace_input`, `remove`, `set_outputs`) rewire edges, so both directions of every edge stay in
sync. Attributes are frozen; a changed node is a new node.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import GraphError, ModelLoadError, ShapeError, where

# numpy's canonical names of the numeric dtypes: TensorType keeps these as given
_CANONICAL_DTYPES = frozenset(np.dtype(code).name for code in "?bBhHiIlLqQefdgFDG")
_DTYPE_SHORT = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "bool": "b1"}


@dataclass(frozen=True)
class TensorType:
    """A static tensor type: a concrete shape and a numpy dtype name."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in _CANONICAL_DTYPES:  # spelled otherwise ("f4", np.float32, ...)
            object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def __str__(self) -> str:
        return f"{_DTYPE_SHORT.get(self.dtype, self.dtype)}[{','.join(map(str, self.shape))}]"


class FrozenDict(dict):
    """A dict that refuses mutation: node attributes are immutable once the node exists."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("node attributes are frozen; build a new node instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __deepcopy__(self, memo: dict) -> FrozenDict:
        return self  # immutable: safe to share

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


def freeze(value: Any) -> Any:
    """Lists become tuples and numpy scalars Python scalars, so attrs are hashable and printable."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return tuple(freeze(v) for v in value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


class Value:
    """An edge: produced by one node (or a graph input / constant), used by any number of nodes.

    A constant's `data` is its array, or a `Deferred` loader not read yet (a graph restored from
    an import snapshot, see graphcnn/frontends/onnx_snapshot.py): the first `.data` access reads
    it; `is_constant`, shapes, digests and graph copies never do.
    """

    __slots__ = ("_data", "_pending", "name", "producer", "type", "uses")

    def __init__(self, name: str, type: TensorType, producer: Node | None = None,
                 data: np.ndarray | None = None, pending: Deferred | None = None):
        self.name = name
        self.type = type
        self.producer = producer
        self.uses: list[tuple[Node, int]] = []  # (user node, input index)
        self._data = data
        self._pending = pending if data is None else None

    @property
    def data(self) -> np.ndarray | None:
        data = self._data
        if data is None:
            pending = self._pending  # once: another thread may be loading it too
            if pending is not None:
                data = self._data = pending.load()
        return data

    @data.setter
    def data(self, data: np.ndarray | None) -> None:
        self._data = data
        self._pending = None  # a new array replaces any constant not read yet

    @property
    def pending(self) -> Deferred | None:
        """The loader this constant's bytes come from while this Value has not read them (a
        copy of it may have: the loader then has them), else None."""
        return self._pending if self._data is None else None

    @property
    def is_constant(self) -> bool:
        return self._data is not None or self._pending is not None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    def _twin(self, producer: Node | None = None) -> Value:
        """A copy without uses; a constant shares its array or its loader (neither is read)."""
        twin = Value(self.name, self.type, producer)
        twin._data, twin._pending = self._data, self._pending
        return twin

    def users(self) -> list[Node]:
        seen: dict[int, Node] = {}
        for node, _ in self.uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    def __repr__(self) -> str:
        return f"Value(%{self.name}: {self.type})"


def file_identity(st: os.stat_result) -> list[int]:
    """What says a file is unchanged: device, inode, size, mtime and ctime in ns (see
    graphcnn/frontends/onnx_digests.py for why that is enough)."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class Deferred:
    """A constant's bytes still in the model file they were imported from: little-endian
    `dtype` data at [offset, offset + nbytes) of `path`, while the file keeps `identity`.

    Loaded once, on first use (shared by every copy of the graph), into an array of its own,
    read-only, its digest (recorded with the file, see constant_digests) remembered. A file
    that changed since the import is a ModelLoadError: its bytes may no longer be the graph's.
    """

    __slots__ = ("_array", "_lock", "digest", "dtype", "identity", "nbytes", "offset", "path",
                 "shape", "what")

    def __init__(self, path: str, identity: Sequence[int], offset: int, nbytes: int,
                 dtype: np.dtype, shape: tuple[int, ...], digest: bytes, what: str):
        self.path, self.identity = path, list(identity)
        self.offset, self.nbytes = offset, nbytes
        self.dtype, self.shape = np.dtype(dtype), tuple(shape)
        self.digest, self.what = digest, what
        self._lock = threading.Lock()
        self._array: np.ndarray | None = None

    @property
    def loaded(self) -> bool:
        return self._array is not None

    def load(self) -> np.ndarray:
        with self._lock:
            if self._array is None:
                array = self._read()
                array.setflags(write=False)
                _DIGESTS.seed(array, self.digest)
                self._array = array
            return self._array

    def _changed(self) -> ModelLoadError:
        return ModelLoadError(f"model file {self.path!r} changed since it was imported, so "
                              f"constant {self.what} (read on first use) may no longer be the "
                              f"graph's: import the model again")

    def _read(self) -> np.ndarray:
        buf = np.empty(self.nbytes, np.uint8)
        try:
            with open(self.path, "rb", buffering=0) as f:
                if file_identity(os.fstat(f.fileno())) != self.identity:
                    raise self._changed()
                f.seek(self.offset)
                view, got = memoryview(buf), 0
                while got < self.nbytes:
                    n = f.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if got != self.nbytes or file_identity(os.fstat(f.fileno())) != self.identity:
                    raise self._changed()  # shrank, or written while being read
        except OSError as e:
            raise ModelLoadError(f"cannot read constant {self.what} from model file "
                                 f"{self.path!r}: {e.strerror or e}") from None
        little = buf.view(self.dtype.newbyteorder("<"))
        if little.dtype != self.dtype or self.dtype.kind == "b":  # as the importer decodes
            little = little.astype(self.dtype)
        return little.reshape(self.shape)

    def __deepcopy__(self, memo: dict) -> Deferred:
        return self  # read-only once loaded: shared like constant arrays

    def __reduce__(self):
        return (Deferred, (self.path, self.identity, self.offset, self.nbytes, self.dtype,
                           self.shape, self.digest, self.what))

    def __repr__(self) -> str:
        return (f"Deferred({self.what}: {self.dtype.name}{list(self.shape)} at "
                f"{self.path!r}[{self.offset}:{self.offset + self.nbytes}])")


class Node:
    """One operation. Inputs and outputs are Values; attrs a frozen dict."""

    __slots__ = ("attrs", "inputs", "name", "op", "outputs", "typed")

    def __init__(self, name: str, op: str, inputs: Sequence[Value], attrs: dict[str, Any]):
        self.name = name
        self.op = op
        self.inputs: tuple[Value, ...] = tuple(inputs)
        self.outputs: tuple[Value, ...] = ()
        self.attrs = FrozenDict({k: freeze(v) for k, v in attrs.items()})
        # the verifier's memo: (op, attrs, input types, output types) it last found consistent
        self.typed: tuple | None = None

    @property
    def output(self) -> Value:
        return self.outputs[0]

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.op})"


class Graph:
    """A dataflow graph with nodes kept in topological order."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self._names: set[str] = set()
        # backend hints that are not op semantics, by node name (passes/util.py: kernel family,
        # in-place concat); copied with the graph, ignored by the reference interpreter
        self.annotations: dict[str, dict] = {}

    # ----- construction -------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        base = base or "v"
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def add_input(self, name: str, shape: Sequence[int], dtype: str = "float32") -> Value:
        if name in self._names:
            raise GraphError(f"duplicate name {name!r} for a graph input")
        self._names.add(name)
        value = Value(name, TensorType(tuple(shape), dtype))
        self.inputs.append(value)
        return value

    def add_constant(self, data: Any, name: str = "const", copy: bool = True) -> Value:
        """A constant Value holding a copy of `data` (float64 stored as float32). `copy=False`
        takes an ndarray as it is, from a caller that gives it up (a pass's freshly computed
        weights: copying them again is fresh memory, page faults, for nothing)."""
        array = data if not copy and isinstance(data, np.ndarray) else np.array(data, copy=True)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        array.setflags(write=False)  # constants are shared between graph copies
        return Value(self.unique_name(name), TensorType(array.shape, array.dtype.name), data=array)

    def add_node(self, op: str, inputs: Sequence[Value], attrs: dict[str, Any] | None = None,
                 name: str | None = None, before: Node | None = None,
                 output_names: Sequence[str] | None = None) -> Node:
        """Create a node: normalise attrs with its op's schema, infer output types, link uses.

        Appended at the end, or inserted just before `before` (passes rewriting in place).
        """
        from .ops import get_op  # the op table imports this module

        opdef = get_op(op, name)
        node = Node(self.unique_name(name or op), op, inputs, {})
        for v in inputs:
            if not isinstance(v, Value):
                raise GraphError(f"{where(node)}: input {v!r} is not a Value")
        try:
            node.attrs = FrozenDict({k: freeze(v) for k, v in
                                     opdef.normalized(dict(attrs or {}), [v.type for v in inputs]).items()})
            out_types = opdef.infer(node.attrs, [v.type for v in inputs])
        except ShapeError as e:
            raise ShapeError(f"{where(node)}: {e}") from None
        names = list(output_names or [])
        outs = []
        for i, t in enumerate(out_types):
            vname = self.unique_name(names[i]) if i < len(names) else (
                node.name if i == 0 else self.unique_name(f"{node.name}:{i}"))
            outs.append(Value(vname, t, producer=node))
        node.outputs = tuple(outs)
        for i, v in enumerate(node.inputs):
            v.uses.append((node, i))
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    def apply(self, op: str, inputs: Sequence[Value], attrs: dict[str, Any] | None = None,
              name: str | None = None, before: Node | None = None) -> Value:
        """add_node for the common single-output case; returns the output Value."""
        return self.add_node(op, inputs, attrs, name=name, before=before).outputs[0]

    def set_outputs(self, values: Iterable[Value]) -> None:
        self.outputs = list(values)

    # ----- rewiring (the only places that touch use lists) --------------------------------
    def replace_input(self, node: Node, index: int, new: Value) -> None:
        old = node.inputs[index]
        old.uses.remove((node, index))
        node.inputs = node.inputs[:index] + (new,) + node.inputs[index + 1:]
        new.uses.append((node, index))

    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        if old is new:
            return
        if old.type.shape != new.type.shape:
            raise ShapeError(f"cannot replace %{old.name} {old.type} with %{new.name} {new.type}")
        for node, i in list(old.uses):
            self.replace_input(node, i, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove(self, node: Node, safe: bool = True) -> None:
        """Remove a node; with safe=True its outputs must be unused and not graph outputs."""
        if safe:
            for out in node.outputs:
                if out.uses or any(out is v for v in self.outputs):
                    raise GraphError(f"cannot remove {where(node)}: %{out.name} is still used")
        for i, v in enumerate(node.inputs):
            if (node, i) in v.uses:
                v.uses.remove((node, i))
        self.nodes.remove(node)

    # ----- queries ---------------------------------------------------------------------------
    @property
    def constants(self) -> list[Value]:
        """Constant values referenced by nodes or outputs, in order of first use."""
        seen: dict[int, Value] = {}
        for node in self.nodes:
            for v in node.inputs:
                if v.is_constant:
                    seen.setdefault(id(v), v)
        for v in self.outputs:
            if v.is_constant:
                seen.setdefault(id(v), v)
        return list(seen.values())

    def values(self) -> Iterator[Value]:
        yield from self.inputs
        yield from self.constants
        for node in self.nodes:
            yield from node.outputs

    def find_node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise GraphError(f"no node named {name!r} in graph {self.name!r}")

    def toposort(self) -> None:
        """Reorder nodes topologically, stable with respect to the current order."""
        produced = {id(v) for v in self.inputs} | {id(v) for v in self.constants}
        pending, ordered = list(self.nodes), []
        while pending:
            progressed, rest = False, []
            for node in pending:
                if all(id(v) in produced or v.is_constant for v in node.inputs):
                    ordered.append(node)
                    produced.update(id(o) for o in node.outputs)
                    progressed = True
                else:
                    rest.append(node)
            if not progressed:
                names = ", ".join(n.name for n in rest[:5])
                raise GraphError(f"graph {self.name!r} has a cycle or dangling input among: {names}")
            pending = rest
        self.nodes = ordered

    def copy(self) -> Graph:
        """A deep copy of the structure (iterative, so any depth); constant arrays, which are
        read-only, are shared."""
        new = Graph(self.name)
        new._names = set(self._names)
        new.annotations = {k: dict(v) for k, v in self.annotations.items()}
        vmap: dict[int, Value] = {}

        def clone(v: Value) -> Value:
            if id(v) not in vmap:  # graph inputs, constants, or dangling values
                vmap[id(v)] = v._twin()
            return vmap[id(v)]

        new.inputs = [clone(v) for v in self.inputs]
        for node in self.nodes:
            twin = Node(node.name, node.op, [clone(v) for v in node.inputs], {})
            twin.attrs = node.attrs  # frozen: safe to share
            for out in node.outputs:
                vmap[id(out)] = out._twin(producer=twin)
            twin.outputs = tuple(vmap[id(out)] for out in node.outputs)
            for i, v in enumerate(twin.inputs):
                v.uses.append((twin, i))
            new.nodes.append(twin)
        new.outputs = [clone(v) for v in self.outputs]
        return new

    def __str__(self) -> str:
        from .printer import format_graph

        return format_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes>"


# ----- constant digests ----------------------------------------------------------------------------
class _Digests:
    """sha256 digests of constant arrays, memoised per array object.

    Compile caches key on every constant's bytes (~100 MB for ResNet-50), so a digest is computed
    once per array and remembered while the array lives and stays read-only (constants are
    read-only and shared between graph copies; an array made writeable again is re-hashed).
    `prefetch` hashes in a background thread (hashlib releases the GIL on big buffers), so an
    importer can start the work while the graph is still being built; `digests` hashes from the
    other end of the list meanwhile, so the two threads meet in the middle.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[int, tuple[weakref.ref, bytes]] = {}
        self._running: dict[int, threading.Event] = {}
        self._queue: deque[np.ndarray] = deque()
        self._worker: threading.Thread | None = None
        self._prune_at = 1024

    def get(self, array: np.ndarray) -> bytes:
        key = id(array)
        while True:
            with self._lock:
                entry = self._done.get(key)
                if entry is not None and entry[0]() is array and not array.flags.writeable:
                    return entry[1]
                event = self._running.get(key)
                if event is None:
                    event = self._running[key] = threading.Event()
                    break
            event.wait()  # another thread is hashing this array: take its result
        digest = b""
        try:
            digest = _hash_array(array)
        finally:
            with self._lock:
                del self._running[key]
                if digest and not array.flags.writeable:
                    self._remember(key, array, digest)
            event.set()
        return digest

    def _remember(self, key: int, array: np.ndarray, digest: bytes) -> None:
        # no weakref callback (it would take the lock from inside any deallocation, and a
        # daemon thread frozen at exit may hold it); dead entries are pruned as the memo grows
        self._done[key] = (weakref.ref(array), digest)
        if len(self._done) > self._prune_at:
            self._done = {k: e for k, e in self._done.items() if e[0]() is not None}
            self._prune_at = max(1024, 2 * len(self._done))

    def seed(self, array: np.ndarray, digest: bytes) -> None:
        if not array.flags.writeable:
            with self._lock:
                self._remember(id(array), array, digest)

    def _known(self, array: np.ndarray) -> bool:
        entry = self._done.get(id(array))
        return entry is not None and entry[0]() is array

    def prefetch(self, arrays: Iterable[np.ndarray]) -> None:
        with self._lock:
            self._queue.extend(arrays)
            if self._worker is None and self._queue:
                self._worker = threading.Thread(target=self._drain, name="graphcnn-digests",
                                                daemon=True)
                self._worker.start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._worker = None
                    return
                array = self._queue.popleft()
            self.get(array)

    def digests(self, arrays: Sequence[np.ndarray]) -> list[bytes]:
        with self._lock:
            big = [a for a in arrays if a.nbytes >= 1 << 16 and not self._known(a)]
        if len(big) > 1:
            self.prefetch(big)
        out = [b""] * len(arrays)
        for i in reversed(range(len(arrays))):
            out[i] = self.get(arrays[i])
        return out


def _hash_array(array: np.ndarray) -> bytes:
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).view(np.uint8))
    return h.digest()


_DIGESTS = _Digests()


def constant_digests(values: Sequence[Value]) -> list[bytes]:
    """sha256 of each constant's dtype, shape and bytes (memoised per array; see _Digests). A
    constant not read yet (Deferred) gives the digest recorded with it, and stays unread."""
    pending = [v.pending for v in values]
    if not any(pending):
        return _DIGESTS.digests([v.data for v in values])
    out = [b"" if p is None else p.digest for p in pending]
    arrays = [i for i, p in enumerate(pending) if p is None]
    for i, digest in zip(arrays, _DIGESTS.digests([values[i].data for i in arrays])):
        out[i] = digest
    return out


def prefetch_constant_digests(values: Iterable[Value]) -> None:
    """Start hashing these constants in the background (an importer's hint that a compile, which
    keys its cache on them, is likely to follow)."""
    _DIGESTS.prefetch([v.data for v in values if v.pending is None and v.data is not None
                       and v.data.nbytes >= 1 << 16])


def seed_constant_digest(value: Value, digest: bytes) -> None:
    """Remember a digest computed earlier for these very bytes (e.g. recorded for an unchanged
    file), so it is not computed again; it must be what constant_digests would return."""
    _DIGESTS.seed(value.data, digest)
