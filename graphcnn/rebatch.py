"""Re-batching a graph: the same computation on a batch of n samples.

`graph_batch(graph)` proves a graph batch-wise with the import's rule set
(frontends/onnx_batch.check_batchwise: from the inputs to the outputs, every node computes each
sample on its own and keeps the batch on axis 0) and returns its batch. `rebatch(graph, n)`
rebuilds it with n on axis 0 of every input:

1. every node keeps its name, op and attributes, and its outputs their names;
2. a batched node whose attributes spell its output's full shape (reshape / expand / slice
   `shape`, resize `sizes`) gets n as their first entry (the batch rule proved that entry is the
   batch);
3. every output type is re-inferred by the op's shape rule, and the result is verified.

Nodes on constants only are kept as they are. Used by `gc.compile(..., batch="dynamic")`.
"""
from __future__ import annotations

from .errors import CompileError, ShapeError, where
from .frontends.onnx_batch import check_batchwise
from .ir import FrozenDict, Graph, Value, freeze
from .ops.registry import get_op
from .verify import verify

# op -> the attribute that holds a batched output's full shape (rule 2)
SHAPE_ATTRS = {"reshape": "shape", "expand": "shape", "slice": "shape", "resize": "sizes"}


def graph_batch(graph: Graph) -> int:
    """The batch every input of `graph` has on axis 0, once the graph is proved batch-wise;
    a CompileError naming the node (or the input) that is not."""
    if not graph.inputs:
        raise CompileError(f"graph {graph.name!r} has no inputs: nothing to re-batch")
    firsts = {v.name: v.shape[0] if v.shape else None for v in graph.inputs}
    if None in firsts.values() or len(set(firsts.values())) != 1:
        raise CompileError(f"graph {graph.name!r}: its inputs' first dims {firsts} are not "
                           f"one batch axis")
    batch = next(iter(firsts.values()))
    try:
        check_batchwise(graph, batch)
    except ShapeError as e:
        raise CompileError(f"graph {graph.name!r} is not batch-wise: {e}") from None
    return batch


def rebatch(graph: Graph, n: int) -> Graph:
    """`graph` for a batch of `n` (module doc); a copy even when n is its batch."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CompileError(f"rebatch: the batch must be a positive int, got {n!r}")
    graph_batch(graph)
    new = Graph(graph.name)
    new.annotations = {k: dict(v) for k, v in graph.annotations.items()}
    values: dict[int, Value] = {}
    for v in graph.inputs:
        values[id(v)] = new.add_input(v.name, (n, *v.shape[1:]), v.type.dtype)
    batched = {id(v) for v in graph.inputs}

    def value(v: Value) -> Value:
        if id(v) not in values:  # a constant: shared data, uses of its own
            values[id(v)] = v._twin()
        return values[id(v)]

    for node in graph.nodes:
        inputs = [value(v) for v in node.inputs]
        attrs = dict(node.attrs)
        key = SHAPE_ATTRS.get(node.op)
        on_batch = any(id(v) in batched for v in node.inputs)
        if key is not None and on_batch:  # rule 2
            attrs[key] = (n, *attrs[key][1:])
        opdef = get_op(node.op, node.name)
        types = [v.type for v in inputs]
        try:
            attrs = FrozenDict({k: freeze(a) for k, a in opdef.normalized(attrs, types).items()})
            out_types = opdef.infer(attrs, types)
        except ShapeError as e:
            raise CompileError(f"{where(node)}: cannot re-batch to {n}: {e}") from None
        twin = new.restore_node(node.name, node.op, inputs, attrs,
                                [(o.name, t) for o, t in zip(node.outputs, out_types)])
        for old, out in zip(node.outputs, twin.outputs):
            values[id(old)] = out
            if on_batch:
                batched.add(id(old))
    new.set_outputs([value(v) for v in graph.outputs])
    new.reserve_names(graph.reserved_names())
    verify(new)
    return new
