"""ONNX import: `from_onnx(path | bytes | ModelProto, input_shapes=None, **options) -> Graph`.

The steps, in order (each names what it rejects):
1. load without following external data (onnx_safety), find the default-domain opset;
2. check the graph's structure: unique value names, no dangling inputs, defined outputs, and a
   topological order (nodes are sorted here; a cycle is a GraphError);
3. check every node's op type and schema version against the import table (onnx_ops,
   onnx_fold) and collect the unsupported ones;
4. concrete input shapes: from the model or `input_shapes`; a symbolic batch dim becomes 1 with a
   warning, any other unknown dim is a ShapeError; initializers (also those listed as inputs) are
   constants, decoded under the size limits;
5. import node by node through the table, folding constant subgraphs; nodes downstream of an
   unsupported one are skipped so that ONE UnsupportedOpError lists every unsupported op;
6. drop nodes nothing uses, verify the graph;
7. for a large model file, record its initializers' digests (onnx_digests) and an import
   snapshot of the graph (onnx_snapshot), which `graphcnn.from_onnx` restores the next time
   the unchanged file is imported with the same arguments, without onnx and without reading
   the weights until they are used.

Options: `max_tensor_bytes`, `max_total_bytes` (size limits, see onnx_safety.Limits),
`base_dir` (where external data may be read from when the model is given as bytes or a proto),
`name` (the graph's name), `strict` (True: what onnx.checker refuses and declared types that
contradict the import are ModelLoadErrors, see onnx_strict; False: accepted with one warning per
relaxed rule).
"""
from __future__ import annotations

import heapq
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import onnx
import onnx.defs

from .. import progress
from ..budgets import check_nodes, human
from ..digests import prefetch_constant_digests
from ..errors import (
    GraphcnnError,
    GraphError,
    InputError,
    ModelLoadError,
    ShapeError,
    UnsupportedOpError,
)
from ..hugepages import no_huge_page_advice
from ..ir import Graph, TensorType, Value
from ..verify import verify
from . import onnx_digests, onnx_ops, onnx_reduce, onnx_snapshot, onnx_spatial, onnx_tensor  # noqa: F401
from .onnx_batch import check_batchwise
from .onnx_context import IMPORTERS, Context, NotConstant
from .onnx_opaque import import_opaque
from .onnx_safety import (
    DEFAULT_MAX_TENSOR_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    Limits,
    LoadedModel,
    load_model_split,
    np_dtype,
    tensor_to_array,
)
from .onnx_strict import Rules, check_attributes, check_declared, check_graph

DEFAULT_DOMAINS = ("", "ai.onnx")
INPUT_DTYPES = ("float32", "int64", "int32", "bool")  # graph inputs (graphcnn.ops.indexing)
PARALLEL_DECODE_BYTES = 8 << 20  # below this the threads cost more than they save


def from_onnx(model: Any, input_shapes: Mapping[str, Sequence[int]] | None = None, *,
              max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
              max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES, base_dir: str | None = None,
              name: str | None = None, strict: bool = True, unsupported: str = "error",
              batch: int | None = None) -> Graph:
    """Import an ONNX model (a path, the file's bytes, or an onnx.ModelProto) as a Graph.

    `input_shapes` ({input name: shape}) fixes inputs whose shapes are symbolic in the model.
    `strict=False` accepts what onnx.checker refuses (onnx_strict) with a warning per relaxed
    rule. `unsupported="keep"` imports the nodes graphcnn has no op for as `onnx_node`s that
    run on onnxruntime (graphcnn/ops/opaque.py; compile with `fallback="onnxruntime"` for llvm),
    and inputs of other dtypes as they are, instead of raising UnsupportedOpError. `batch=N`
    re-binds the first dim of every input, static or symbolic, to N (onnx_batch: Reshapes that
    hard-code the file's batch follow, and the graph is proved batch-wise or refused); an
    `input_shapes` first dim over a static batch of another size re-binds it the same way. Raises
    ModelLoadError (unreadable, malicious or invalid file), GraphError (malformed
    graph), ShapeError (shapes that do not fit, naming the node), UnsupportedOpError (every
    unsupported op of the model at once).
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    if unsupported not in ("error", "keep"):
        raise InputError(f"unsupported must be 'error' or 'keep', got {unsupported!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or
                              batch < 1):
        raise InputError(f"batch must be a positive int, got {batch!r}")
    with no_huge_page_advice():  # the file's buffer and the decoded weights (hugepages.py)
        loaded = load_model_split(model, base_dir)
        limits = Limits(max_tensor_bytes=max_tensor_bytes, max_total_bytes=max_total_bytes)
        try:
            return _Importer(loaded, limits, dict(input_shapes or {}), name, strict,
                             keep=unsupported == "keep", batch=batch).run()
        finally:
            loaded.release()


def model_opset(proto: onnx.ModelProto) -> int:
    """Step 1: the default domain's opset version."""
    versions = [o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise ModelLoadError("the model has no opset_import for the default ONNX domain "
                             "(missing opset import)")
    opset = max(versions)
    if not 1 <= opset <= onnx.defs.onnx_opset_version():
        raise ModelLoadError(f"opset {opset} is outside what this onnx package knows "
                             f"(1..{onnx.defs.onnx_opset_version()})")
    return opset


def since_version(op_type: str, domain: str, opset: int) -> int | None:
    """The schema version a node of `op_type` resolves to at `opset` (None: no such op)."""
    if domain not in DEFAULT_DOMAINS:
        return None
    try:
        return onnx.defs.get_schema(op_type, opset, "").since_version
    except Exception:  # noqa: BLE001  (onnx.defs.SchemaError: unknown op / no version)
        return None


def node_names(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """A unique, readable name per node: its own, else op type and index."""
    seen: set[str] = set()
    out = []
    for i, node in enumerate(nodes):
        base = node.name or f"{node.op_type}_{i}"
        name, k = base, 1
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


class _Importer:
    def __init__(self, loaded: LoadedModel, limits: Limits,
                 input_shapes: dict[str, Sequence[int]], name: str | None, strict: bool = True,
                 keep: bool = False, batch: int | None = None):
        self.loaded = loaded
        self.batch = batch  # re-bind every input's first dim (onnx_batch)
        self.rebatch: tuple[int, int] | None = None  # (the file's batch, batch) once known
        self.keep = keep  # unsupported nodes become onnx_nodes (onnx_opaque)
        self.opset = 0
        self.rules = Rules(strict)
        self.proto = loaded.proto
        self.base_dir = loaded.base_dir
        self.limits = limits
        self.input_shapes = input_shapes
        self.name = name
        self.unsupported: dict[str, list[str]] = defaultdict(list)  # op type -> node names
        self.reasons: dict[str, set[str]] = defaultdict(set)
        self.skip: set[str] = set()  # names of nodes found unsupported before import
        self.warned: list[str] = []  # the warnings given (an import snapshot repeats them)
        # initializers decoded from the file's bytes: id(array) -> (array, name, start, end)
        self.from_file: dict[int, tuple[np.ndarray, str, int, int]] = {}
        self.record: tuple[dict[str, Value], dict | None] | None = None  # see _remember

    def run(self) -> Graph:
        opset = self.opset = model_opset(self.proto)
        g = self.proto.graph
        check_graph(g, self.rules)
        if len(g.sparse_initializer):
            raise UnsupportedOpError("sparse initializers are not supported",
                                     {"sparse_initializer": [t.name for t in g.sparse_initializer]})
        initializers = {t.name: t for t in g.initializer}
        check_nodes(len(g.node), f"the model's graph {g.name!r}", ModelLoadError)
        order = self._check_structure(g, initializers)
        names = node_names(list(g.node))
        versions = self._check_ops(g, names, opset)
        graph = Graph(self.name or _graph_name(g.name))
        env: dict[str, Value] = {}
        if self.batch is None:
            self.batch = self._batch_from_shapes(g, initializers)
        if self.batch is not None:
            self.rebatch = (self._file_batch(g, initializers), self.batch)
        self._add_inputs(graph, g, initializers, env)
        for t in g.node:  # reserve ONNX value names so helper nodes never take them
            for out in t.output:
                if out:
                    graph.unique_name(out)
        for tname, array in self._initializers(g, initializers).items():
            env[tname] = self._named(_constant(graph, array, tname), tname)
        external = any(t.data_location == onnx.TensorProto.EXTERNAL
                       for t in initializers.values())
        self._digests({tname: env[tname] for tname in initializers}, remembered=not external)
        poisoned = {vi.name for vi in g.input if vi.name not in env}  # unsupported inputs
        for k, i in enumerate(order):
            progress.report("import", k, len(order), g.node[i].op_type)
            self._import_node(graph, g.node[i], names[i], versions[i], env, poisoned)
        progress.report("import", len(order), len(order))
        if self.unsupported:
            raise self._unsupported_error()
        outputs = []
        for vi in g.output:
            outputs.append(env[vi.name])
        graph.set_outputs(outputs)
        _drop_unused(graph)
        if self.rebatch is not None and self.rebatch[0] != self.rebatch[1]:
            check_batchwise(graph, self.batch)  # before the declared shapes, which differ
        self._check_declared(g, graph, initializers, names, env)
        try:
            verify(graph)
        except GraphError as e:
            raise GraphError(f"imported graph is malformed: {e}") from None
        for message in self.rules.warnings():
            self._warn(message)
        self._remember(graph)
        return graph

    def _warn(self, message: str, depth: int = 0) -> None:
        """Warn at graphcnn.from_onnx's caller; `depth`: calls between run() and here."""
        self.warned.append(message)  # an import snapshot repeats them
        warnings.warn(message, stacklevel=5 + depth)

    def _check_declared(self, g: onnx.GraphProto, graph: Graph, initializers: dict,
                        names: list[str], env: dict[str, Value]) -> None:
        """Strict rule 6 (onnx_strict) over the graph's outputs, value_info and the inputs
        that initializers fill."""
        makers = {out: f"node {name!r} ({node.op_type})"
                  for node, name in zip(g.node, names) for out in node.output if out}
        makers.update({tname: f"initializer {tname!r}" for tname in initializers})
        declared = [("graph output", vi) for vi in g.output] + \
            [("value_info", vi) for vi in g.value_info] + \
            [("graph input", vi) for vi in g.input if vi.name in initializers]
        if self.rebatch is not None:  # a declared first dim of the file's batch may be the new one
            # a value of a node import dropped (the flat view under a strided view, now one
            # Reshape) is computed by nothing: its declared shape at the file's batch is moot
            live = {id(node) for node in graph.nodes}
            declared = [(kind, self._rebatched_info(vi)) for kind, vi in declared
                        if vi.name not in env or env[vi.name].producer is None or
                        id(env[vi.name].producer) in live]
        check_declared(declared, env, lambda n: makers.get(n, "the graph input"), self.rules)

    def _rebatched_info(self, vi: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
        """`vi` with a declared first dim equal to the file's batch made symbolic."""
        tt = vi.type.tensor_type
        if not (vi.type.HasField("tensor_type") and tt.HasField("shape") and tt.shape.dim and
                tt.shape.dim[0].HasField("dim_value") and
                tt.shape.dim[0].dim_value == self.rebatch[0]):
            return vi
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(vi)
        copy.type.tensor_type.shape.dim[0].dim_param = "batch"
        return copy

    def _remember(self, graph: Graph) -> None:
        """Record the initializers' digests for an unchanged file, with an import snapshot of
        `graph` (onnx_snapshot: taken here, before the caller can change the graph; checked and
        written in the background) unless the record there already says the same."""
        if self.record is None:
            return
        values, old = self.record
        loaded = self.loaded
        if not onnx_digests.recordable(loaded.path, loaded.stat, loaded.read_ns, values):
            return
        snapshot = None
        if self._self_contained():
            args = onnx_snapshot.arguments(self.input_shapes, {
                "max_tensor_bytes": self.limits.max_tensor_bytes,
                "max_total_bytes": self.limits.max_total_bytes, "name": self.name,
                "strict": self.rules.strict})
            if args is not None:
                snapshot = onnx_snapshot.encode(graph, self.from_file, args, self.warned,
                                                loaded.path, loaded.stat)
        if old is not None and snapshot is None:
            return  # digests recorded already, and no snapshot to add
        onnx_digests.record_later(loaded.path, loaded.stat, loaded.read_ns, values, snapshot,
                                  old)

    def _self_contained(self) -> bool:
        """No tensor of the model (initializer, node attribute) lives in an external data
        file, and no subgraph: the .onnx file's identity then covers everything imported.
        Keep mode and a re-bound batch never snapshot (a snapshot's arguments do not record
        them, and onnx_node attributes are not a snapshot's kind of data)."""
        if self.keep or self.batch is not None:
            return False
        external = onnx.TensorProto.EXTERNAL
        g = self.proto.graph
        if any(t.data_location == external for t in g.initializer):
            return False
        for node in g.node:
            for a in node.attribute:
                if (a.HasField("t") and a.t.data_location == external) or \
                        any(t.data_location == external for t in a.tensors) or \
                        a.HasField("g") or len(a.graphs) or a.HasField("sparse_tensor") or \
                        len(a.sparse_tensors):
                    return False
        return True

    def _initializers(self, g: onnx.GraphProto, initializers: dict[str, onnx.TensorProto]
                      ) -> dict[str, np.ndarray]:
        """Step 4: the initializers decoded. Every limit is checked and accounted in file order
        first, from the declared dims, so nothing beyond the limits is ever allocated; then a
        large model's tensors are decoded on two threads (the copies release the GIL)."""
        jobs = []
        raw_index = {t.name: i for i, t in enumerate(g.initializer)}  # names are unique
        for tname, t in initializers.items():
            what = f"initializer {tname!r}"
            dtype = np_dtype(t.data_type, what)
            nbytes = self.limits.check_tensor(what, tuple(int(d) for d in t.dims),
                                              dtype.itemsize)
            self.limits.account(what, nbytes)
            jobs.append((tname, t, what, raw_index[tname], nbytes))

        def decode(job) -> np.ndarray:
            _, t, what, index, _ = job
            return tensor_to_array(t, self.limits, self.base_dir, what, self.loaded.raw(index))

        if sum(job[4] for job in jobs) < PARALLEL_DECODE_BYTES:
            arrays = {job[0]: decode(job) for job in jobs}
        else:
            with ThreadPoolExecutor(max_workers=2) as pool:  # map raises the first error in order
                arrays = {job[0]: array for job, array in zip(jobs, pool.map(decode, jobs))}
        if self.loaded.path is not None and self.loaded.spans is not None:
            for tname, t, _, index, _ in jobs:  # the bytes of these are the file's, as they are
                span = self.loaded.spans[index]
                if span is not None and t.data_location != onnx.TensorProto.EXTERNAL:
                    self.from_file[id(arrays[tname])] = (arrays[tname], tname, *span)
        return arrays

    def _digests(self, values: dict[str, Value], remembered: bool = True) -> None:
        """A compile keys its cache on every constant's bytes: seed the digests recorded for an
        unchanged file (onnx_digests), else start hashing while the nodes import. Not
        `remembered` (weights in external data files, whose changes the .onnx file's identity
        does not show): always hashed, never recorded."""
        loaded = self.loaded
        if not remembered:
            prefetch_constant_digests(values.values())
            return
        if loaded.path is not None:
            try:
                unchanged = onnx_digests.identity(os.stat(loaded.path)) == \
                    onnx_digests.identity(loaded.stat)  # also while it was being read
            except OSError:
                unchanged = False
            record = onnx_digests.seed(loaded.path, loaded.stat, values) if unchanged else None
            if record is not None:
                self.record = (values, record)  # seeded: maybe a new snapshot (_remember)
                return
        prefetch_constant_digests(values.values())
        if loaded.path is not None:
            self.record = (values, None)  # recorded once the graph is imported (_remember)

    # ----- step 2: structure ------------------------------------------------------------------
    def _check_structure(self, g: onnx.GraphProto, initializers: dict) -> list[int]:
        if len(initializers) != len(g.initializer):
            raise GraphError("duplicate initializer names")
        producer: dict[str, str] = {}
        for vi in g.input:
            if vi.name in producer:
                raise GraphError(f"duplicate graph input name {vi.name!r}")
            producer[vi.name] = "graph input"
        for tname in initializers:
            producer.setdefault(tname, "initializer")
        names = node_names(list(g.node))
        made_by: dict[str, int] = {}
        for i, node in enumerate(g.node):
            for out in node.output:
                if not out:
                    continue
                if out in producer:
                    raise GraphError(f"duplicate output name {out!r}: node {names[i]!r} "
                                     f"({node.op_type}) redefines the {producer[out]}'s value")
                producer[out] = f"node {names[i]!r}"
                made_by[out] = i
        deps: list[set[int]] = []
        for i, node in enumerate(g.node):
            mine = set()
            for inp in node.input:
                if not inp:
                    continue
                if inp not in producer:
                    raise GraphError(f"node {names[i]!r} ({node.op_type}): input {inp!r} is "
                                     f"dangling (not a graph input, initializer or node output)")
                if inp in made_by:
                    mine.add(made_by[inp])
            deps.append(mine)
        for vi in g.output:
            if vi.name not in producer:
                raise GraphError(f"graph output {vi.name!r} is not produced by any node, input "
                                 f"or initializer")
        return _toposort(deps, names)

    # ----- step 3: op support -------------------------------------------------------------------
    def _check_ops(self, g: onnx.GraphProto, names: list[str], opset: int) -> list[int | None]:
        versions: list[int | None] = []
        for node, name in zip(g.node, names):
            version = since_version(node.op_type, node.domain, opset)
            versions.append(version)
            spec = IMPORTERS.get(node.op_type)
            if version is not None:  # an ONNX op: its attributes as its schema says
                check_attributes(node, f"node {name!r} ({node.op_type})",
                                 onnx.defs.get_schema(node.op_type, opset, ""), self.rules)
            if node.domain not in DEFAULT_DOMAINS:
                self._flag(f"{node.domain}.{node.op_type}", name, "custom domain")
            elif spec is None or version is None:
                self._flag(node.op_type, name, "no importer")
            elif version not in spec.versions:
                self._flag(node.op_type, name, f"version {version} (supported: "
                           f"{', '.join(map(str, spec.versions))})")
            else:
                _check_arity(node, name, onnx.defs.get_schema(node.op_type, opset, ""))
        return versions

    def _flag(self, op: str, node_name: str, reason: str) -> None:
        self.skip.add(node_name)
        self.unsupported[op].append(node_name)
        self.reasons[op].add(reason)

    def _unsupported_error(self) -> UnsupportedOpError:
        total = sum(len(v) for v in self.unsupported.values())
        lines = [(f"the model uses {len(self.unsupported)} unsupported op type(s) in {total} "
                  f"node(s):")]
        for op in sorted(self.unsupported):
            nodes = self.unsupported[op]
            shown = ", ".join(nodes[:8]) + (f", ... ({len(nodes) - 8} more)" if len(nodes) > 8
                                             else "")
            lines.append(f"  {op} x{len(nodes)} [{'; '.join(sorted(self.reasons[op]))}]: "
                         f"{shown}")
        return UnsupportedOpError("\n".join(lines), {k: list(v) for k, v in
                                                    sorted(self.unsupported.items())})

    # ----- step 4: inputs ----------------------------------------------------------------------
    def _add_inputs(self, graph: Graph, g: onnx.GraphProto, initializers: dict,
                    env: dict[str, Value]) -> None:
        real = [vi for vi in g.input if vi.name not in initializers]
        unknown = sorted(set(self.input_shapes) - {vi.name for vi in real})
        if unknown:
            raise InputError(f"input_shapes names unknown input(s) {unknown}; the model's "
                             f"inputs are {[vi.name for vi in real]}")
        for vi in real:
            if not vi.type.HasField("tensor_type"):
                self._flag(f"input type {vi.type.WhichOneof('value')}", vi.name, "not a tensor")
                continue
            tt = vi.type.tensor_type
            try:
                dtype = np_dtype(tt.elem_type, f"input {vi.name!r}")
            except ModelLoadError:
                dtype = None
            if self.keep and dtype is not None and dtype.name not in INPUT_DTYPES:
                env[vi.name] = graph.add_input(vi.name, self._input_shape(vi), dtype.name)
                continue
            if dtype is None or dtype.name not in INPUT_DTYPES:
                kind = dtype.name if dtype is not None else str(tt.elem_type)
                self._flag(f"input dtype {kind}", vi.name,
                           f"graphcnn takes {', '.join(INPUT_DTYPES)} inputs")
                continue
            shape = self._input_shape(vi)
            self.limits.check_tensor(f"input {vi.name!r}", shape, dtype.itemsize, ShapeError)
            env[vi.name] = graph.add_input(vi.name, shape, dtype.name)

    def _batch_from_shapes(self, g: onnx.GraphProto, initializers: dict) -> int | None:
        """input_shapes giving a first dim N over a static first dim of another size re-bind
        the batch to N, as batch=N does, when every given shape starts with that N."""
        firsts, clash = set(), False
        for vi in g.input:
            given = self.input_shapes.get(vi.name)
            if vi.name in initializers or not isinstance(given, (tuple, list)) or not given \
                    or isinstance(given[0], bool) or not isinstance(given[0], (int, np.integer)):
                continue
            firsts.add(int(given[0]))
            dims = vi.type.tensor_type.shape.dim
            clash |= bool(dims) and dims[0].HasField("dim_value") and \
                dims[0].dim_value != given[0]
        first = firsts.pop() if len(firsts) == 1 else 0
        return first if clash and first >= 1 else None

    def _file_batch(self, g: onnx.GraphProto, initializers: dict) -> int:
        """The static first dim the file's inputs share (1 where it is symbolic)."""
        found = set()
        for vi in g.input:
            if vi.name in initializers:
                continue
            dims = list(vi.type.tensor_type.shape.dim)
            if not dims:
                raise ShapeError(f"batch={self.batch}: input {vi.name!r} has no first dim to "
                                 f"re-bind")
            found.add(int(dims[0].dim_value) if dims[0].HasField("dim_value") else 1)
        if len(found) > 1:
            raise ShapeError(f"batch={self.batch}: the inputs' first dims {sorted(found)} "
                             f"differ; give each shape with input_shapes")
        return found.pop() if found else 1

    def _input_shape(self, vi: onnx.ValueInfoProto) -> tuple[int, ...]:
        tt = vi.type.tensor_type
        dims = list(tt.shape.dim) if tt.HasField("shape") else None
        given = self.input_shapes.get(vi.name)
        if self.batch is not None and (given or dims):
            # the batch replaces the first dim, of the given shape or of the file's
            rest = given[1:] if given else [int(d.dim_value) if d.HasField("dim_value") else -1
                                            for d in dims[1:]]
            given = (self.batch, *rest)
            if min(given) < 1:
                raise ShapeError(f"input {vi.name!r}: dims after the batch are symbolic; "
                                 f"pass input_shapes={{{vi.name!r}: (...)}}")
            if dims is not None:
                dims = [None, *dims[1:]]  # dim 0 is not compared
        if given is not None:
            shape = tuple(int(d) for d in given)
            if dims is not None:
                if len(dims) != len(shape):
                    raise ShapeError(f"input_shapes[{vi.name!r}] = {list(shape)} has rank "
                                     f"{len(shape)} but the model's input has rank {len(dims)}")
                for i, (d, s) in enumerate(zip(dims, shape)):
                    if d is not None and d.HasField("dim_value") and d.dim_value != s:
                        raise ShapeError(f"input_shapes[{vi.name!r}] = {list(shape)} conflicts "
                                         f"with the model's static dim {i} = {d.dim_value}")
        elif dims is None:
            raise ShapeError(f"input {vi.name!r} has no shape in the model; pass "
                             f"input_shapes={{{vi.name!r}: (...)}}")
        else:
            out = []
            for i, d in enumerate(dims):
                if d.HasField("dim_value"):
                    out.append(int(d.dim_value))
                elif i == 0:
                    self._warn(f"input {vi.name!r}: symbolic batch dim "
                               f"{d.dim_param or '?'!r} set to 1 (pass input_shapes to choose)",
                               depth=2)
                    out.append(1)
                else:
                    raise ShapeError(f"input {vi.name!r}: dim {i} ({d.dim_param or 'unknown'!r})"
                                     f" is symbolic; pass input_shapes={{{vi.name!r}: (...)}}")
            shape = tuple(out)
        if any(s < 1 for s in shape):
            raise ShapeError(f"input {vi.name!r}: shape {list(shape)} has zero-size or negative "
                             f"dims")
        return shape

    # ----- step 5: nodes -------------------------------------------------------------------------
    def _import_node(self, graph: Graph, node: onnx.NodeProto, name: str, version: int | None,
                     env: dict[str, Value], poisoned: set[str]) -> None:
        outs = [o for o in node.output if o]
        if self.keep and name in self.skip and not any(i in poisoned for i in node.input if i):
            self._keep_opaque(graph, node, name, env, poisoned)
            return
        if name in self.skip or any(i in poisoned for i in node.input if i):
            poisoned.update(outs)
            return
        ctx = Context(graph, node, name, version, [env[i] if i else None for i in node.input],
                      self.limits, self.base_dir, rebatch=self.rebatch)
        spec = IMPORTERS[node.op_type]
        try:
            result = spec.fn(ctx)
        except NotConstant as e:
            self._flag(node.op_type, name, f"{e.what} is not a constant (computed at run time)")
            self._keep_opaque(graph, node, name, env, poisoned) if self.keep else \
                poisoned.update(outs)
            return
        except UnsupportedOpError as e:
            msg = str(e).removeprefix(f"{ctx.where}: ")
            self._flag(node.op_type, name, msg)
            self._keep_opaque(graph, node, name, env, poisoned) if self.keep else \
                poisoned.update(outs)
            return
        except GraphcnnError as e:
            if self.unsupported:  # report the unsupported ops; this may be a consequence
                poisoned.update(outs)
                return
            raise type(e)(_at(ctx, e)) from None
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError,
                ArithmeticError) as e:
            # numpy or protobuf rejecting a malformed node: still a typed error naming it
            raise ShapeError(f"{ctx.where}: {type(e).__name__}: {e}") from None
        except MemoryError as e:  # under the limits but not in this process' memory
            raise ModelLoadError(f"{ctx.where}: out of memory ({e}); the constants so far take "
                                 f"{human(self.limits.total_bytes)} (max_total_bytes lowers "
                                 "the limit, so a file this big fails before allocating)") from None
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        for i, out in enumerate(node.output):
            if not out:
                continue
            if i >= len(result):
                raise ShapeError(f"{ctx.where}: output {i} ({out!r}) is not produced")
            value = result[i]
            if id(value) not in ctx.created:  # an alias: give the ONNX name its own value
                value = ctx.constant(value.data) if value.is_constant else \
                    ctx.emit("identity", [value])
            env[out] = self._named(value, out)

    def _keep_opaque(self, graph: Graph, node: onnx.NodeProto, name: str,
                     env: dict[str, Value], poisoned: set[str]) -> None:
        """A flagged node as an onnx_node (keep mode): no longer unsupported. Helper nodes an
        importer emitted before refusing the node are left for _drop_unused. A node whose
        output types ONNX cannot infer stays unsupported."""
        try:
            values = import_opaque(graph, node, name, self.opset,
                                   [env[i] if i else None for i in node.input])
        except ShapeError as e:
            if not any(name in names for names in self.unsupported.values()):
                self._flag(node.op_type, name, "")
            for op, names in self.unsupported.items():
                if name in names:
                    self.reasons[op].add(str(e).removeprefix(f"node {name!r} ({node.op_type}): "))
            poisoned.update(o for o in node.output if o)
            return
        for out, value in zip(node.output, values):
            if out and value is not None:
                env[out] = self._named(value, out)
        for op in list(self.unsupported):
            if name in self.unsupported[op]:
                self.unsupported[op].remove(name)
                if not self.unsupported[op]:
                    del self.unsupported[op]
                    self.reasons.pop(op, None)

    @staticmethod
    def _named(value: Value, onnx_name: str) -> Value:
        """Values carry their ONNX names (reserved in the graph before import)."""
        value.name = onnx_name
        return value


def _check_arity(node: onnx.NodeProto, name: str, schema: onnx.defs.OpSchema) -> None:
    """Input/output counts within the schema's bounds (importers index inputs freely)."""
    given = len(node.input)
    present = sum(1 for i in node.input if i)
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    last_required = len([p for p in schema.inputs if p.option != optional])
    if given > schema.max_input or present < schema.min_input or \
            any(not node.input[i] for i in range(min(last_required, given))):
        raise ShapeError(f"node {name!r} ({node.op_type}): takes {schema.min_input}.."
                         f"{schema.max_input} inputs (required ones non-empty), got "
                         f"{list(node.input)}")
    if len(node.output) > schema.max_output or not any(node.output):
        raise ShapeError(f"node {name!r} ({node.op_type}): takes at most {schema.max_output} "
                         f"outputs, got {list(node.output)}")


def _at(ctx: Context, e: Exception) -> str:
    """The error's message prefixed with the ONNX node (replacing the IR node's own prefix)."""
    msg = str(e)
    if msg.startswith(ctx.where):
        return msg
    return f"{ctx.where}: {re.sub(r'^node .*? [(][a-z_]+[)]: ', '', msg)}"


def _toposort(deps: list[set[int]], names: list[str]) -> list[int]:
    """Kahn's algorithm, stable in file order; a cycle is a GraphError naming its nodes."""
    users: list[list[int]] = [[] for _ in deps]
    missing = [len(d) for d in deps]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    ready = [i for i, m in enumerate(missing) if m == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            missing[u] -= 1
            if missing[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(deps):
        stuck = [names[i] for i, m in enumerate(missing) if m > 0]
        raise GraphError(f"the graph has a cycle: node(s) {', '.join(stuck[:8])} are on it or "
                         f"after it")
    return order


def _constant(graph: Graph, array: np.ndarray, name: str) -> Value:
    """graph.add_constant without its defensive copy: the decoder's array is already the
    graph's own, read-only copy (the weights of a large model are copied once, not twice)."""
    if array.dtype == np.float64 or array.flags.writeable:
        return graph.add_constant(array, name=name)
    return Value(graph.unique_name(name), TensorType(array.shape, array.dtype.name), data=array)


def _drop_unused(graph: Graph) -> None:
    """Remove nodes whose outputs nothing uses (ONNX files often carry dead branches)."""
    keep = {id(v) for v in graph.outputs}
    for node in reversed(list(graph.nodes)):
        if not any(out.uses or id(out) in keep for out in node.outputs):
            graph.remove(node)


def _graph_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "onnx_model"
