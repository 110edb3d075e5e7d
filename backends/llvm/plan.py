"""Stage 1, plan: the optimised graph -> one kernel step per node that computes something.

A step is the node, its kernel family (the annotation passes/kernel_family.py wrote for conv,
gemm and matmul; None for the other ops, which their emitter in emit/ runs) and, for the
families with a kernels/ plan, that plan: tile sizes, task split (`num_tasks`) and cost
(`flops`), chosen from the shape and the vector width. This is the one place a plan is built.
The passes decided which kernel takes each node from predicates that restate the kernels'
bounds (passes/conv_kernels.py), so a plan constructor refusing a node is a bug, raised as a
CompileError naming the node; nothing falls back silently. The emit/ loops (the generic conv,
pools, elementwise, ...) choose their task split when emitted.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphcnn.passes.kernel_family import gemm_dims
from graphcnn.passes.precision import BF16_VALUED

from graphcnn.errors import CompileError, where
from graphcnn.ir import Graph, Node

from .emit import ANY_DTYPE_OPS, ELEMENT_TYPES, EMITTERS, VIEW_OPS
from .emit.elementwise import integer_binary
from .emit.indexing import view_offsets
from .kernels.conv2d_nchwc import Conv2dNCHWcPlan
from .kernels.conv2d_rows import RowConv2dPlan
from .kernels.depthwise import DepthwiseConv2dNCHWcPlan
from .kernels.gemm import GemmPlan
from .kernels.winograd import WinogradConv2dNCHWcPlan

FAMILY_OPS = frozenset({"conv", "gemm", "matmul"})  # ops whose kernel family a pass chooses


@dataclass(frozen=True, eq=False)
class Step:
    """One node's kernel: `plan` is the kernels/ plan of `family` (with its task split
    `num_tasks` and cost `flops`), or None for the emit/ loops."""

    node: Node
    family: str | None
    plan: Any = None


def _conv_args(node: Node) -> dict:
    """The keywords every conv plan's `create` takes, from a blocked 2-D conv."""
    a = node.attrs
    x, w = node.inputs[0].type.shape, node.inputs[1].type.shape
    return {"n": x[0], "c_in": w[1] * a["groups"], "h": x[2], "w": x[3], "c_out": w[0],
            "kh": w[2], "kw": w[3], "stride": tuple(a["strides"]),
            "dilation": tuple(a["dilations"]), "pads": tuple(a["pads"][:4]),
            "in_block": x[-1], "out_block": a["out_block"], "vector_width": a["out_block"],
            "activation": a["activation"], "activation_params": tuple(a["activation_params"]),
            "residual": bool(a["residual"]), "groups": a["groups"]}


def _row(node: Node, vector_width: int) -> RowConv2dPlan:
    # the row kernel's vectors are the host's, its output block the conv's
    return RowConv2dPlan.create(**{**_conv_args(node), "vector_width": vector_width},
                                pool=2 if node.attrs["pool"] else 0)


def _winograd(m: int, bf16: bool = False) -> Callable[[Node, int], WinogradConv2dNCHWcPlan]:
    return lambda node, vector_width: WinogradConv2dNCHWcPlan.create(**_conv_args(node), m=m,
                                                                     bf16=bf16)


def _direct(node: Node, vector_width: int) -> Conv2dNCHWcPlan:
    return Conv2dNCHWcPlan.create(**_conv_args(node), out_bf16=_stores_bf16(node))


def _direct_bf16(node: Node, vector_width: int) -> Conv2dNCHWcPlan:
    return Conv2dNCHWcPlan.create_bf16(**_conv_args(node), out_bf16=_stores_bf16(node))


def _depthwise(node: Node, vector_width: int) -> DepthwiseConv2dNCHWcPlan:
    args = _conv_args(node)
    del args["groups"]  # a depthwise conv's groups are its channels (is_depthwise checks)
    return DepthwiseConv2dNCHWcPlan.create(**args, out_bf16=_stores_bf16(node))


def _lane_groups(node: Node, vector_width: int) -> DepthwiseConv2dNCHWcPlan:
    args = _conv_args(node)
    groups = args.pop("groups")  # groups of c_in / groups lanes (lane_groups_takes checks)
    return DepthwiseConv2dNCHWcPlan.create(**args, group_size=args["c_in"] // groups,
                                           out_bf16=_stores_bf16(node))


def _stores_bf16(node: Node) -> bool:
    return node.attrs["out_dtype"] == "bfloat16"


def _gemm(node: Node, vector_width: int, bf16: bool = False) -> GemmPlan:
    m, n, k = gemm_dims(node)
    lanes = vector_width if vector_width in (4, 8, 16) else 16
    create = GemmPlan.create_bf16 if bf16 else GemmPlan.create
    if node.op == "matmul":  # a constant 2-D B: the batch of A is one GEMM's rows
        return create(m=m, n=n, k=k, beta=0.0, vector_width=lanes)
    a = node.attrs
    c = node.inputs[2] if len(node.inputs) > 2 else None
    return create(m=m, n=n, k=k, trans_a=bool(a["transA"]), trans_b=bool(a["transB"]),
                  alpha=a["alpha"], beta=a["beta"], has_c=c is not None,
                  c_shape=c.type.shape if c is not None else None, activation=a["activation"],
                  activation_params=tuple(a["activation_params"]), vector_width=lanes)


# kernel family -> its plan from (node, vector width); families not here run emit/ loops
PLANS: dict[str, Callable[[Node, int], Any]] = {
    "row": _row,
    "winograd": _winograd(4),  # F(4x4, 3x3)
    "winograd_f2": _winograd(2),  # F(2x2, 3x3)
    "winograd_f2_bf16": _winograd(2, bf16=True),  # passes/precision.py: V and U in bf16
    "direct": _direct,
    "direct_bf16": _direct_bf16,  # passes/precision.py: a bf16 input, vdpbf16ps
    "grouped": _direct,
    "depthwise": _depthwise,
    "lane_groups": _lane_groups,
    "gemm": _gemm,
    "gemm_bf16": lambda node, vector_width: _gemm(node, vector_width, bf16=True),
}
LOOPS = frozenset({"generic"})  # families the emit/ loops run

# plans whose kernels read each residual element just before they write the output element
# at the same place, and no other: place.py may put such a conv's output on its residual
RESIDUAL_IN_PLACE = (Conv2dNCHWcPlan, DepthwiseConv2dNCHWcPlan, WinogradConv2dNCHWcPlan)


def residual_in_place(step: Step) -> bool:
    """Whether the step's node (a conv adding a residual) may write its output over the
    residual."""
    node = step.node
    return (bool(node.attrs.get("residual")) and isinstance(step.plan, RESIDUAL_IN_PLACE)
            and node.outputs[0].type.dtype == node.inputs[3].type.dtype)


def _check(graph: Graph) -> None:
    """Every value of a dtype the backend holds (ELEMENT_TYPES), every value a node reads or
    writes float32 unless its kernel takes any of them (ANY_DTYPE_OPS, views, the integer
    binary ops), and every op
    with a kernel (one error for the first that is not)."""
    for v in graph.values():
        if v.type.dtype not in ELEMENT_TYPES:
            at = where(v.producer) if v.producer is not None else f"value {v.name!r}"
            raise CompileError(f"{at}: the llvm backend holds {sorted(ELEMENT_TYPES)} only, "
                               f"%{v.name} is {v.type}")
    for node in graph.nodes:
        if node.op in ANY_DTYPE_OPS or node.op in VIEW_OPS or integer_binary(node):
            continue
        if (graph.annotations.get(node.name, {}).get("kernel") in BF16_VALUED
                and {v.type.dtype for v in node.inputs + node.outputs}
                <= {"float32", "bfloat16"}):
            continue  # the precision pass retyped the node for this kernel
        for v in (*node.inputs, *node.outputs):
            if v.type.dtype != "float32":
                raise CompileError(f"{where(node)}: the llvm kernel of {node.op!r} computes "
                                   f"float32 only, %{v.name} is {v.type}")
    for node in graph.nodes:
        if node.op not in EMITTERS and node.op not in VIEW_OPS:
            raise CompileError(f"{where(node)}: the llvm backend has no kernel for op "
                               f"{node.op!r}")


def plan_step(node: Node, annotations: dict, vector_width: int) -> Step:
    """The step for one node: its family's plan, or its emitter's loops."""
    if node.op not in FAMILY_OPS:
        return Step(node, None)
    family = annotations.get(node.name, {}).get("kernel")
    if family in LOOPS:
        return Step(node, family)
    if family not in PLANS:
        raise CompileError(f"{where(node)}: no kernel family for this node ({family!r}): "
                           "the graph did not get the llvm pass pipeline's lowering passes")
    try:
        return Step(node, family, PLANS[family](node, vector_width))
    except ValueError as e:  # the pass promised this kernel: a bug
        raise CompileError(f"{where(node)}: the {family!r} kernel refuses a node the kernel "
                           f"family pass gave it: {e}") from e


def plan(graph: Graph, vector_width: int) -> list[Step]:
    """One step per node that computes something (views alias their input, and so do the
    splits and slices that select contiguous parts of it: emit.indexing.view_offsets), in
    graph order."""
    _check(graph)
    annotations = graph.annotations
    return [plan_step(node, annotations, vector_width) for node in graph.nodes
            if node.op not in VIEW_OPS and view_offsets(node) is None]
