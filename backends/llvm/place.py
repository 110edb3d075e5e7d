"""Stage 2, place: kernel steps -> where every value's floats live.

- graph inputs and outputs are the caller's pointers (an output that is also an input, a
  constant, a view or a second output of one value is copied out at the end);
- a view lives in its source's buffer (views compute nothing), a split or slice that selects
  contiguous parts of its input (emit.indexing.view_offsets) at its offset in it;
- a concat marked in place (passes/concat_inplace.py) owns one buffer and its inputs' producers
  write straight into their slices of it; the concat itself emits nothing;
- a conv adding a residual writes its output over the residual's buffer when it is that
  buffer's last reader and its kernel reads each residual element just before writing the
  output element there (plan.residual_in_place): one stream of memory traffic less;
- every other intermediate gets an offset in the workspace arena, by liveness (memory.py).
Constants reached through a view are placed by emit (they go into the weights arena).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from graphcnn.ir import Graph, Node, Value

from . import memory
from .emit import VIEW_OPS, Location
from .emit.indexing import view_offsets
from .plan import Step, residual_in_place


@dataclass
class Placement:
    locations: dict[int, Location]  # id(Value) -> where its floats live
    workspace_bytes: int
    copies: list[tuple[Value, int]]  # (value, output index) copied out after the last kernel
    inplace_concats: set[int]  # id(Node) of the concats whose inputs write into their buffer
    # views whose source is a constant, with their byte offset in it: emit puts the constant
    # into the weights arena
    constant_views: list[tuple[Value, Value, int]] = field(default_factory=list)


@dataclass
class _Slice:
    concat: Node      # the in-place concat whose buffer holds the value
    writer: Node      # the node producing the value
    byte_offset: int  # of the value's slice in the concat's buffer


def _view_offset(value: Value) -> int | None:
    """Bytes into its producer's input where `value` lives, if the producer is a view."""
    node = value.producer
    if node is None:
        return None
    if node.op in VIEW_OPS:
        return 0
    offsets = view_offsets(node)
    return None if offsets is None else offsets[node.outputs.index(value)]


def root_offset(value: Value) -> tuple[Value, int]:
    """The value whose buffer `value` lives in (views alias their input) and the byte offset
    of `value` in it."""
    total = 0
    while (offset := _view_offset(value)) is not None:
        total += offset
        value = value.producer.inputs[0]
    return value, total


def root(value: Value) -> Value:
    return root_offset(value)[0]


def _io(graph: Graph) -> tuple[dict[int, Location], list[tuple[Value, int]]]:
    """The caller's buffers: each input, and each output computed into its own (first) slot;
    the other outputs are copies."""
    locations = {id(v): Location("input", i) for i, v in enumerate(graph.inputs)}
    copies: list[tuple[Value, int]] = []
    for j, v in enumerate(graph.outputs):
        if root(v) is v and v.producer is not None and id(v) not in locations:
            locations[id(v)] = Location("output", j)
        else:
            copies.append((v, j))
    return locations, copies


def inplace_slices(graph: Graph, nodes: list[Node], placed: dict) -> dict[int, _Slice]:
    """id(input value) -> its slice, for every concat marked `concat_inplace` whose output
    gets a workspace buffer (not a graph output, not a view's source) and whose inputs the
    pass marked `write_into` it. The slices are contiguous (the pass checks that every dim
    before the axis is 1), so a producer's kernel writes its slice as a whole tensor."""
    notes = graph.annotations
    emitted = {id(n) for n in nodes}
    viewed = {id(v) for n in graph.nodes for v in n.inputs
              if n.op in VIEW_OPS or view_offsets(n) is not None}
    slices: dict[int, _Slice] = {}
    for concat in nodes:
        out = concat.outputs[0]
        if (concat.op != "concat" or not notes.get(concat.name, {}).get("concat_inplace")
                or id(out) in placed or id(out) in viewed):
            continue
        axis, shape = concat.attrs["axis"], out.type.shape
        inner = math.prod(shape[axis + 1:]) * np.dtype(out.type.dtype).itemsize
        mine = {}
        for v in concat.inputs:
            p = v.producer
            mark = notes.get(p.name, {}).get("write_into") if p is not None else None
            if (p is None or id(p) not in emitted or mark is None or mark[0] != concat.name
                    or id(v) in placed or id(v) in viewed):
                break
            mine[id(v)] = _Slice(concat, p, mark[1] * inner)
        else:
            slices.update(mine)
    return slices


def _owner(key: int, slices: dict[int, _Slice]) -> tuple[int, int]:
    """(id of the value whose buffer holds value `key`, byte offset in it): a chain of in-place
    concats resolves to its last concat."""
    offset = 0
    while key in slices:
        offset += slices[key].byte_offset
        key = id(slices[key].concat.outputs[0])
    return key, offset


def _holder(key: int, shared: dict[int, int]) -> int:
    while key in shared:
        key = shared[key]
    return key


def _residuals_in_place(steps: list[Step], buffers: dict[int, memory.Buffer],
                        slices: dict[int, _Slice]) -> dict[int, int]:
    """Put the output of each conv step that may write over its residual (residual_in_place)
    on the residual's buffer when the conv is that buffer's last reader and its input is not
    in that buffer too (the kernel reads its input around each pixel). Merges the buffers (the
    residual's now lives on to the output's last reader) and returns {output key: the key of
    the buffer that holds it}."""
    shared: dict[int, int] = {}
    concat_buffers = {id(s.concat.outputs[0]) for s in slices.values()}
    for index, step in enumerate(steps):
        if not residual_in_place(step):
            continue
        n = step.node
        out_key, res_key = id(n.outputs[0]), _holder(id(root(n.inputs[3])), shared)
        # no buffer of its own: a graph input or output, a constant, or a concat's slice
        out, res = buffers.get(out_key), buffers.get(res_key)
        if (out is None or res is None or res_key in concat_buffers
                or res.last != index or res.size != out.size
                or _holder(id(root(n.inputs[0])), shared) == res_key):
            continue
        res.last = max(res.last, out.last)
        del buffers[out_key]
        shared[out_key] = res_key
    return {key: _holder(key, shared) for key in shared}


def _buffers(steps: list[Step], locations: dict, slices: dict[int, _Slice],
             copies: list[tuple[Value, int]]) -> dict[int, memory.Buffer]:
    """A workspace buffer per step output that has no place yet, live from its writer (an
    in-place concat's: from its first slice's writer) to its last reader (a copy-out counts
    after the last step)."""
    index = {id(step.node): i for i, step in enumerate(steps)}
    buffers: dict[int, memory.Buffer] = {}
    for i, step in enumerate(steps):
        for v in step.node.outputs:
            if id(v) not in locations and id(v) not in slices:
                buffers[id(v)] = memory.Buffer(id(v), v.type.nbytes, i, i)
    for key, s in slices.items():
        buf = buffers[_owner(key, slices)[0]]
        buf.first = min(buf.first, index[id(s.writer)])
    readers = [(v, i) for i, step in enumerate(steps) for v in step.node.inputs]
    readers += [(v, len(steps) + k) for k, (v, _) in enumerate(copies)]
    for v, at in readers:
        buf = buffers.get(_owner(id(root(v)), slices)[0])
        if buf is not None:
            buf.last = max(buf.last, at)
    return buffers


def place(graph: Graph, steps: list[Step]) -> Placement:
    """Every value's location (see the module docstring) and the workspace size."""
    locations, copies = _io(graph)
    nodes = [step.node for step in steps]
    slices = inplace_slices(graph, nodes, locations)
    buffers = _buffers(steps, locations, slices, copies)
    shared = _residuals_in_place(steps, buffers, slices)
    workspace = memory.plan(list(buffers.values()))
    for key, buf in buffers.items():
        locations[key] = Location("workspace", buf.offset)
    for key, holder in shared.items():
        locations[key] = locations[holder]
    for key in slices:
        holder, offset = _owner(key, slices)
        locations[key] = Location("workspace", buffers[holder].offset + offset)
    constant_views = []
    for v in graph.values():
        r, offset = root_offset(v)
        if r is not v:
            if r.is_constant and id(r) not in locations:
                constant_views.append((v, r, offset))
            elif id(r) in locations and id(v) not in locations:
                locations[id(v)] = locations[id(r)].shifted(offset)
    inplace = {id(s.concat) for s in slices.values()}
    return Placement(locations, workspace, copies, inplace, constant_views)
