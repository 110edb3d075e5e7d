"""Elementwise kernels: the activations and binary ops of the op tables (graphcnn.ops.activation,
graphcnn.ops.elementwise), each through its table's vector expression, and copies.

Broadcasting: the output shape and each input's strides (0 on broadcast dims) are merged into
(outer rows) x (inner run), the inner run contiguous for every input that is not broadcast along
it. A task is one outer row; the inner run is a `<vw x float>` loop with a scalar tail, and a
broadcast operand is splatted.

The integer binary ops (INTEGER_BINARY on int64 / int32, as ONNX files compute shapes and
indices) run the same plan on vectors of the integer type, with wrapping arithmetic as numpy's.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir

from graphcnn.ir import Node, Value
from graphcnn.ops import ACTIVATIONS, BINARY_OPS

from ..builder import (
    LLVMVectorMath,
    apply_activation,
    decompose,
    dot_index,
    load,
    prod,
    splat_value,
    store,
    strides_of,
    vec_loop,
)
from .base import EmitContext, emitter
from .indexing import lanes_of, vload, vsplat, vstore

# the binary ops with an integer kernel: the ones whose integer result needs no check (integer
# division by zero would trap; it stays on the reference)
INTEGER_BINARY = frozenset({"add", "sub", "mul", "sum", "max", "min"})
INTEGER_DTYPES = frozenset({"int64", "int32"})


def integer_binary(node: Node) -> bool:
    """Whether the node is an integer binary op this file has a kernel for (one integer dtype
    for every input and the output)."""
    dtypes = {v.type.dtype for v in (*node.inputs, *node.outputs)}
    return node.op in INTEGER_BINARY and len(dtypes) == 1 and dtypes <= INTEGER_DTYPES


class LLVMIntVectorMath:
    """The VectorMath subset of INTEGER_BINARY on integer vectors (or scalars)."""

    def __init__(self, b: ir.IRBuilder, name: str):
        self.b, self.name = b, name

    def add(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.add(x, y, name=f"{self.name}.add")

    def sub(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.sub(x, y, name=f"{self.name}.sub")

    def mul(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.mul(x, y, name=f"{self.name}.mul")

    def max(self, x: ir.Value, y: ir.Value) -> ir.Value:
        gt = self.b.icmp_signed(">", x, y, name=f"{self.name}.gt")
        return self.b.select(gt, x, y, name=f"{self.name}.max")

    def min(self, x: ir.Value, y: ir.Value) -> ir.Value:
        lt = self.b.icmp_signed("<", x, y, name=f"{self.name}.lt")
        return self.b.select(lt, x, y, name=f"{self.name}.min")


def broadcast_plan(out_shape: Sequence[int], in_shapes: Sequence[Sequence[int]]
                   ) -> tuple[list[int], list[list[int]]]:
    """Merged dims and per-input strides (0 = broadcast) for a broadcasting elementwise op."""
    rank = len(out_shape)
    strides = []
    for shape in in_shapes:
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        natural = strides_of(padded)
        strides.append([0 if padded[i] == 1 and out_shape[i] != 1 else natural[i]
                        for i in range(rank)])
    dims: list[int] = []
    merged: list[list[int]] = [[] for _ in in_shapes]
    for i in range(rank):
        if out_shape[i] == 1:
            continue
        if dims and all(s[i] * out_shape[i] == m[-1] or (s[i] == 0 and m[-1] == 0)
                        for s, m in zip(strides, merged)):
            # row-major contiguous with the previous dim for every input: merge
            dims[-1] *= out_shape[i]
            for s, m in zip(strides, merged):
                m[-1] = s[i]
            continue
        dims.append(out_shape[i])
        for s, m in zip(strides, merged):
            m.append(s[i])
    if not dims:
        dims, merged = [1], [[0] for _ in in_shapes]
    return dims, merged


def emit_map(ctx: EmitContext, node: Node, inputs: Sequence[Value], out: Value,
             fn: Callable[[ir.IRBuilder, list[ir.Value], str], ir.Value], work_per: int = 1
             ) -> None:
    """out = fn(*inputs) elementwise with numpy broadcasting."""
    dims, strides = broadcast_plan(out.type.shape, [v.type.shape for v in inputs])
    outer, inner = dims[:-1], dims[-1]
    out_strides = strides_of(dims)
    rows = prod(outer)
    with ctx.task(node, rows, out.type.size * work_per) as (b, env, t):
        idx = decompose(b, t, outer, "idx") if outer else []
        o_base = dot_index(b, idx, out_strides[:-1], "ooff")
        po = ctx.ptr(b, env, out, "out")
        bases = []
        for k, v in enumerate(inputs):
            p = ctx.ptr(b, env, v, f"in{k}")
            bases.append((p, dot_index(b, idx, strides[k][:-1], f"ioff{k}"), strides[k][-1]))

        def body(i: ir.Value, w: int) -> None:
            vals = []
            for k, (p, base, inner_stride) in enumerate(bases):
                if inner_stride == 0:
                    s = b.load(b.gep(p, [base], name=f"x{k}.p"), name=f"x{k}.s", align=4)
                    vals.append(splat_value(b, s, w, f"x{k}"))
                else:
                    vals.append(load(b, p, b.add(base, i, name=f"x{k}.o"), w, f"x{k}"))
            store(b, fn(b, vals, "y"), po, b.add(o_base, i, name="y.o"), "y")

        def typed_body(i: ir.Value, w: int) -> None:  # vectors of the output's element type
            vals = []
            for k, (p, base, inner_stride) in enumerate(bases):
                if inner_stride == 0:
                    s = b.load(b.gep(p, [base], name=f"x{k}.p"), name=f"x{k}.s")
                    vals.append(vsplat(b, s, w, f"x{k}"))
                else:
                    vals.append(vload(b, p, b.add(base, i, name=f"x{k}.o"), w, f"x{k}"))
            vstore(b, fn(b, vals, "y"), po, b.add(o_base, i, name="y.o"), "y")

        if out.type.dtype == "float32":
            vec_loop(b, 0, inner, ctx.vw, body, "e")
        else:
            vec_loop(b, 0, inner, lanes_of(ctx, out.type.dtype), typed_body, "e")


@emitter(*ACTIVATIONS)
def emit_activation(ctx: EmitContext, node: Node) -> None:
    act = ACTIVATIONS[node.op]
    params = act.params(node.attrs)
    emit_map(ctx, node, node.inputs, node.outputs[0],
             lambda b, xs, name: apply_activation(b, xs[0], act.name, params, name),
             work_per=act.cost)


@emitter(*BINARY_OPS)
def emit_binary(ctx: EmitContext, node: Node) -> None:
    op = BINARY_OPS[node.op]
    integer = integer_binary(node)

    def math(b: ir.IRBuilder, x: ir.Value, name: str):
        return LLVMIntVectorMath(b, name) if integer else LLVMVectorMath(b, x.type.count, name)

    def combine(b: ir.IRBuilder, xs: list[ir.Value], name: str) -> ir.Value:
        acc = xs[0]
        for k, x in enumerate(xs[1:]):  # left to right, as the reference folds
            acc = op.vector(math(b, x, f"{name}.{k}"), acc, x)
        if op.average:
            m = LLVMVectorMath(b, acc.type.count, f"{name}.mean")
            acc = m.div(acc, m.const(len(xs)))
        return acc
    emit_map(ctx, node, node.inputs, node.outputs[0], combine, work_per=op.cost)


def emit_copy(ctx: EmitContext, node: Node, src: Value, dst: Value) -> None:
    """dst = src (graph outputs that alias an input, a constant or another output)."""
    emit_map(ctx, node, [src], dst, lambda b, xs, name: xs[0])
