"""Resampling kernels: resize (any rank, NCHW or blocked NCHW[b]c) and pad in the reflect, edge
and wrap modes. (conv_transpose, depth_to_space and space_to_depth are rewritten into convs and
copies by passes/lower_spatial.py before emission.)

Both read per-axis tables computed at compile time from the op's own definition
(ops.spatial.resize_taps, ops.tensor.pad_sources) and stored in the weights arena, so the
kernels and the reference cannot disagree on a coordinate.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from llvmlite import ir

from graphcnn.ir import Node
from graphcnn.ops.spatial import resize_taps
from graphcnn.ops.tensor import pad_sources

from ..builder import (
    F32,
    I64,
    decompose,
    dot_index,
    fma,
    for_range,
    gep,
    i64,
    load,
    splat,
    splat_value,
    store,
    strides_of,
    vec_loop,
)
from .base import EmitContext, emitter


def _table(ctx: EmitContext, b: ir.IRBuilder, data: np.ndarray, name: str, ty: ir.Type
           ) -> ir.Value:
    return ctx.weights_ptr(b, ctx.add_weights(data), name, ty)


def _lookup(b: ir.IRBuilder, table: ir.Value, index: ir.Value, name: str) -> ir.Value:
    return b.load(b.gep(table, [index], name=f"{name}.p"), name=name)


@emitter("resize")
def emit_resize(ctx: EmitContext, node: Node) -> None:
    """A task is one output row: every index of the axes before the last resized axis L. Its
    taps on those axes (products of their weights, offsets summed) are unrolled; along L each
    output cell sums T_L taps of every such combination, each tap a vector over the contiguous
    axes after L (the block lanes of a blocked tensor, one value in NCHW)."""
    x, y = node.inputs[0], node.outputs[0]
    xs, ys = x.type.shape, y.type.shape
    a = node.attrs
    taps = [resize_taps(a, axis, xs[axis]) for axis in range(len(xs))]
    resized = [i for i, t in enumerate(taps) if t is not None]
    last = resized[-1] if resized else len(xs) - 1
    if taps[last] is None:  # nothing resized: an identity copy along the last axis
        taps[last] = (np.arange(xs[last])[:, None], np.ones((xs[last], 1)),
                      np.zeros(xs[last], bool))
    inner = math.prod(ys[last + 1:])
    in_strides = strides_of(xs)
    outer = ys[:last]
    extrapolate = any(t is not None and t[2].any() for t in taps)
    fill = float(a["extrapolation_value"])
    width = min(ctx.vw, inner) if inner >= 4 else 1
    with ctx.task(node, math.prod(outer), y.type.size * 4) as (b, env, t):
        idx = decompose(b, t, outer, "o") if outer else []
        src = ctx.ptr(b, env, x, "in")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(ys[last] * inner), name="row"),
                  "dst")
        outside: ir.Value = ir.Constant(ir.IntType(1), 0)
        # per outer axis: [(offset, weight or None)] over its taps
        per_axis = []
        for d, o in enumerate(idx):
            if taps[d] is None:
                per_axis.append([(b.mul(o, i64(in_strides[d]), name=f"a{d}.off"), None)])
                continue
            ti, tw, to = taps[d]
            n_taps = ti.shape[1]
            itab = _table(ctx, b, ti.astype(np.int64).reshape(-1), f"a{d}.idx", I64)
            wtab = _table(ctx, b, tw.astype(np.float32).reshape(-1), f"a{d}.w", F32)
            row = b.mul(o, i64(n_taps), name=f"a{d}.row")
            entries = []
            for k in range(n_taps):
                at = b.add(row, i64(k), name=f"a{d}.t{k}")
                off = b.mul(_lookup(b, itab, at, f"a{d}.i{k}"), i64(in_strides[d]),
                            name=f"a{d}.off{k}")
                entries.append((off, _lookup(b, wtab, at, f"a{d}.w{k}") if n_taps > 1
                                else None))
            per_axis.append(entries)
            if to.any():
                otab = _table(ctx, b, to.astype(np.int64), f"a{d}.out", I64)
                flag = b.icmp_signed("!=", _lookup(b, otab, o, f"a{d}.o"), i64(0))
                outside = b.or_(outside, flag, name=f"out{d}")
        combos = []  # (base offset, weight or None) of each tap combination
        for c, choice in enumerate(itertools.product(*per_axis)):
            off = i64(0)
            weight = None
            for e, (o_, w_) in enumerate(choice):
                off = b.add(off, o_, name=f"c{c}.off{e}")
                if w_ is not None:
                    weight = w_ if weight is None else b.fmul(weight, w_, name=f"c{c}.w{e}")
            combos.append((gep(b, src, off, f"c{c}.src"), weight))
        li, lw, lo = taps[last]
        n_last = li.shape[1]
        litab = _table(ctx, b, li.astype(np.int64).reshape(-1), "l.idx", I64)
        lwtab = _table(ctx, b, lw.astype(np.float32).reshape(-1), "l.w", F32)
        lotab = _table(ctx, b, lo.astype(np.int64), "l.out", I64) if lo.any() else None
        with for_range(b, 0, ys[last], name="j") as j:
            row = b.mul(j, i64(n_last), name="l.row")
            cells = []
            for k in range(n_last):
                at = b.add(row, i64(k), name=f"l.t{k}")
                off = b.mul(_lookup(b, litab, at, f"l.i{k}"), i64(in_strides[last]),
                            name=f"l.off{k}")
                cells.append((off, _lookup(b, lwtab, at, f"l.w{k}") if n_last > 1 else None))
            skip = outside
            if lotab is not None:
                flag = b.icmp_signed("!=", _lookup(b, lotab, j, "l.o"), i64(0))
                skip = b.or_(skip, flag, name="skip")
            out_off = b.mul(j, i64(inner), name="l.dst")

            def body(i, wd, cells=cells, out_off=out_off, skip=skip):
                acc = None
                for c, (ptr, cw) in enumerate(combos):
                    for k, (off, kw) in enumerate(cells):
                        v = load(b, ptr, b.add(off, i, name=f"s{c}.{k}"), wd, f"x{c}.{k}")
                        weight = cw if kw is None else kw if cw is None else b.fmul(
                            cw, kw, name=f"w{c}.{k}")
                        if weight is None:
                            acc = v if acc is None else b.fadd(acc, v, name=f"acc{c}.{k}")
                        else:
                            ws = splat_value(b, weight, wd, f"ws{c}.{k}")
                            acc = b.fmul(v, ws, name=f"acc{c}.{k}") if acc is None else fma(
                                b, v, ws, acc, f"acc{c}.{k}")
                if extrapolate:
                    acc = b.select(skip, splat(fill, wd), acc, name="y")
                store(b, acc, dst, b.add(out_off, i, name="d"), "y")
            vec_loop(b, 0, inner, width, body, "lane")


def emit_pad_modes(ctx: EmitContext, node: Node) -> None:
    """reflect / edge / wrap: each output row reads the input row its outer indices map to
    (per-axis source tables); along the last axis the middle part is a contiguous copy, the
    borders read their mirrored / clamped / wrapped cells one by one."""
    x, y = node.inputs[0], node.outputs[0]
    pads, mode = node.attrs["pads"], node.attrs["mode"]
    xs, ys = x.type.shape, y.type.shape
    r = len(xs)
    sources = [pad_sources(xs[d], pads[d], pads[d + r], mode) for d in range(r)]
    in_strides = strides_of(xs)
    outer, inner = ys[:-1], ys[-1]
    last = sources[-1]
    begin = max(0, pads[r - 1])
    # the middle: output j reads input j - begin + crop
    lo, hi = begin, begin + (xs[-1] - max(0, -pads[r - 1]) - max(0, -pads[2 * r - 1]))
    shift = max(0, -pads[r - 1]) - begin
    with ctx.task(node, math.prod(outer), y.type.size) as (b, env, t):
        idx = decompose(b, t, outer, "o") if outer else []
        srcs = []
        for d, o in enumerate(idx):
            if (sources[d] == np.arange(ys[d])).all():
                srcs.append(o)
            else:
                tab = _table(ctx, b, sources[d].astype(np.int64), f"a{d}.src", I64)
                srcs.append(_lookup(b, tab, o, f"s{d}"))
        src = gep(b, ctx.ptr(b, env, x, "in"), dot_index(b, srcs, in_strides[:-1], "src.off"),
                  "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(inner), name="dst.off"), "dst")
        vec_loop(b, lo, hi, ctx.vw, lambda i, wd: store(
            b, load(b, src, b.add(i, i64(shift), name="m"), wd, "x"), dst, i, "y"), "mid")
        border = [j for j in range(inner) if not lo <= j < hi]
        if border:
            tab = _table(ctx, b, last[border].astype(np.int64), "last.src", I64)
            at = _table(ctx, b, np.asarray(border, np.int64), "last.dst", I64)
            with for_range(b, 0, len(border), name="k") as k:
                v = load(b, src, _lookup(b, tab, k, "ks"), 1, "xb")
                store(b, v, dst, _lookup(b, at, k, "kd"), "yb")
