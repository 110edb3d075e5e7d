"""Elementwise kernels: the activations and binary ops of the op tables (graphcnn.ops.activation,
graphcnn.ops.elementwise), each through its table's vector expression, and copies.

Broadcasting: the output shape and each input's strides (0 on broadcast dims) are merged into
(outer rows) x (inner run), the inner run contiguous for every input that is not broadcast along
it. A task is one outer row; the inner run is a `<vw x float>` loop with a scalar tail, and a
broadcast operand is splatted.
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

        vec_loop(b, 0, inner, ctx.vw, body, "e")


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

    def combine(b: ir.IRBuilder, xs: list[ir.Value], name: str) -> ir.Value:
        acc = xs[0]
        for k, x in enumerate(xs[1:]):  # left to right, as the reference folds
            acc = op.vector(LLVMVectorMath(b, x.type.count, f"{name}.{k}"), acc, x)
        if op.average:
            m = LLVMVectorMath(b, acc.type.count, f"{name}.mean")
            acc = m.div(acc, m.const(len(xs)))
        return acc
    emit_map(ctx, node, node.inputs, node.outputs[0], combine, work_per=op.cost)


def emit_copy(ctx: EmitContext, node: Node, src: Value, dst: Value) -> None:
    """dst = src (graph outputs that alias an input, a constant or another output)."""
    emit_map(ctx, node, [src], dst, lambda b, xs, name: xs[0])
