"""The softmax family (softmax, log_softmax: numerically stable, shifted by the max),
batch_norm (inference), LRN, and the statistics normalisations (layer_norm, group_norm,
lp_norm, mean_variance_norm; see their section below).

softmax sees the tensor as (outer, L, inner) around its axis; a task is one (outer, inner)
line. A contiguous line (inner == 1) is vectorised: max, exp and sum, then divide (softmax) or
x - max - log(sum) (log_softmax). batch_norm and
LRN take one (n, c) plane per task and vectorise over the spatial positions.
"""
from __future__ import annotations

import math

from llvmlite import ir

from graphcnn.ir import Node
from graphcnn.ops.normalization import MVN_EPSILON

from ..builder import (
    F32,
    apply_activation,
    decompose,
    dot_index,
    entry_alloca,
    fmax,
    for_range,
    gep,
    hreduce,
    hsum,
    i64,
    intrinsic,
    load,
    load_scalar,
    splat,
    splat_value,
    store,
    vec_loop,
    vexp,
)
from .base import EmitContext, emitter
from .reduce import merged_runs, split_runs


@emitter("softmax", "log_softmax")
def emit_softmax(ctx: EmitContext, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    shape, axis = x.type.shape, node.attrs["axis"]
    outer, length, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    vw = ctx.vw if inner == 1 else 1
    with ctx.task(node, outer * inner, 30 * x.type.size) as (b, env, t):
        o, j = b.udiv(t, i64(inner), name="o"), b.urem(t, i64(inner), name="j")
        base = b.add(b.mul(o, i64(length * inner), name="o.off"), j, name="base")
        src = gep(b, ctx.ptr(b, env, x, "in"), base, "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), base, "dst")

        def at(i):
            return i if inner == 1 else b.mul(i, i64(inner), name="at")
        width = vw if length >= vw else 1
        vmax_slot = entry_alloca(b, ir.VectorType(F32, width), "vmax")
        smax_slot = entry_alloca(b, F32, "smax")
        b.store(splat(float("-inf"), width), vmax_slot)
        b.store(ir.Constant(F32, float("-inf")), smax_slot)

        def find_max(i, wd):
            v = load(b, src, at(i), wd, "x")
            if wd == width:
                b.store(fmax(b, b.load(vmax_slot, name="vm"), v, "vm2"), vmax_slot)
            else:
                s = b.extract_element(v, ir.Constant(ir.IntType(32), 0), name="xs")
                b.store(fmax(b, b.load(smax_slot, name="sm"), s, "sm2"), smax_slot)
        vec_loop(b, 0, length, width, find_max, "max")
        mx = fmax(b, hreduce(b, b.load(vmax_slot, name="vmf"),
                             lambda p, q: fmax(b, p, q, "hm"), "hm"),
                  b.load(smax_slot, name="smf"), "mx")
        vsum_slot = entry_alloca(b, ir.VectorType(F32, width), "vsum")
        ssum_slot = entry_alloca(b, F32, "ssum")
        b.store(splat(0.0, width), vsum_slot)
        b.store(ir.Constant(F32, 0.0), ssum_slot)

        def exps(i, wd):
            e = vexp(b, b.fsub(load(b, src, at(i), wd, "x"), splat_value(b, mx, wd, "mxv"),
                               name="xs"), "e")
            store(b, e, dst, at(i), "e")
            if wd == width:
                b.store(b.fadd(b.load(vsum_slot, name="vs"), e, name="vs2"), vsum_slot)
            else:
                s = b.extract_element(e, ir.Constant(ir.IntType(32), 0), name="es")
                b.store(b.fadd(b.load(ssum_slot, name="ss"), s, name="ss2"), ssum_slot)
        vec_loop(b, 0, length, width, exps, "exp")
        total = b.fadd(hsum(b, b.load(vsum_slot, name="vsf"), "hs"), b.load(ssum_slot, name="ssf"),
                       name="total")
        if node.op == "log_softmax":
            logsum = intrinsic(b, "llvm.log", [total], "logsum")

            def logp(i, wd):
                shifted = b.fsub(load(b, src, at(i), wd, "x"), splat_value(b, mx, wd, "mxv"),
                                 name="xs")
                store(b, b.fsub(shifted, splat_value(b, logsum, wd, "lv"), name="lp"), dst,
                      at(i), "lp")
            vec_loop(b, 0, length, width, logp, "logp")
            return
        vec_loop(b, 0, length, width, lambda i, wd: store(
            b, b.fdiv(load(b, dst, at(i), wd, "e"), splat_value(b, total, wd, "tv"), name="p"),
            dst, at(i), "p"), "div")


@emitter("batch_norm")
def emit_batch_norm(ctx: EmitContext, node: Node) -> None:
    """Per channel: (x - mean) * (scale / sqrt(var + eps)) + bias, the reference's order. NCHW:
    a task is one (image, channel) plane. NCHWc: a task is one (image, channel block); each
    pixel is one vector of the block's lanes, with per-lane parameter vectors."""
    x, scale, bias, mean, var = node.inputs
    y = node.outputs[0]
    blocked = node.attrs["layout"] == "NCHWc"
    n, c = x.type.shape[:2]
    lanes = x.type.shape[-1] if blocked else 1
    plane = math.prod(x.type.shape[2:])          # blocked: pixels * lanes
    eps = float(node.attrs["epsilon"])
    act, params = node.attrs["activation"], tuple(node.attrs["activation_params"])
    with ctx.task(node, n * c, 2 * x.type.size) as (b, env, t):
        ch = b.urem(t, i64(c), name="ch")
        first = b.mul(ch, i64(lanes), name="lane0")

        def param(v, name: str) -> ir.Value:
            """blocked: the block's lanes as one vector; NCHW: the channel's scalar"""
            p = ctx.ptr(b, env, v, name)
            return load(b, p, first, lanes, f"{name}.v") if blocked else \
                load_scalar(b, p, ch, f"{name}.s")
        sc, bi, mu, va = (param(scale, "scale"), param(bias, "bias"), param(mean, "mean"),
                          param(var, "var"))
        eps_c = ir.Constant(F32, eps)
        root = intrinsic(b, "llvm.sqrt", [b.fadd(va, splat_value(b, eps_c, lanes, "eps")
                                                 if blocked else eps_c, name="ve")], "root")
        inv = b.fdiv(sc, root, name="inv")
        src = gep(b, ctx.ptr(b, env, x, "in"), b.mul(t, i64(plane), name="off"), "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(plane), name="off2"), "dst")

        if blocked:
            def pixel(p):
                at = b.mul(p, i64(lanes), name="at")
                v = b.fsub(load(b, src, at, lanes, "x"), mu, name="xc")
                v = b.fadd(b.fmul(v, inv, name="xn"), bi, name="y")
                store(b, apply_activation(b, v, act, params, "act"), dst, at, "y")
            with for_range(b, 0, plane // lanes, name="px") as p:
                pixel(p)
            return

        def body(i, wd):
            v = b.fsub(load(b, src, i, wd, "x"), splat_value(b, mu, wd, "mu"), name="xc")
            v = b.fmul(v, splat_value(b, inv, wd, "inv"), name="xn")
            v = b.fadd(v, splat_value(b, bi, wd, "b"), name="y")
            store(b, apply_activation(b, v, act, params, "act"), dst, i, "y")
        vec_loop(b, 0, plane, ctx.vw, body, "bn")


def _power(b: ir.IRBuilder, base: ir.Value, beta: float, wd: int) -> ir.Value:
    """base ** beta (base > 0) for LRN. The betas networks use go through square roots, each a
    correctly rounded vector sqrt: 0.75 (AlexNet, Inception) as t * sqrt(t) with t =
    sqrt(base), 0.5, 1. Any other beta takes llvm.pow, which LLVM expands into one powf call
    per lane (slow: only for betas no common network uses)."""
    if beta == 1.0:
        return base
    if beta in (0.5, 0.75):
        root = intrinsic(b, "llvm.sqrt", [base], "den.sqrt")
        if beta == 0.5:
            return root
        return b.fmul(root, intrinsic(b, "llvm.sqrt", [root], "den.qrt"), name="den")
    return intrinsic(b, "llvm.pow", [base, splat(beta, wd)], "den")


@emitter("lrn")
def emit_lrn(ctx: EmitContext, node: Node) -> None:
    a = node.attrs
    x, y = node.inputs[0], node.outputs[0]
    n, c = x.type.shape[:2]
    plane = math.prod(x.type.shape[2:])
    size = a["size"]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2  # channels [c - lo, c + hi]
    with ctx.task(node, n * c, (size + 30) * x.type.size) as (b, env, t):
        ni, ci = b.udiv(t, i64(c), name="n"), b.urem(t, i64(c), name="c")
        px = ctx.ptr(b, env, x, "in")
        src = gep(b, px, b.mul(t, i64(plane), name="off"), "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(plane), name="off2"), "dst")
        first = b.select(b.icmp_signed("<", ci, i64(lo), name="lo.neg"), i64(0),
                         b.sub(ci, i64(lo), name="c.lo"), name="first")
        last = b.select(b.icmp_signed(">", b.add(ci, i64(hi), name="c.hi"), i64(c - 1),
                                      name="hi.over"), i64(c - 1),
                        b.add(ci, i64(hi), name="c.hi2"), name="last")
        stop = b.add(last, i64(1), name="stop")
        image = gep(b, px, b.mul(ni, i64(c * plane), name="img.off"), "image")

        def body(i, wd):
            ty = ir.VectorType(F32, wd)
            acc_slot = entry_alloca(b, ty, f"sq{wd}")
            b.store(splat(0.0, wd), acc_slot)
            with for_range(b, first, stop, name="cw") as cc:
                off = b.add(b.mul(cc, i64(plane), name="cw.off"), i, name="cw.i")
                v = load(b, image, off, wd, "xc")
                b.store(b.fadd(b.load(acc_slot, name="sq"), b.fmul(v, v, name="x2"),
                               name="sq2"), acc_slot)
            base = b.fadd(splat(float(a["bias"]), wd),
                          b.fmul(splat(float(a["alpha"] / size), wd),
                                 b.load(acc_slot, name="sqf"), name="scaled"), name="base")
            den = _power(b, base, float(a["beta"]), wd)
            store(b, b.fdiv(load(b, src, i, wd, "x"), den, name="y"), dst, i, "y")
        vec_loop(b, 0, plane, ctx.vw, body, "lrn")


# ----- statistics normalisations: layer_norm, group_norm, lp_norm, mean_variance_norm --------
# Each task is one slice the statistics run over (a row of layer_norm, an (image, group) of
# group_norm, the kept index of mean_variance_norm, a line of lp_norm), given as loops of
# (size, stride) over the slice: the innermost, when contiguous, is a `<vw x float>` loop with a
# vector accumulator and a scalar tail. Mean and variance are two passes (the variance of
# x - mean), then a third pass writes the output.
Dims = list[tuple[int, int]]


def _loops(b: ir.IRBuilder, dims: Dims, vw: int, body, name: str = "n") -> None:
    """body(offset, width, outer indices) over the slice; the innermost dim vectorised when
    its stride is 1."""
    *outer, (size, stride) = dims
    width = vw if stride == 1 and size >= vw else 1

    def nest(k: int, off: ir.Value, idx: list) -> None:
        if k == len(outer):
            if stride == 1:
                vec_loop(b, 0, size, width, lambda i, wd: body(
                    b.add(off, i, name=f"{name}.at"), wd, idx), f"{name}.v")
            else:
                with for_range(b, 0, size, name=f"{name}.s") as i:
                    body(b.add(off, b.mul(i, i64(stride)), name=f"{name}.at"), 1, idx)
            return
        osize, ostride = outer[k]
        with for_range(b, 0, osize, name=f"{name}{k}") as i:
            nest(k + 1, b.add(off, b.mul(i, i64(ostride)), name=f"{name}{k}.off"), idx + [i])
    nest(0, i64(0), [])


def _sum(b: ir.IRBuilder, src: ir.Value, dims: Dims, vw: int, value, name: str) -> ir.Value:
    """sum of value(x) over the slice: vector accumulator + scalar tail, then a tree sum."""
    width = vw if dims[-1][1] == 1 and dims[-1][0] >= vw else 1
    vacc = entry_alloca(b, ir.VectorType(F32, width), f"{name}.vacc")
    sacc = entry_alloca(b, F32, f"{name}.sacc")
    b.store(splat(0.0, width), vacc)
    b.store(ir.Constant(F32, 0.0), sacc)

    def body(off, wd, idx):
        v = value(load(b, src, off, wd, f"{name}.x"))
        if wd == width:
            b.store(b.fadd(b.load(vacc, name=f"{name}.va"), v, name=f"{name}.va2"), vacc)
        else:
            s = b.extract_element(v, ir.Constant(ir.IntType(32), 0), name=f"{name}.xs")
            b.store(b.fadd(b.load(sacc, name=f"{name}.sa"), s, name=f"{name}.sa2"), sacc)
    _loops(b, dims, vw, body, name)
    return b.fadd(hsum(b, b.load(vacc, name=f"{name}.vf"), f"{name}.h"),
                  b.load(sacc, name=f"{name}.sf"), name=name)


def _mean_var(b: ir.IRBuilder, src: ir.Value, dims: Dims, vw: int) -> tuple[ir.Value, ir.Value]:
    count = ir.Constant(F32, float(math.prod(s for s, _ in dims)))
    mean = b.fdiv(_sum(b, src, dims, vw, lambda v: v, "sum"), count, name="mean")

    def square(v):
        c = b.fsub(v, splat_value(b, mean, v.type.count, "mean.v"), name="xc")
        return b.fmul(c, c, name="xc2")
    var = b.fdiv(_sum(b, src, dims, vw, square, "sq"), count, name="var")
    return mean, var


@emitter("layer_norm", "group_norm")
def emit_layer_group_norm(ctx: EmitContext, node: Node) -> None:
    """layer_norm: a task is one row of dims[axis:], scale and bias vectors along it.
    group_norm: a task is one (image, group), contiguous; scale and bias per channel."""
    x, y = node.inputs[0], node.outputs[0]
    shape, a = x.type.shape, node.attrs
    if a.get("layout") == "NCHWc":
        _emit_instance_norm_blocked(ctx, node)
        return
    if node.op == "layer_norm":
        rows, length = math.prod(shape[:a["axis"]]), math.prod(shape[a["axis"]:])
        groups, per_group, plane = 1, 1, length
    else:
        groups = a["num_groups"]
        rows, per_group = shape[0] * groups, shape[1] // groups
        plane = math.prod(shape[2:])
        length = per_group * plane
    eps = ir.Constant(F32, float(a["epsilon"]))
    with ctx.task(node, rows, 8 * x.type.size) as (b, env, t):
        off = b.mul(t, i64(length), name="row")
        src = gep(b, ctx.ptr(b, env, x, "in"), off, "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), off, "dst")
        mean, var = _mean_var(b, src, [(length, 1)], ctx.vw)
        inv = b.fdiv(ir.Constant(F32, 1.0), intrinsic(b, "llvm.sqrt", [b.fadd(var, eps)], "sd"),
                     name="inv")
        scale = ctx.ptr(b, env, node.inputs[1], "scale")
        bias = ctx.ptr(b, env, node.inputs[2], "bias") if len(node.inputs) > 2 else None
        if node.op == "layer_norm":
            def body(i, wd, idx):
                v = b.fsub(load(b, src, i, wd, "x"), splat_value(b, mean, wd, "m"), name="xc")
                v = b.fmul(b.fmul(v, splat_value(b, inv, wd, "iv"), name="xn"),
                           load(b, scale, i, wd, "g"), name="xs")
                if bias is not None:
                    v = b.fadd(v, load(b, bias, i, wd, "bb"), name="y")
                store(b, v, dst, i, "y")
            _loops(b, [(length, 1)], ctx.vw, body, "out")
            if a["stats"]:
                for k, value in ((1, mean), (2, inv)):
                    b.store(value, gep(b, ctx.ptr(b, env, node.outputs[k], f"stat{k}"), t,
                                       f"stat{k}.p"))
            return
        first = b.mul(b.urem(t, i64(groups), name="g"), i64(per_group), name="ch0")

        def channel_body(i, wd, idx):
            ch = b.add(first, idx[0], name="ch")
            g = b.fmul(load_scalar(b, scale, ch, "g"), inv, name="gi")
            v = b.fsub(load(b, src, i, wd, "x"), splat_value(b, mean, wd, "m"), name="xc")
            v = b.fmul(v, splat_value(b, g, wd, "gv"), name="xs")
            store(b, b.fadd(v, splat_value(b, load_scalar(b, bias, ch, "bb"), wd, "bv"),
                            name="y"), dst, i, "y")
        _loops(b, [(per_group, plane), (plane, 1)], ctx.vw, channel_body, "out")


@emitter("lp_norm")
def emit_lp_norm(ctx: EmitContext, node: Node) -> None:
    """A task is one (outer, inner) line along the axis; y = x / norm, 0 where norm is 0."""
    x, y = node.inputs[0], node.outputs[0]
    shape, axis, p = x.type.shape, node.attrs["axis"], node.attrs["p"]
    outer, length, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    dims = [(length, inner)]
    with ctx.task(node, outer * inner, 3 * x.type.size) as (b, env, t):
        o, j = b.udiv(t, i64(inner), name="o"), b.urem(t, i64(inner), name="j")
        base = b.add(b.mul(o, i64(length * inner), name="o.off"), j, name="base")
        src = gep(b, ctx.ptr(b, env, x, "in"), base, "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), base, "dst")
        if p == 1:
            total = _sum(b, src, dims, ctx.vw, lambda v: intrinsic(b, "llvm.fabs", [v], "a"), "n")
        else:
            total = intrinsic(b, "llvm.sqrt", [_sum(b, src, dims, ctx.vw,
                                                    lambda v: b.fmul(v, v, name="x2"), "n")],
                              "norm")
        zero = b.fcmp_ordered("==", total, ir.Constant(F32, 0.0), name="zero")
        inv = b.select(zero, ir.Constant(F32, 0.0),
                       b.fdiv(ir.Constant(F32, 1.0), total, name="inv.d"), name="inv")
        _loops(b, dims, ctx.vw, lambda i, wd, idx: store(
            b, b.fmul(load(b, src, i, wd, "x"), splat_value(b, inv, wd, "iv"), name="y"),
            dst, i, "y"), "out")


@emitter("mean_variance_norm")
def emit_mean_variance_norm(ctx: EmitContext, node: Node) -> None:
    """A task is one index of the kept axes; the statistics loop over the normalised axes
    (the innermost vectorised when it is the contiguous one, as for the default (0, 2, 3))."""
    x, y = node.inputs[0], node.outputs[0]
    kept, reduced = split_runs(merged_runs(x.type.shape, node.attrs["axes"]))
    reduced = reduced or [(1, 1)]  # only unit axes normalised: one element per slice
    with ctx.task(node, math.prod(s for s, _ in kept), 4 * x.type.size) as (b, env, t):
        idx = decompose(b, t, [s for s, _ in kept], "k") if kept else []
        base = dot_index(b, idx, [stride for _, stride in kept], "base")
        src = gep(b, ctx.ptr(b, env, x, "in"), base, "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), base, "dst")
        mean, var = _mean_var(b, src, reduced, ctx.vw)
        den = b.fadd(intrinsic(b, "llvm.sqrt", [var], "sd"), ir.Constant(F32, MVN_EPSILON),
                     name="den")

        def body(i, wd, idx):
            v = b.fsub(load(b, src, i, wd, "x"), splat_value(b, mean, wd, "m"), name="xc")
            store(b, b.fdiv(v, splat_value(b, den, wd, "d"), name="y"), dst, i, "y")
        _loops(b, reduced, ctx.vw, body, "out")


CHANNEL_NORM_CHUNK = 64  # positions per channel_norm task


@emitter("channel_norm")
def emit_channel_norm(ctx: EmitContext, node: Node) -> None:
    """A task is a chunk of positions of one image. NCHW: the vector lanes go along the
    positions and each pass loops over the channels (mean, variance of x - mean, output).
    NCHWc: one position at a time, the channel blocks as `<b x float>` vectors summed and
    reduced; the last block's padding lanes are masked out of the variance."""
    x, scale, bias = node.inputs
    y = node.outputs[0]
    blocked = node.attrs["layout"] == "NCHWc"
    c = node.attrs["channels"]
    n, cb = x.type.shape[:2]
    lanes = x.type.shape[-1] if blocked else 1
    positions = math.prod(x.type.shape[2:-1] if blocked else x.type.shape[2:])
    chunks = -(-positions // CHANNEL_NORM_CHUNK)
    eps = ir.Constant(F32, float(node.attrs["epsilon"]))
    count = ir.Constant(F32, float(c))
    with ctx.task(node, n * chunks, 8 * x.type.size) as (b, env, t):
        image, chunk = b.udiv(t, i64(chunks), name="img"), b.urem(t, i64(chunks), name="chunk")
        start = b.mul(chunk, i64(CHANNEL_NORM_CHUNK), name="p0")
        stop = b.select(b.icmp_signed("<", b.add(start, i64(CHANNEL_NORM_CHUNK)),
                                      i64(positions)),
                        b.add(start, i64(CHANNEL_NORM_CHUNK)), i64(positions), name="p1")
        src = gep(b, ctx.ptr(b, env, x, "in"), b.mul(image, i64(cb * positions * lanes)), "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(image, i64(cb * positions * lanes)), "dst")
        ps, pb = ctx.ptr(b, env, scale, "scale"), ctx.ptr(b, env, bias, "bias")
        if blocked:
            with for_range(b, start, stop, name="p") as p:
                _channel_norm_blocked(b, src, dst, ps, pb, p, cb, positions, lanes, c, eps)
            return

        def body(p, wd):
            def over_channels(fn, name):
                acc = entry_alloca(b, ir.VectorType(F32, wd), f"{name}{wd}")
                b.store(splat(0.0, wd), acc)
                with for_range(b, 0, c, name=f"{name}.c") as ch:
                    v = load(b, src, b.add(b.mul(ch, i64(positions)), p), wd, f"{name}.x")
                    b.store(b.fadd(b.load(acc), fn(v), name=f"{name}.a"), acc)
                return b.load(acc, name=f"{name}.sum")
            mean = b.fdiv(over_channels(lambda v: v, "m"), splat_value(b, count, wd, "n"),
                          name="mean")

            def square(v):
                d = b.fsub(v, mean, name="xc")
                return b.fmul(d, d, name="xc2")
            var = b.fdiv(over_channels(square, "v"), splat_value(b, count, wd, "n2"), name="var")
            inv = b.fdiv(splat(1.0, wd), intrinsic(b, "llvm.sqrt", [
                b.fadd(var, splat_value(b, eps, wd, "eps"))], "sd"), name="inv")
            with for_range(b, 0, c, name="o.c") as ch:
                at = b.add(b.mul(ch, i64(positions)), p, name="at")
                v = b.fmul(b.fsub(load(b, src, at, wd, "x"), mean), inv, name="xn")
                v = b.fmul(v, splat_value(b, load_scalar(b, ps, ch, "g"), wd, "gv"), name="xs")
                store(b, b.fadd(v, splat_value(b, load_scalar(b, pb, ch, "bb"), wd, "bv"),
                                name="y"), dst, at, "y")
        vec_loop(b, start, stop, ctx.vw, body, "pos")


def _channel_norm_blocked(b: ir.IRBuilder, src, dst, ps, pb, p, cb: int, positions: int,
                          lanes: int, c: int, eps: ir.Value) -> None:
    """One position of a blocked channel_norm: its channels are cb vectors of `lanes`."""
    real_last = c - (cb - 1) * lanes  # real lanes of the last block
    mask = ir.Constant(ir.VectorType(F32, lanes), [1.0 if i < real_last else 0.0
                                                    for i in range(lanes)])
    acc = entry_alloca(b, ir.VectorType(F32, lanes), "acc")

    def at(k):
        return b.mul(b.add(b.mul(k, i64(positions)), p), i64(lanes), name="at")

    def over_blocks(fn, name):
        b.store(splat(0.0, lanes), acc)
        with for_range(b, 0, cb, name=f"{name}.cb") as k:
            v = fn(load(b, src, at(k), lanes, f"{name}.x"), k)
            b.store(b.fadd(b.load(acc), v, name=f"{name}.a"), acc)
        return hsum(b, b.load(acc, name=f"{name}.v"), f"{name}.h")
    count = ir.Constant(F32, float(c))
    mean = b.fdiv(over_blocks(lambda v, k: v, "m"), count, name="mean")
    mean_v = splat_value(b, mean, lanes, "mean.v")

    def square(v, k):
        d = b.fsub(v, mean_v, name="xc")
        sq = b.fmul(d, d, name="xc2")
        if real_last == lanes:
            return sq
        last = b.icmp_signed("==", k, i64(cb - 1), name="last")
        return b.select(last, b.fmul(sq, mask, name="masked"), sq, name="sq")
    var = b.fdiv(over_blocks(square, "v"), count, name="var")
    inv = b.fdiv(ir.Constant(F32, 1.0), intrinsic(b, "llvm.sqrt", [b.fadd(var, eps)], "sd"),
                 name="inv")
    inv_v = splat_value(b, inv, lanes, "inv.v")
    with for_range(b, 0, cb, name="o.cb") as k:
        v = b.fmul(b.fsub(load(b, src, at(k), lanes, "x"), mean_v), inv_v, name="xn")
        first = b.mul(k, i64(lanes), name="ch0")
        v = b.fmul(v, load(b, ps, first, lanes, "g"), name="xs")
        store(b, b.fadd(v, load(b, pb, first, lanes, "bb"), name="y"), dst, at(k), "y")


def _emit_instance_norm_blocked(ctx: EmitContext, node: Node) -> None:
    """A blocked instance norm: a task is one (image, channel block); the statistics of the
    block's channels are `<b x float>` vectors summed over the positions (lane = channel)."""
    x, scale, bias = node.inputs
    y = node.outputs[0]
    n, cb, lanes = x.type.shape[0], x.type.shape[1], x.type.shape[-1]
    positions = math.prod(x.type.shape[2:-1])
    count = splat(float(positions), lanes)
    eps = splat(float(node.attrs["epsilon"]), lanes)
    with ctx.task(node, n * cb, 6 * x.type.size) as (b, env, t):
        off = b.mul(t, i64(positions * lanes), name="plane")
        src = gep(b, ctx.ptr(b, env, x, "in"), off, "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), off, "dst")
        first = b.mul(b.urem(t, i64(cb), name="k"), i64(lanes), name="ch0")
        acc = entry_alloca(b, ir.VectorType(F32, lanes), "acc")

        def over_positions(fn, name):
            b.store(splat(0.0, lanes), acc)
            with for_range(b, 0, positions, name=f"{name}.p") as p:
                v = load(b, src, b.mul(p, i64(lanes)), lanes, f"{name}.x")
                b.store(b.fadd(b.load(acc), fn(v), name=f"{name}.a"), acc)
            return b.load(acc, name=f"{name}.sum")
        mean = b.fdiv(over_positions(lambda v: v, "m"), count, name="mean")

        def square(v):
            d = b.fsub(v, mean, name="xc")
            return b.fmul(d, d, name="xc2")
        var = b.fdiv(over_positions(square, "v"), count, name="var")
        inv = b.fdiv(splat(1.0, lanes), intrinsic(b, "llvm.sqrt", [b.fadd(var, eps)], "sd"),
                     name="inv")
        g = b.fmul(inv, load(b, ctx.ptr(b, env, scale, "scale"), first, lanes, "g"), name="gi")
        bb = load(b, ctx.ptr(b, env, bias, "bias"), first, lanes, "bb")
        with for_range(b, 0, positions, name="o.p") as p:
            at = b.mul(p, i64(lanes), name="at")
            v = b.fmul(b.fsub(load(b, src, at, lanes, "x"), mean), g, name="xs")
            store(b, b.fadd(v, bb, name="y"), dst, at, "y")
