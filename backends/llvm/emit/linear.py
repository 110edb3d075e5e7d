"""Dense layers: gemm (fused epilogue) and matmul (batched, broadcasting, 1-D operands).

Kernel family "gemm" (a constant B, passes/kernel_family.py) runs the packed GEMM plan of
kernels/gemm.py (emit_gemm_plan: B packed at compile time; a matmul whose constant B is 2-D is
one GEMM over the flattened batch). Family "generic", the emitters here:
a task is one output row, accumulated as y[m, :] += A[m, k] * B[k, :] over k — a contiguous
`<vw x float>` FMA loop — then alpha, beta * C (broadcast) and the activation.
"""
from __future__ import annotations

import math

from llvmlite import ir

from graphcnn.ir import Node

from ..builder import (
    apply_activation,
    as_words,
    decompose,
    dot_index,
    fma,
    for_range,
    gep,
    i64,
    load,
    load_scalar,
    splat,
    splat_value,
    store,
    vec_loop,
)
from ..kernels.gemm import GemmPlan
from .base import EmitContext, Task, emitter


def _gemm_row(b: ir.IRBuilder, a_row: ir.Value, a_stride: int, bmat: ir.Value, b_trans: bool,
              row: ir.Value, n: int, k: int, vw: int) -> None:
    """row[0:n] = sum over kk of a_row[kk * a_stride] * op(B)[kk, 0:n]."""
    vec_loop(b, 0, n, vw, lambda i, wd: store(b, splat(0.0, wd), row, i, "zero"), "zero")
    with for_range(b, 0, k, name="k") as kk:
        av = load_scalar(b, a_row, b.mul(kk, i64(a_stride), name="a.o"), "a")
        if not b_trans:
            brow = gep(b, bmat, b.mul(kk, i64(n), name="b.row"), "b_row")

            def body(i, wd):
                acc = load(b, row, i, wd, "acc")
                store(b, fma(b, splat_value(b, av, wd, "av"), load(b, brow, i, wd, "bv"), acc,
                             "f"), row, i, "acc")
            vec_loop(b, 0, n, vw, body, "n")
        else:
            with for_range(b, 0, n, name="j") as j:
                bv = load_scalar(b, bmat, b.add(b.mul(j, i64(k), name="bt.r"), kk, name="bt.o"),
                                 "bt")
                acc = load(b, row, j, 1, "acc")
                store(b, fma(b, splat_value(b, av, 1, "av1"), splat_value(b, bv, 1, "bv1"), acc,
                             "f1"), row, j, "acc")


def emit_gemm_plan(ctx: EmitContext, node: Node, plan: GemmPlan) -> None:
    """A gemm, or a matmul with a 2-D B, on the packed GEMM of its plan (kernel family "gemm",
    plan.py): B packed into the weights arena once, one task calling the kernel."""
    a_val = node.inputs[0]
    c_val = node.inputs[2] if node.op == "gemm" and len(node.inputs) > 2 else None
    b_off = ctx.add_weights(plan.pack_b(node.inputs[1].data))
    kernel = ctx.kernel(plan, node.name)
    fn = ctx.new_task_fn(node.name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    env, begin, end = fn.args
    pa = as_words(b, ctx.ptr(b, env, a_val, "a"), "a.words")  # a bf16 A: pairs along k
    pc = ctx.ptr(b, env, c_val, "c") if c_val is not None else ir.Constant(pa.type, None)
    b.call(kernel, [pa, ctx.weights_ptr(b, b_off, "bp"), pc,
                    ctx.ptr(b, env, node.outputs[0], "y"), begin, end])
    b.ret_void()
    ctx.tasks.append(Task(fn, plan.num_tasks, plan.flops, node.name, node.op))


@emitter("gemm")
def emit_gemm(ctx: EmitContext, node: Node) -> None:
    a = node.attrs
    av, bv = node.inputs[0], node.inputs[1]
    cv = node.inputs[2] if len(node.inputs) > 2 else None
    ta, tb = bool(a["transA"]), bool(a["transB"])
    m, k = av.type.shape[::-1] if ta else av.type.shape
    n = node.outputs[0].type.shape[1]
    act, params = a["activation"], tuple(a["activation_params"])
    b_trans = tb
    b_const_off = None
    if bv.is_constant and tb:  # transpose once at compile time: contiguous rows of op(B)
        b_const_off, b_trans = ctx.add_weights(bv.data.T), False
    if cv is not None:
        c_strides = _c_strides(cv.type.shape)
    y = node.outputs[0]
    with ctx.task(node, m, 2 * m * n * k) as (b, env, t):
        pa = ctx.ptr(b, env, av, "A")
        pb = ctx.weights_ptr(b, b_const_off, "B") if b_const_off is not None else \
            ctx.ptr(b, env, bv, "B")
        row = gep(b, ctx.ptr(b, env, y, "Y"), b.mul(t, i64(n), name="y.off"), "y_row")
        a_row = gep(b, pa, t if ta else b.mul(t, i64(k), name="a.off"), "a_row")
        _gemm_row(b, a_row, m if ta else 1, pb, b_trans, row, n, k, ctx.vw)
        pc = ctx.ptr(b, env, cv, "C") if cv is not None else None
        c_row = None
        if pc is not None:
            c_row = gep(b, pc, b.mul(t, i64(c_strides[0]), name="c.off"), "c_row")

        def epilogue(i, wd):
            v = b.fmul(load(b, row, i, wd, "acc"), splat(float(a["alpha"]), wd), name="alpha")
            if c_row is not None:
                if c_strides[1] == 0:
                    cval = splat_value(b, load_scalar(b, c_row, 0, "cs"), wd, "cv")
                else:
                    cval = load(b, c_row, i, wd, "cv")
                v = b.fadd(v, b.fmul(cval, splat(float(a["beta"]), wd), name="beta"), name="pc")
            store(b, apply_activation(b, v, act, params, "act"), row, i, "y")
        vec_loop(b, 0, n, ctx.vw, epilogue, "epi")


def _c_strides(shape: tuple[int, ...]) -> tuple[int, int]:
    """(row, column) element strides of C broadcast to (m, n); 0 along broadcast dims."""
    padded = (1,) * (2 - len(shape)) + tuple(shape)
    return 0 if padded[0] == 1 else padded[1], 0 if padded[1] == 1 else 1


@emitter("matmul")
def emit_matmul(ctx: EmitContext, node: Node) -> None:
    av, bv, y = node.inputs[0], node.inputs[1], node.outputs[0]
    sa, sb = av.type.shape, bv.type.shape
    a2 = (1,) + sa if len(sa) == 1 else sa
    b2 = sb + (1,) if len(sb) == 1 else sb
    m, k, n = a2[-2], a2[-1], b2[-1]
    batch_a, batch_b = a2[:-2], b2[:-2]
    rank = max(len(batch_a), len(batch_b))
    pad_a = (1,) * (rank - len(batch_a)) + batch_a
    pad_b = (1,) * (rank - len(batch_b)) + batch_b
    batch = tuple(max(x, z) for x, z in zip(pad_a, pad_b))
    nb = math.prod(batch)
    # strides of each batch dim (0 where broadcast) in elements
    str_a = _batch_strides(pad_a, batch, m * k)
    str_b = _batch_strides(pad_b, batch, k * n)
    with ctx.task(node, nb * m, 2 * nb * m * n * k) as (b, env, t):
        bi, mi = b.udiv(t, i64(m), name="bi"), b.urem(t, i64(m), name="mi")
        idx = decompose(b, bi, batch, "bidx") if batch else []
        a_off = b.add(dot_index(b, idx, str_a, "aoff"), b.mul(mi, i64(k), name="am"),
                      name="a.off")
        pa = gep(b, ctx.ptr(b, env, av, "A"), a_off, "a_row")
        pb = gep(b, ctx.ptr(b, env, bv, "B"), dot_index(b, idx, str_b, "boff"), "b_mat")
        row = gep(b, ctx.ptr(b, env, y, "Y"), b.mul(t, i64(n), name="y.off"), "y_row")
        _gemm_row(b, pa, 1, pb, False, row, n, k, ctx.vw)


def _batch_strides(shape, batch, matrix: int) -> list[int]:
    out, acc = [], matrix
    for d, full in zip(reversed(shape), reversed(batch)):
        out.append(0 if d == 1 and full != 1 else acc)
        acc *= d
    return out[::-1]

