"""The IR core: tensor types, values, nodes and the graph that owns them.

Use lists are kept in one place: only Graph's methods (`add_node`, `replace_all_uses_with`,
`replace_input`, `remove`, `set_outputs`) rewire edges, so both directions of every edge stay in
sync. Attributes are frozen; a changed node is a new node.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from .errors import GraphError, ShapeError, where
from .ops import get_op
from .printer import format_graph
from .tensor_type import TensorType

__all__ = ["FrozenDict", "Graph", "LazyData", "Node", "TensorType", "Value", "freeze"]


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


class LazyData(Protocol):
    """Constant data produced on first use (e.g. read from a model file: a graph restored from
    an import snapshot, graphcnn/frontends/file_data.py). `shape` and `dtype` describe the array
    without producing it; `load()` gives the same read-only array on every call, from any
    thread. A source may carry more facts about its bytes for other layers (graphcnn/digests.py
    reads a recorded `digest`)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def load(self) -> np.ndarray: ...


class Value:
    """An edge: produced by one node (or a graph input / constant), used by any number of nodes.

    A constant's `data` is its array, or a LazyData not loaded yet (`pending`): the first
    `.data` access loads it; `is_constant`, shapes, the verifier and graph copies never do.
    """

    __slots__ = ("_data", "_pending", "name", "producer", "type", "uses")

    def __init__(self, name: str, type: TensorType, producer: Node | None = None,
                 data: np.ndarray | None = None, pending: LazyData | None = None):
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
    def pending(self) -> LazyData | None:
        """The source this constant's data comes from while this Value has not loaded it (a
        copy of it may have: the source then holds the array), else None."""
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
        self._next_suffix: dict[str, int] = {}  # base -> the suffix unique_name tries first
        # backend hints that are not op semantics, by node name (passes/util.py: kernel family,
        # in-place concat); copied with the graph, ignored by the reference interpreter
        self.annotations: dict[str, dict] = {}

    # ----- construction -------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        """`base` if free, else the first free `base_1`, `base_2`, ...; probing resumes where
        the last call for this base stopped (a chain of 20k ReLUs would otherwise probe 20k^2/2
        names). A name given back (the DSL frees one and asks for it again) is `base` itself."""
        base = base or "v"
        if base not in self._names:
            self._names.add(base)
            return base
        i = self._next_suffix.get(base, 1)
        while f"{base}_{i}" in self._names:
            i += 1
        name = f"{base}_{i}"
        self._names.add(name)
        self._next_suffix[base] = i + 1
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

    # ----- restoring a saved graph (loaders: names and types exactly as recorded) ------------
    def _claim(self, names: Sequence[str], what: str) -> None:
        """Reserve new names, all or none."""
        for name in names:
            if not isinstance(name, str) or name in self._names:
                raise GraphError(f"{what}: name {name!r} is taken or not a string")
        if len(set(names)) != len(names):
            raise GraphError(f"{what}: names {list(names)} repeat")
        self._names.update(names)

    def restore_constant(self, name: str, type: TensorType, data: np.ndarray | LazyData
                         ) -> Value:
        """A constant named `name` of `type`, holding `data`: a read-only array of exactly that
        type, or a LazyData describing one (loaded on first use). Unlike add_constant, nothing
        is renamed, copied or converted."""
        if isinstance(data, np.ndarray):
            if data.flags.writeable:
                raise GraphError(f"constant %{name}: its array must be read-only (shared)")
            shape, dtype = data.shape, data.dtype
        else:
            shape, dtype = tuple(data.shape), np.dtype(data.dtype)
        if shape != type.shape or dtype.name != type.dtype:
            raise GraphError(f"constant %{name}: data {dtype.name}{list(shape)} is not {type}")
        self._claim([name], f"constant %{name}")
        if isinstance(data, np.ndarray):
            return Value(name, type, data=data)
        return Value(name, type, pending=data)

    def restore_node(self, name: str, op: str, inputs: Sequence[Value], attrs: dict[str, Any],
                     outputs: Sequence[tuple[str, TensorType]]) -> Node:
        """Append a node as recorded: its name, `attrs` as its op's schema normalises them (a
        GraphError otherwise) and its outputs' (name, type); the first output may share the
        node's name, as add_node names it. Output types are taken as given, not inferred:
        verify() checks them against the shape rule."""
        opdef = get_op(op, name)
        node = Node(name, op, inputs, attrs)
        for v in node.inputs:
            if not isinstance(v, Value):
                raise GraphError(f"{where(node)}: input {v!r} is not a Value")
        try:
            normal = opdef.normalized(dict(node.attrs), [v.type for v in node.inputs])
        except ShapeError as e:
            raise ShapeError(f"{where(node)}: {e}") from None
        if FrozenDict({k: freeze(v) for k, v in normal.items()}) != node.attrs:
            raise GraphError(f"{where(node)}: attributes are not as the op's schema makes them")
        names = [vname for vname, _ in outputs]
        self._claim([name] + (names[1:] if names[:1] == [name] else names), where(node))
        node.outputs = tuple(Value(vname, t, producer=node) for vname, t in outputs)
        for i, v in enumerate(node.inputs):
            v.uses.append((node, i))
        self.nodes.append(node)
        return node

    def reserve_names(self, names: Iterable[str]) -> None:
        """Keep `names` from unique_name (a restored graph's names that passes freed)."""
        self._names.update(names)

    def reserved_names(self) -> frozenset[str]:
        """Every node and value name given out or reserved in this graph."""
        return frozenset(self._names)

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
        new._next_suffix = dict(self._next_suffix)
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
        return format_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes>"
