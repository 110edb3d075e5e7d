"""Re-binding a file's batch: `gc.from_onnx(path, batch=8)`.

Every graph input's first dim becomes the new batch. Import then computes every shape from it
(Shape -> Gather -> Concat -> Reshape chains fold to the new sizes), and a Reshape whose constant
shape hard-codes the file's batch as its first entry, applied to a value whose first dim is the
new batch, gets the new batch there instead (`rebatched_shape`).

That alone could be silently wrong (a Reshape that moves the batch into another axis would
still fit), so the imported graph is then proved batch-wise (`check_batchwise`): starting from
the inputs, every value whose axis 0 is the batch must reach the outputs only through nodes
that compute each sample on its own, and every output must carry the batch on axis 0. A node
that cannot be shown to keep samples apart is a ShapeError naming it.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import ShapeError, where
from ..ir import Graph, Node
from ..ops import BINARY_ELEMENTWISE, POOLS, REDUCTIONS, UNARY_ELEMENTWISE


def rebatched_shape(shape: list[int], x_shape: tuple[int, ...], old: int, new: int
                    ) -> list[int]:
    """A Reshape target with the file's batch `old` as its first entry, on a value whose first
    dim is the new batch: the new batch there."""
    if old != new and shape and shape[0] == old and x_shape and x_shape[0] == new:
        return [new, *shape[1:]]
    return shape


def _axis(axis: int, rank: int) -> int:
    return axis % rank if rank else 0


def _first_input_batched(node: Node, batched: set[int]) -> bool:
    """Input 0 carries the batch, no other input does (weights, bias, slopes)."""
    return id(node.inputs[0]) in batched and \
        not any(id(v) in batched for v in node.inputs[1:])


def _elementwise(node: Node, batched: set[int]) -> bool:
    """Each operand has the batch on the output's axis 0, or broadcasts there from a 1 (or a
    lower rank): no sample reads another's values."""
    rank = len(node.outputs[0].shape)
    for v in node.inputs:
        if id(v) in batched:
            if len(v.shape) != rank:
                return False
        elif len(v.shape) == rank and v.shape[0] != 1:
            return False
    return True


def _axis_not_batch(node: Node, batched: set[int]) -> bool:
    """A per-sample op along `axis` (argmax, log_softmax, layer_norm from axis on, ...)."""
    return _first_input_batched(node, batched) and \
        _axis(node.attrs["axis"], len(node.inputs[0].shape)) != 0


def _axes_not_batch(node: Node, batched: set[int]) -> bool:
    """A reduction or normalisation over `axes` (empty: all of them) that leaves axis 0."""
    rank = len(node.inputs[0].shape)
    axes = node.attrs["axes"]
    return _first_input_batched(node, batched) and bool(axes) and \
        0 not in [_axis(a, rank) for a in axes]


def _gather(node: Node, batched: set[int]) -> bool:
    """Rows of a table by per-sample ids (an embedding), or a gather off the batch axis."""
    data, indices = node.inputs
    if id(data) not in batched:
        return node.attrs["axis"] == 0 and len(indices.shape) >= 1
    return id(indices) not in batched and _axis(node.attrs["axis"], len(data.shape)) != 0


def _slice(node: Node, batched: set[int]) -> bool:
    a = node.attrs
    return _first_input_batched(node, batched) and a["starts"][0] == 0 and \
        a["steps"][0] == 1 and node.outputs[0].shape[0] == node.inputs[0].shape[0]


_SAMPLEWISE: dict[str, Callable[[Node, set[int]], bool]] = {
    **{op: _axes_not_batch for op in (*REDUCTIONS, "mean_variance_norm")},
    **{op: _axis_not_batch for op in ("argmax", "argmin", "log_softmax", "layer_norm", "lp_norm",
                                      "split")},
    **{op: _first_input_batched for op in (
        "group_norm", "channel_norm", "adaptive_avg_pool", "cast")},
    "where": _elementwise,
    "gather": _gather,
    "slice": _slice,
    "expand": lambda n, b: _first_input_batched(n, b) and
    len(n.outputs[0].shape) == len(n.inputs[0].shape) and
    n.outputs[0].shape[0] == n.inputs[0].shape[0],
    "tile": lambda n, b: _first_input_batched(n, b) and n.attrs["repeats"][0] == 1,
    **{op: _first_input_batched for op in UNARY_ELEMENTWISE | POOLS},
    **{op: _elementwise for op in BINARY_ELEMENTWISE},
    **{op: _first_input_batched for op in (
        "conv", "batch_norm", "lrn", "channel_shuffle", "identity", "dropout",
        "conv_transpose", "depth_to_space", "space_to_depth")},
    # the batch axis left as it is (a resize along it would mix samples)
    "resize": lambda n, b: _first_input_batched(n, b) and
    n.attrs["sizes"][0] == n.inputs[0].shape[0] and n.attrs["scales"][0] == 1.0,
    "softmax": lambda n, b: _first_input_batched(n, b) and
    _axis(n.attrs["axis"], len(n.inputs[0].shape)) != 0,
    "concat": lambda n, b: all(id(v) in b for v in n.inputs) and
    _axis(n.attrs["axis"], len(n.inputs[0].shape)) != 0,
    "pad": lambda n, b: _first_input_batched(n, b) and
    n.attrs["pads"][0] == 0 and n.attrs["pads"][len(n.inputs[0].shape)] == 0,
    "gemm": lambda n, b: _first_input_batched(n, b) and not n.attrs["transA"],
    "matmul": lambda n, b: _first_input_batched(n, b) and len(n.inputs[0].shape) >= 2,
    "flatten": lambda n, b: _first_input_batched(n, b) and n.attrs["axis"] != 0,
    # row-major: with the batch first on both sides, sample i is block i of both buffers
    "reshape": lambda n, b: _first_input_batched(n, b) and
    n.outputs[0].shape[:1] == n.inputs[0].shape[:1],
    "transpose": lambda n, b: _first_input_batched(n, b) and
    (n.attrs["perm"] is None and len(n.inputs[0].shape) == 1 or
     n.attrs["perm"] is not None and n.attrs["perm"][0] == 0),
    "squeeze": lambda n, b: _first_input_batched(n, b) and n.attrs["axes"] is not None and
    0 not in [_axis(a, len(n.inputs[0].shape)) for a in n.attrs["axes"]],
    "unsqueeze": lambda n, b: _first_input_batched(n, b) and
    0 not in [_axis(a, len(n.outputs[0].shape)) for a in n.attrs["axes"]],
}


def check_batchwise(graph: Graph, batch: int) -> None:
    """Prove every node between the inputs and the outputs keeps samples apart (module doc)."""
    batched = {id(v) for v in graph.inputs}
    for node in graph.nodes:
        if not any(id(v) in batched for v in node.inputs):
            continue  # computes on constants only
        rule = _SAMPLEWISE.get(node.op)
        if rule is None or not rule(node, batched):
            raise ShapeError(f"{where(node)}: cannot re-bind the batch to {batch}: this node "
                             f"is not provably computed per sample (inputs "
                             f"{[list(v.shape) for v in node.inputs]})")
        for v in node.outputs:
            if not v.shape or v.shape[0] != batch:
                raise ShapeError(f"{where(node)}: cannot re-bind the batch to {batch}: its "
                                 f"output {list(v.shape)} does not keep the batch first")
            batched.add(id(v))
    for v in graph.outputs:
        if id(v) not in batched:
            raise ShapeError(f"output {v.name!r} does not depend on the batch: re-binding the "
                             f"batch to {batch} would not change it")
