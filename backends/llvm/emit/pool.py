"""Pooling: max / avg / sum / Lp windows (1-D/2-D/3-D, ceil_mode, dilation, count_include_pad) and
the global pools, on NCHW or the blocked NCHWc layout.

A task is one output row (n, c, od, oh); avg divides by the per-pixel count, a product of
per-dimension counts computed at compile time.
- NCHW: the row is initialised (max: the lowest float, as onnxruntime; or 0), each kernel tap inside the image combines a shifted
  input row into it: one contiguous `<vw x float>` loop over the output width when the width
  stride is 1, else a scalar loop.
- NCHWc: an element is a `<blk x float>` vector, and each output pixel's window is reduced in
  a register, then stored once: no re-reading of the output row per tap, which made the
  strided pools (2x2 / 3x3, stride 2) load-store bound. The valid kernel rows of the task's
  row are constants, or come from a table where some rows meet the padding; the valid kernel
  columns of the border pixels are static.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from graphcnn.ir import Node
from graphcnn.ops import POOL_OPS
from graphcnn.ops.pool import adaptive_bins

from ..builder import (
    F32,
    const_table,
    decompose,
    entry_alloca,
    fmax,
    for_range,
    gep,
    hreduce,
    hsum,
    i64,
    intrinsic,
    linear,
    load,
    load_table,
    splat,
    splat_value,
    store,
    vec_loop,
    vec_type,
    window_index,
)
from .base import EmitContext, emitter
from .conv import as_3d, valid_range

MAX_INIT = float(np.finfo(np.float32).min)  # a max window starts here (graphcnn/ops/pool.py)


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


@emitter(*(name for name, p in POOL_OPS.items() if not p.is_global))
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
    kind = POOL_OPS[node.op].reduce
    is_max = kind == "max"
    vw = ctx.vw

    def combine(b: ir.IRBuilder, acc: ir.Value, v: ir.Value, name: str) -> ir.Value:
        if is_max:
            return fmax(b, acc, v, name)
        return b.fadd(acc, lp_power(b, v, a["p"], name) if kind == "lp" else v, name=name)

    if kind == "avg":
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
    if blocked:
        geometry = _Windows((dd, hh, ww), (od, oh, ow), (kd, kh, kw), (sd, sh, sw), (pd, ph, pw),
                            (ld, lh, lw))
        _emit_blocked(ctx, node, geometry, blk, combine, MAX_INIT if is_max else 0.0,
                      (tab_dh, tab_w) if kind == "avg" else None,
                      (lambda b, v: lp_root(b, v, a["p"], "root")) if kind == "lp" else None)
        return
    with ctx.task(node, n * c * od * oh, work) as (b, env, t):
        tn_c, tod, toh = decompose(b, t, [n * c, od, oh], "t")
        px = ctx.ptr(b, env, x, "in")
        po = ctx.ptr(b, env, y, "out")
        row = gep(b, po, b.mul(t, i64(row_len), name="row.off"), "row")
        init = MAX_INIT if is_max else 0.0
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
        if kind == "avg":
            dh = b.add(b.mul(tod, i64(oh), name="dh.d"), toh, name="dh")
            f_dh = b.load(b.gep(tab_dh, [i64(0), dh], name="cdh.p"), name="cdh")

            def divide(i, wd):
                cw = load(b, b.bitcast(b.gep(tab_w, [i64(0), i64(0)], name="cw.base"),
                                       F32.as_pointer(), name="cw.fp"), i, wd, "cw")
                cnt = b.fmul(cw, splat_value(b, f_dh, wd, "cdh.v"), name="cnt")
                store(b, b.fdiv(load(b, row, i, wd, "tot"), cnt, name="avg"), row, i, "avg")
            vec_loop(b, 0, row_len, vw, divide, "div")
        if kind == "lp":
            vec_loop(b, 0, row_len, vw, lambda i, wd: store(
                b, lp_root(b, load(b, row, i, wd, "tot"), a["p"], "root"), row, i, "lp"), "root")


def lp_power(b: ir.IRBuilder, v: ir.Value, p: int, name: str) -> ir.Value:
    """|v| ** p for a positive integer p, by multiplications."""
    m = intrinsic(b, "llvm.fabs", [v], f"{name}.abs")
    out = m
    for _ in range(p - 1):
        out = b.fmul(out, m, name=f"{name}.pow")
    return out


def lp_root(b: ir.IRBuilder, v: ir.Value, p: int, name: str) -> ir.Value:
    """v ** (1 / p): nothing for p = 1, a square root for 2, llvm.pow otherwise."""
    if p == 1:
        return v
    if p == 2:
        return intrinsic(b, "llvm.sqrt", [v], name)
    width = v.type.count if isinstance(v.type, ir.VectorType) else 0
    exp = splat(1.0 / p, width) if width else ir.Constant(F32, 1.0 / p)
    return intrinsic(b, "llvm.pow", [v, exp], name)


@dataclass(frozen=True)
class _Windows:
    """A pool's 3-D geometry (1-D/2-D pools have leading unit dims)."""

    size: tuple[int, int, int]
    out: tuple[int, int, int]
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int]
    pad: tuple[int, int, int]  # begins
    dilation: tuple[int, int, int]

    def taps(self, axis: int, o: int) -> list[int]:
        """The kernel taps of output index `o` along `axis` that land inside the input (a
        contiguous run: the input index grows with the tap)."""
        return [k for k in range(self.kernel[axis]) if 0 <= o * self.stride[axis]
                - self.pad[axis] + k * self.dilation[axis] < self.size[axis]]

    def tap_ranges(self, axis: int) -> list[int]:
        """Flattened [lo, hi) of `taps` per output index of `axis`."""
        table = []
        for o in range(self.out[axis]):
            ok = self.taps(axis, o)
            table += [ok[0], ok[-1] + 1] if ok else [0, 0]
        return table

    def columns(self, o: int) -> list[int]:
        return self.taps(2, o)


def _emit_blocked(ctx: EmitContext, node: Node, g: _Windows, blk: int, combine: Callable,
                  init: float, avg_tables: tuple | None, finish: Callable | None = None
                  ) -> None:
    x, y = node.inputs[0], node.outputs[0]
    (dd, hh, ww), (od, oh, ow) = g.size, g.out
    full = list(range(g.kernel[2]))
    interior = [o for o in range(ow) if g.columns(o) == full]
    lo, hi = (interior[0], interior[-1] + 1) if interior else (0, 0)
    n_c = x.type.shape[0] * x.type.shape[1]
    with ctx.task(node, n_c * od * oh, y.type.size * math.prod(g.kernel)) as (b, env, t):
        tn_c, tod, toh = decompose(b, t, [n_c, od, oh], "t")
        kd_lo, kd_hi = _tap_range(ctx, b, node, g, 0, tod)
        kh_lo, kh_hi = _tap_range(ctx, b, node, g, 1, toh)
        in_ch = gep(b, ctx.ptr(b, env, x, "in"), b.mul(tn_c, i64(dd * hh * ww * blk)), "in_ch")
        row = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(ow * blk), name="row.off"), "row")
        acc = entry_alloca(b, vec_type(blk), "acc")
        if avg_tables is not None:
            tab_dh, tab_w = avg_tables
            dh = b.add(b.mul(tod, i64(oh)), toh, name="dh")
            count_dh = b.load(b.gep(tab_dh, [i64(0), dh], name="cdh.p"), name="cdh")

        def window_rows(in_d: ir.Value, o: ir.Value, columns: list[int]) -> None:
            with for_range(b, kh_lo, kh_hi, name="kh") as kh:
                ih = linear(b, "ih", (toh, g.stride[1]), (kh, g.dilation[1]), const=-g.pad[1])
                in_row = gep(b, in_ch, linear(b, "in_row", (in_d, hh * ww * blk),
                                              (ih, ww * blk)), "in_row")
                first = linear(b, "iw", (o, g.stride[2] * blk), const=-g.pad[2] * blk)
                value = b.load(acc, name="acc.v")
                for k in columns:
                    tap = load(b, in_row, b.add(first, i64(k * g.dilation[2] * blk)), blk,
                               f"x{k}")
                    value = combine(b, value, tap, f"c{k}")
                b.store(value, acc)

        def pixel(o: ir.Value, columns: list[int]) -> None:
            b.store(splat(init, blk), acc)
            with for_range(b, kd_lo, kd_hi, name="kd") as kd:  # 1-D/2-D pools: one depth
                window_rows(linear(b, "id", (tod, g.stride[0]), (kd, g.dilation[0]),
                                   const=-g.pad[0]), o, columns)
            value = b.load(acc, name="win")
            if avg_tables is not None:
                count_w = b.load(b.gep(tab_w, [i64(0), b.mul(o, i64(blk))], name="cw.p"),
                                 name="cw")
                count = b.fmul(count_dh, count_w, name="cnt")
                value = b.fdiv(value, splat_value(b, count, blk, "cnt.v"), name="avg")
            if finish is not None:
                value = finish(b, value)
            store(b, value, row, b.mul(o, i64(blk), name="o.off"), "y")

        for o in range(lo):  # left border pixels, then the interior loop, then the right ones
            pixel(i64(o), g.columns(o))
        with for_range(b, lo, hi, name="ow") as o:
            pixel(o, full)
        for o in range(max(hi, lo), ow):
            pixel(i64(o), g.columns(o))


def _tap_range(ctx: EmitContext, b: ir.IRBuilder, node: Node, g: _Windows, axis: int,
               out: ir.Value) -> tuple[ir.Value, ir.Value]:
    """The kernel taps of output index `out` along `axis` inside the input: constants when no
    output index meets the padding (then LLVM sees the trip count), else from a table."""
    taps = g.tap_ranges(axis)
    if len(set(zip(taps[::2], taps[1::2]))) == 1:
        return i64(taps[0]), i64(taps[1])
    table = const_table(ctx.module, f"{node.name}.taps{axis}", taps)
    return tuple(load_table(b, table, linear(b, f"tap{axis}.{i}", (out, 2), const=i),
                            f"k{axis}.{i}") for i in range(2))


@emitter(*(name for name, p in POOL_OPS.items() if p.is_global))
def emit_global_pool(ctx: EmitContext, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    blocked = node.attrs["layout"] == "NCHWc"
    blk = x.type.shape[-1] if blocked else 1
    xs = x.type.shape[:-1] if blocked else x.type.shape
    n, c = xs[:2]
    spatial = int(np.prod(xs[2:]))
    kind = POOL_OPS[node.op].reduce
    is_max = kind == "max"
    p = node.attrs.get("p", 1)
    vw = ctx.vw
    with ctx.task(node, n * c, x.type.size) as (b, env, t):
        src = gep(b, ctx.ptr(b, env, x, "in"), b.mul(t, i64(spatial * blk), name="src.off"),
                  "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(blk), name="dst.off"), "dst")
        if blk == 1:
            _reduce_contiguous(b, src, dst, spatial, kind, vw, p)
            return_scale = None
        else:
            init = float("-inf") if is_max else 0.0
            vec_loop(b, 0, blk, vw, lambda i, wd: store(b, splat(init, wd), dst, i, "init"), "i")
            with for_range(b, 0, spatial, name="s") as s:
                base = b.mul(s, i64(blk), name="s.off")

                def body(i, wd):
                    v = load(b, src, b.add(base, i, name="x.o"), wd, "x")
                    if kind == "lp":
                        v = lp_power(b, v, p, "xp")
                    acc = load(b, dst, i, wd, "acc")
                    store(b, fmax(b, acc, v, "m") if is_max else b.fadd(acc, v, name="a"),
                          dst, i, "acc")
                vec_loop(b, 0, blk, vw, body, "blk")
            return_scale = blk
        if kind == "lp" and return_scale:
            vec_loop(b, 0, blk, vw, lambda i, wd: store(
                b, lp_root(b, load(b, dst, i, wd, "tot"), p, "root"), dst, i, "lp"), "root")
        elif not is_max and return_scale:
            vec_loop(b, 0, blk, vw, lambda i, wd: store(
                b, b.fdiv(load(b, dst, i, wd, "tot"), splat(float(spatial), wd), name="mean"),
                dst, i, "mean"), "div")


def _reduce_contiguous(b: ir.IRBuilder, src: ir.Value, dst: ir.Value, count: int, kind: str,
                       vw: int, p: int = 1) -> None:
    """dst[0] = max, mean or Lp norm of src[0:count]: vector accumulator, then a horizontal
    reduce."""
    is_max = kind == "max"
    init = float("-inf") if is_max else 0.0
    width = vw if count >= vw else 1
    acc_slot = entry_alloca(b, ir.VectorType(F32, width), "acc.slot")
    tail_slot = entry_alloca(b, F32, "tail.slot")
    b.store(splat(init, width), acc_slot)
    b.store(ir.Constant(F32, init), tail_slot)

    def body(i, wd):
        v = load(b, src, i, wd, "x")
        if kind == "lp":
            v = lp_power(b, v, p, "xp")
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
        total = lp_root(b, total, p, "root") if kind == "lp" else \
            b.fdiv(total, ir.Constant(F32, float(count)), name="mean")
    b.store(total, dst)


@emitter("adaptive_avg_pool")
def emit_adaptive_avg_pool(ctx: EmitContext, node: Node) -> None:
    """A task is one output row (n, c, od, oh); each output pixel sums its bin (the bin bounds
    per axis from constant tables) into one vector: the block's lanes on NCHWc, one lane on
    NCHW, and divides by the bin's cell count."""
    x, y = node.inputs[0], node.outputs[0]
    blocked = node.attrs["layout"] == "NCHWc"
    blk = x.type.shape[-1] if blocked else 1
    xs = x.type.shape[:-1] if blocked else x.type.shape
    nd = len(xs) - 2
    n_c = x.type.shape[0] * x.type.shape[1]
    size = as_3d(xs[2:], nd, 1)
    out = as_3d(tuple(node.attrs["output_size"]), nd, 1)
    tables = [const_table(ctx.module, f"{node.name}.bins{i}",
                          [v for bin_ in adaptive_bins(s, o) for v in bin_])
              for i, (s, o) in enumerate(zip(size, out))]
    (dd, hh, ww), (od, oh, ow) = size, out
    with ctx.task(node, n_c * od * oh, x.type.size) as (b, env, t):
        tn_c, tod, toh = decompose(b, t, [n_c, od, oh], "t")

        def bounds(axis: int, o: ir.Value) -> tuple[ir.Value, ir.Value]:
            return tuple(load_table(b, tables[axis], linear(b, f"b{axis}.{i}", (o, 2), const=i),
                                    f"k{axis}.{i}") for i in range(2))
        (d0, d1), (h0, h1) = bounds(0, tod), bounds(1, toh)
        in_ch = gep(b, ctx.ptr(b, env, x, "in"), b.mul(tn_c, i64(dd * hh * ww * blk)), "in_ch")
        row = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(ow * blk), name="row.off"), "row")
        acc = entry_alloca(b, vec_type(blk), "acc")
        with for_range(b, 0, ow, name="ow") as o:
            w0, w1 = bounds(2, o)
            b.store(splat(0.0, blk), acc)
            with for_range(b, d0, d1, name="d") as d, for_range(b, h0, h1, name="h") as h:
                line = gep(b, in_ch, linear(b, "line", (d, hh * ww * blk), (h, ww * blk)), "line")
                with for_range(b, w0, w1, name="w") as w:
                    v = load(b, line, b.mul(w, i64(blk), name="w.off"), blk, "x")
                    b.store(b.fadd(b.load(acc, name="a"), v, name="a2"), acc)
            cells = b.mul(b.mul(b.sub(d1, d0), b.sub(h1, h0)), b.sub(w1, w0), name="cells")
            count = b.sitofp(cells, F32, name="count")
            store(b, b.fdiv(b.load(acc, name="sum"), splat_value(b, count, blk, "cnt"),
                            name="avg"), row, b.mul(o, i64(blk), name="o.off"), "y")
