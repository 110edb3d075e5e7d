"""Pooling: max / avg / sum windows (1-D/2-D/3-D, ceil_mode, dilation, count_include_pad) and
the global pools, on NCHW or the blocked NCHWc layout.

Both layouts are one loop nest: an element is `blk` contiguous floats (1 for NCHW, the block
for NCHWc). A task is one output row (n, c, od, oh); the row is initialised (-inf or 0), each
kernel tap inside the image combines a shifted input row into it — one contiguous
`<vw x float>` loop over (output width x blk) when the width stride is 1, else a vector loop
over the block per output pixel — and avg divides by the per-pixel count, a product of
per-dimension counts computed at compile time.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from graphcnn.ir import Node

from ..kernels._emit import F32, entry_alloca, for_range, i64, splat
from .base import (
    EmitContext,
    decompose,
    emitter,
    fmax,
    gep,
    hreduce,
    hsum,
    load,
    splat_value,
    store,
    vec_loop,
    window_index,
)
from .conv import as_3d, valid_range


def _counts(out: int, size: int, k: int, s: int, p0: int, p1: int, d: int, include_pad: bool
            ) -> list[int]:
    """Cells of each window that count for the average (in the input, or input + pads)."""
    lo, hi = (-p0, size + p1) if include_pad else (0, size)
    return [sum(1 for t in range(k) if lo <= o * s - p0 + t * d < hi) for o in range(out)]


def _table(ctx: EmitContext, name: str, values, ty=F32) -> ir.GlobalVariable:
    arr_ty = ir.ArrayType(ty, len(values))
    g = ir.GlobalVariable(ctx.module, arr_ty, ctx.module.get_unique_name(name))
    g.linkage = "internal"
    g.global_constant = True
    g.initializer = ir.Constant(arr_ty, [float(v) for v in values])
    return g


@emitter("max_pool", "avg_pool", "sum_pool")
def emit_pool(ctx: EmitContext, node: Node) -> None:
    a = node.attrs
    x, y = node.inputs[0], node.outputs[0]
    blocked = a["layout"] == "NCHWc"
    blk = x.type.shape[-1] if blocked else 1
    xs = x.type.shape[:-1] if blocked else x.type.shape
    ys = y.type.shape[:-1] if blocked else y.type.shape
    nd = len(xs) - 2
    n, c = xs[:2]
    dd, hh, ww = as_3d(xs[2:], nd, 1)
    od, oh, ow = as_3d(ys[2:], nd, 1)
    kd, kh, kw = as_3d(a["kernel_shape"], nd, 1)
    sd, sh, sw = as_3d(a["strides"], nd, 1)
    pd, ph, pw = as_3d(a["pads"][:nd], nd, 0)
    ed, eh, ew = as_3d(a["pads"][nd:], nd, 0)
    ld, lh, lw = as_3d(a["dilations"], nd, 1)
    is_max = node.op == "max_pool"
    vw = ctx.vw

    def combine(b: ir.IRBuilder, acc: ir.Value, v: ir.Value, name: str) -> ir.Value:
        return fmax(b, acc, v, name) if is_max else b.fadd(acc, v, name=name)

    if node.op == "avg_pool":
        inc = a["count_include_pad"]
        cnt_d = _counts(od, dd, kd, sd, pd, ed, ld, inc)
        cnt_h = _counts(oh, hh, kh, sh, ph, eh, lh, inc)
        cnt_w = _counts(ow, ww, kw, sw, pw, ew, lw, inc)
        tab_dh = _table(ctx, f"{node.name}.cnt_dh",
                        [max(u * v, 0) for u in cnt_d for v in cnt_h])
        tab_w = _table(ctx, f"{node.name}.cnt_w",
                       np.repeat(np.maximum(cnt_w, 0), blk).tolist())
    row_len = ow * blk
    work = y.type.size * kd * kh * kw
    with ctx.task(node, n * c * od * oh, work) as (b, env, t):
        tn_c, tod, toh = decompose(b, t, [n * c, od, oh], "t")
        px = ctx.ptr(b, env, x, "in")
        po = ctx.ptr(b, env, y, "out")
        row = gep(b, po, b.mul(t, i64(row_len), name="row.off"), "row")
        init = float("-inf") if is_max else 0.0
        vec_loop(b, 0, row_len, vw, lambda i, wd: store(b, splat(init, wd), row, i, "init"),
                 "init")
        in_ch = gep(b, px, b.mul(tn_c, i64(dd * hh * ww * blk), name="inch.off"), "in_ch")
        with for_range(b, 0, kd, name="kd") as tkd:
            idd, ok_d = window_index(b, tod, tkd, sd, ld, pd, dd, "id")
            with b.if_then(ok_d), for_range(b, 0, kh, name="kh") as tkh:
                ih, ok_h = window_index(b, toh, tkh, sh, lh, ph, hh, "ih")
                with b.if_then(ok_h):
                    in_row = gep(b, in_ch, b.mul(b.add(b.mul(idd, i64(hh), name="idh"), ih,
                                                       name="idhi"), i64(ww * blk),
                                                 name="inrow.off"), "in_row")
                    for k in range(kw):
                        off0 = k * lw - pw
                        lo, hi = valid_range(ow, ww, sw, off0)
                        if lo >= hi:
                            continue
                        if sw == 1:
                            def body(i, wd, k=k, off0=off0):
                                v = load(b, in_row, b.add(i, i64(off0 * blk), name=f"x{k}.o"),
                                         wd, f"x{k}")
                                acc = load(b, row, i, wd, f"a{k}")
                                store(b, combine(b, acc, v, f"c{k}"), row, i, f"s{k}")
                            vec_loop(b, lo * blk, hi * blk, vw, body, f"kw{k}")
                        else:
                            with for_range(b, lo, hi, name=f"ow{k}") as o:
                                xo = b.mul(b.add(b.mul(o, i64(sw), name=f"x{k}.os"),
                                                 i64(off0), name=f"x{k}.pix"), i64(blk),
                                           name=f"x{k}.o")
                                ro = b.mul(o, i64(blk), name=f"r{k}.o")

                                def body(i, wd, k=k, xo=xo, ro=ro):
                                    v = load(b, in_row, b.add(xo, i, name=f"x{k}.i"), wd,
                                             f"x{k}")
                                    ri = b.add(ro, i, name=f"r{k}.i")
                                    acc = load(b, row, ri, wd, f"a{k}")
                                    store(b, combine(b, acc, v, f"c{k}"), row, ri, f"s{k}")
                                vec_loop(b, 0, blk, vw, body, f"blk{k}")
        if node.op == "avg_pool":
            dh = b.add(b.mul(tod, i64(oh), name="dh.d"), toh, name="dh")
            f_dh = b.load(b.gep(tab_dh, [i64(0), dh], name="cdh.p"), name="cdh")

            def divide(i, wd):
                cw = load(b, b.bitcast(b.gep(tab_w, [i64(0), i64(0)], name="cw.base"),
                                       F32.as_pointer(), name="cw.fp"), i, wd, "cw")
                cnt = b.fmul(cw, splat_value(b, f_dh, wd, "cdh.v"), name="cnt")
                store(b, b.fdiv(load(b, row, i, wd, "tot"), cnt, name="avg"), row, i, "avg")
            vec_loop(b, 0, row_len, vw, divide, "div")


@emitter("global_avg_pool", "global_max_pool")
def emit_global_pool(ctx: EmitContext, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    blocked = node.attrs["layout"] == "NCHWc"
    blk = x.type.shape[-1] if blocked else 1
    xs = x.type.shape[:-1] if blocked else x.type.shape
    n, c = xs[:2]
    spatial = int(np.prod(xs[2:]))
    is_max = node.op == "global_max_pool"
    vw = ctx.vw
    with ctx.task(node, n * c, x.type.size) as (b, env, t):
        src = gep(b, ctx.ptr(b, env, x, "in"), b.mul(t, i64(spatial * blk), name="src.off"),
                  "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(blk), name="dst.off"), "dst")
        if blk == 1:
            _reduce_contiguous(b, src, dst, spatial, is_max, vw)
            return_scale = None
        else:
            init = float("-inf") if is_max else 0.0
            vec_loop(b, 0, blk, vw, lambda i, wd: store(b, splat(init, wd), dst, i, "init"), "i")
            with for_range(b, 0, spatial, name="s") as s:
                base = b.mul(s, i64(blk), name="s.off")

                def body(i, wd):
                    v = load(b, src, b.add(base, i, name="x.o"), wd, "x")
                    acc = load(b, dst, i, wd, "acc")
                    store(b, fmax(b, acc, v, "m") if is_max else b.fadd(acc, v, name="a"),
                          dst, i, "acc")
                vec_loop(b, 0, blk, vw, body, "blk")
            return_scale = blk
        if not is_max and return_scale:
            vec_loop(b, 0, blk, vw, lambda i, wd: store(
                b, b.fdiv(load(b, dst, i, wd, "tot"), splat(float(spatial), wd), name="mean"),
                dst, i, "mean"), "div")


def _reduce_contiguous(b: ir.IRBuilder, src: ir.Value, dst: ir.Value, count: int, is_max: bool,
                       vw: int) -> None:
    """dst[0] = max or mean of src[0:count]: vector accumulator, then a horizontal reduce."""
    init = float("-inf") if is_max else 0.0
    width = vw if count >= vw else 1
    acc_slot = entry_alloca(b, ir.VectorType(F32, width), "acc.slot")
    tail_slot = entry_alloca(b, F32, "tail.slot")
    b.store(splat(init, width), acc_slot)
    b.store(ir.Constant(F32, init), tail_slot)

    def body(i, wd):
        v = load(b, src, i, wd, "x")
        slot = acc_slot if wd == width else None
        if slot is None:  # tail lane
            acc = b.load(tail_slot, name="tacc")
            s = b.extract_element(v, ir.Constant(ir.IntType(32), 0), name="xs")
            b.store(fmax(b, acc, s, "tm") if is_max else b.fadd(acc, s, name="ta"), tail_slot)
            return
        acc = b.load(slot, name="vacc")
        b.store(fmax(b, acc, v, "vm") if is_max else b.fadd(acc, v, name="va"), slot)
    vec_loop(b, 0, count, width, body, "red")
    vacc = b.load(acc_slot, name="vacc.final")
    tail = b.load(tail_slot, name="tail.final")
    if is_max:
        total = fmax(b, hreduce(b, vacc, lambda x, y: fmax(b, x, y, "hm"), "h"), tail, "max")
    else:
        total = b.fadd(hsum(b, vacc, "h"), tail, name="sum")
        total = b.fdiv(total, ir.Constant(F32, float(count)), name="mean")
    b.store(total, dst)
