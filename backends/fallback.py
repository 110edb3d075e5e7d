"""llvm with an onnxruntime fallback: `gc.compile(graph, target="llvm", fallback="onnxruntime")`.

The graph's nodes are cut, in topological order, into consecutive segments of one kind: native
segments (IR ops: compiled by the llvm backend as subgraphs, with the whole pass pipeline) and
onnxruntime segments (`onnx_node`s, graphcnn/ops/opaque.py: one InferenceSession per segment, at
the file's opset). A call runs the segments in order, passing arrays by value name; segments in
a chain cannot form a cycle, whatever the graph's branches. `placement` says where each node of
the given graph runs.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from graphcnn.errors import CompileError
from graphcnn.ir import Graph, Node, Value
from graphcnn.ops.opaque import OPAQUE, bind, node_proto
from graphcnn.runtime import CompiledModel

NATIVE, ONNXRUNTIME = "llvm", "onnxruntime"


@dataclass
class Segment:
    kind: str                  # NATIVE or ONNXRUNTIME
    nodes: list[Node]
    inputs: list[Value]        # runtime values it reads (graph inputs, earlier segments)
    outputs: list[Value]       # values later segments or the graph's outputs read
    model: Any = None          # a CompiledModel (native) or an InferenceSession


def _kind(node: Node) -> str:
    return ONNXRUNTIME if node.op == OPAQUE else NATIVE


def _schedule(graph: Graph) -> list[Node]:
    """A topological order that stays with one kind while any node of it is ready (parallel
    branches that each cross over, like a text CNN's convolutions, then share segments)."""
    producer = {id(v): n for n in graph.nodes for v in n.outputs}
    waiting = {id(n): sum(1 for v in n.inputs if id(v) in producer) for n in graph.nodes}
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    ready = {NATIVE: [], ONNXRUNTIME: []}
    for n in graph.nodes:
        if waiting[id(n)] == 0:
            ready[_kind(n)].append(n)
    order: list[Node] = []
    kind = _kind(graph.nodes[0]) if graph.nodes else NATIVE
    while ready[NATIVE] or ready[ONNXRUNTIME]:
        if not ready[kind]:
            kind = ONNXRUNTIME if kind == NATIVE else NATIVE
        ready[kind].sort(key=lambda n: position[id(n)])  # file order among the ready ones
        node = ready[kind].pop(0)
        order.append(node)
        for v in node.outputs:
            for user, _ in v.uses:
                waiting[id(user)] -= 1
                if waiting[id(user)] == 0:
                    ready[_kind(user)].append(user)
    return order


def segments(graph: Graph) -> list[Segment]:
    """Maximal runs of same-kind nodes in a topological order (_schedule), with their boundary
    values."""
    runs: list[Segment] = []
    for node in _schedule(graph):
        kind = _kind(node)
        if not runs or runs[-1].kind != kind:
            runs.append(Segment(kind, [], [], []))
        runs[-1].nodes.append(node)
    owner = {id(v): k for k, seg in enumerate(runs) for n in seg.nodes for v in n.outputs}
    graph_outputs = {id(v) for v in graph.outputs}
    for k, seg in enumerate(runs):
        seen: set[int] = set()
        for node in seg.nodes:
            for v in node.inputs:
                if not v.is_constant and owner.get(id(v)) != k and id(v) not in seen:
                    seen.add(id(v))
                    seg.inputs.append(v)
        for node in seg.nodes:
            for v in node.outputs:
                later = any(owner.get(id(u.outputs[0])) != k for u, _ in v.uses)
                if later or id(v) in graph_outputs:
                    seg.outputs.append(v)
    return runs


def _subgraph(graph: Graph, seg: Segment, index: int) -> Graph:
    sub = Graph(f"{graph.name}.part{index}")
    mapped: dict[int, Value] = {}
    for v in seg.inputs:
        mapped[id(v)] = sub.add_input(v.name, v.shape, v.type.dtype)
    for node in seg.nodes:
        args = []
        for v in node.inputs:
            if id(v) not in mapped:  # a constant
                mapped[id(v)] = sub.add_constant(v.data, name=v.name, copy=False)
            args.append(mapped[id(v)])
        made = sub.add_node(node.op, args, dict(node.attrs), name=node.name,
                            output_names=[o.name for o in node.outputs])
        for old, new in zip(node.outputs, made.outputs):
            mapped[id(old)] = new
        if node.name in graph.annotations:
            sub.annotations[made.name] = dict(graph.annotations[node.name])
    sub.set_outputs([mapped[id(v)] for v in seg.outputs])
    return sub


def _session(seg: Segment, threads: int | None):
    import onnxruntime
    from onnx import helper, numpy_helper

    def info(v: Value):
        return helper.make_tensor_value_info(
            v.name, helper.np_dtype_to_tensor_dtype(np.dtype(v.type.dtype)), list(v.shape))

    nodes, initializers, seen, opset = [], [], set(), 1
    for node in seg.nodes:
        nodes.append(bind(node_proto(node.attrs), node))
        opset = max(opset, node.attrs["opset"])
        for v in node.inputs:
            if v.is_constant and v.name not in seen:
                seen.add(v.name)
                initializers.append(numpy_helper.from_array(np.asarray(v.data), v.name))
    domains = {n.attrs["domain"] for n in seg.nodes} - {"", "ai.onnx"}
    model = helper.make_model(
        helper.make_graph(nodes, "fallback", [info(v) for v in seg.inputs],
                          [info(v) for v in seg.outputs], initializers),
        opset_imports=[helper.make_opsetid("", opset)] +
        [helper.make_opsetid(d, 1) for d in sorted(domains)])
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        names = ", ".join(n.name for n in seg.nodes[:5])
        raise CompileError(f"onnxruntime rejected the fallback region of node(s) {names}: "
                           f"{e}") from e


class FallbackModel(CompiledModel):
    """Native segments and onnxruntime segments run in turn; `placement` maps each node of the
    given graph to "llvm" or "onnxruntime", `segments` lists the cut."""

    target = "llvm"

    def __init__(self, graph: Graph, opt_level: int, threads: int | None = None,
                 **options: Any):
        from graphcnn.backends.llvm import compile_graph

        super().__init__(graph)
        self.threads = threads
        self.segments = segments(graph)
        for k, seg in enumerate(self.segments):
            if seg.kind == NATIVE:
                seg.model = compile_graph(_subgraph(graph, seg, k), opt_level, threads=threads,
                                          **options)
            else:
                seg.model = _session(seg, threads)
        self.placement = {n.name: seg.kind for seg in self.segments for n in seg.nodes}

    def __getstate__(self) -> dict:
        """The native segments pickle as saved models; an onnxruntime session does not
        pickle, so its segment is pickled without it and unpickling starts it again."""
        state = dict(self.__dict__)
        state["segments"] = [replace(seg, model=None) if seg.kind == ONNXRUNTIME else seg
                             for seg in self.segments]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for seg in self.segments:
            if seg.kind == ONNXRUNTIME:
                seg.model = _session(seg, self.threads)

    def _execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        env: dict[str, np.ndarray] = dict(zip(self.input_names, inputs))
        for seg in self.segments:
            feeds = {v.name: env[v.name] for v in seg.inputs}
            if seg.kind == NATIVE:
                outs = seg.model.run(feeds)
                env.update((v.name, outs[name])
                           for v, name in zip(seg.outputs, seg.model.output_names))
            else:
                names = [v.name for v in seg.outputs]
                env.update(zip(names, seg.model.run(names, feeds)))
        return self._results(env)

    def _profile(self, inputs: Sequence[np.ndarray], runs: int) -> list[dict]:
        """Native segments kernel by kernel (their own profile), each onnxruntime segment as
        one row named after its first node, op "onnxruntime:<its ops>"."""
        env: dict[str, np.ndarray] = dict(zip(self.input_names, inputs))
        rows: list[dict] = []
        for seg in self.segments:
            feeds = {v.name: env[v.name] for v in seg.inputs}
            if seg.kind == NATIVE:
                rows += seg.model._profile([feeds[n] for n in seg.model.input_names], runs)
                outs = seg.model.run(feeds)
                env.update((v.name, outs[name])
                           for v, name in zip(seg.outputs, seg.model.output_names))
                continue
            names = [v.name for v in seg.outputs]
            start = time.perf_counter()
            for _ in range(runs):
                values = seg.model.run(names, feeds)
            ops = sorted({n.attrs.get("op_type", n.op) for n in seg.nodes})
            rows.append({"node": seg.nodes[0].name, "op": "onnxruntime:" + ",".join(ops),
                         "seconds": (time.perf_counter() - start) / runs,
                         "nodes": [n.name for n in seg.nodes]})
            env.update(zip(names, values))
        return rows

    def _results(self, env: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = []
        for v in self.graph.outputs:
            result.append(np.array(v.data, copy=True) if v.is_constant else env[v.name])
        return result
