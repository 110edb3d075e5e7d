"""Data movement: transpose, concat, pad, channel_shuffle, and the NCHW <-> NCHW[x]c layout
changes. Transpose and concat move any element type (emit/indexing.py's typed vectors).

(The views — reshape, flatten, squeeze, unsqueeze, identity, dropout — emit nothing: the memory
planner aliases their output to their input's buffer.)
"""
from __future__ import annotations

import math

from llvmlite import ir

from graphcnn.ir import Node
from graphcnn.ops.tensor import channel_shuffle_sources

from ..builder import (
    F32,
    as_i64,
    const_table,
    decompose,
    dot_index,
    for_range,
    gep,
    i64,
    load,
    load_scalar,
    load_table,
    splat,
    store,
    strides_of,
    vec_loop,
)
from .base import EmitContext, emitter
from .indexing import lanes_of, vload, vstore
from .spatial import emit_pad_modes


@emitter("transpose")
def emit_transpose(ctx: EmitContext, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    perm = node.attrs["perm"]
    in_strides = strides_of(x.type.shape)
    # output dims that stay neighbours in the input move together: merge them, so a channel
    # shuffle (N, g, C/g, H, W) -> (N, C/g, g, H, W) copies whole H*W planes
    out_shape, src_strides = [], []  # input stride of each (merged) output dim
    for d, p in enumerate(perm):
        size = y.type.shape[d]
        if out_shape and d and perm[d - 1] == p - 1:
            out_shape[-1] *= size
            src_strides[-1] = in_strides[p]
        else:
            out_shape.append(size)
            src_strides.append(in_strides[p])
    outer, inner = out_shape[:-1], out_shape[-1]
    inner_stride = src_strides[-1]
    with ctx.task(node, math.prod(outer), y.type.size) as (b, env, t):
        idx = decompose(b, t, outer, "o") if outer else []
        src = gep(b, ctx.ptr(b, env, x, "in"), dot_index(b, idx, src_strides[:-1], "src.off"),
                  "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(inner), name="dst.off"), "dst")
        if inner_stride == 1:
            vec_loop(b, 0, inner, lanes_of(ctx, y.type.dtype), lambda i, wd: vstore(
                b, vload(b, src, as_i64(i), wd, "x"), dst, as_i64(i), "y"), "cp")
        else:
            with for_range(b, 0, inner, name="i") as i:
                v = vload(b, src, b.mul(i, i64(inner_stride), name="si"), 1, "x")
                b.store(v, b.gep(dst, [i], name="y.p"))


# pixels per blocked channel_shuffle task: the strip's input blocks stay in L1
SHUFFLE_STRIP = 128


@emitter("channel_shuffle")
def emit_channel_shuffle(ctx: EmitContext, node: Node) -> None:
    """Plain layout: each output channel plane is a copy of its source plane. Blocked: a task
    is a strip of pixels of one image; per pixel every input block is loaded once and each
    output block is assembled from the few input blocks its lanes come from by constant
    two-vector shuffles (vpermt2ps), padding lanes taken from a zero vector (cheaper than a
    gather per output vector)."""
    x, y = node.inputs[0], node.outputs[0]
    c = node.attrs["channels"]
    sources = channel_shuffle_sources(c, node.attrs["groups"])
    if node.attrs["layout"] == "NCHW":
        n, plane = x.type.shape[0], math.prod(x.type.shape[2:])
        table = const_table(ctx.module, f"{node.name}.sources", sources.tolist())
        with ctx.task(node, n * c, y.type.size) as (b, env, t):
            ni, ci = b.udiv(t, i64(c), name="n"), b.urem(t, i64(c), name="c")
            src_c = load_table(b, table, ci, "src.c")
            src = gep(b, ctx.ptr(b, env, x, "in"),
                      b.mul(b.add(b.mul(ni, i64(c)), src_c), i64(plane), name="src.off"), "src")
            dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(plane), name="dst.off"), "dst")
            vec_loop(b, 0, plane, ctx.vw, lambda i, wd: store(b, load(b, src, i, wd, "x"), dst,
                                                               i, "y"), "cp")
        return
    n, cb, blk = x.type.shape[0], x.type.shape[1], x.type.shape[-1]
    plane = math.prod(x.type.shape[2:-1])
    zero = cb  # the zero vector's index among the sources
    lanes = [[divmod(int(sources[o * blk + k]), blk) if o * blk + k < c else (zero, 0)
              for k in range(blk)] for o in range(cb)]
    strips = -(-plane // SHUFFLE_STRIP)
    mask_type = ir.VectorType(ir.IntType(32), blk)
    with ctx.task(node, n * strips, y.type.size) as (b, env, t):
        ni, strip = b.udiv(t, i64(strips), name="n"), b.urem(t, i64(strips), name="strip")
        p0 = b.mul(strip, i64(SHUFFLE_STRIP), name="p0")
        end = b.add(p0, i64(SHUFFLE_STRIP), name="end")
        p1 = b.select(b.icmp_unsigned("<", end, i64(plane)), end, i64(plane), name="p1")
        image = b.mul(ni, i64(cb * plane * blk), name="image")
        src = gep(b, ctx.ptr(b, env, x, "in"), image, "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), image, "dst")
        with for_range(b, p0, p1, name="s") as s:
            pixel = b.mul(s, i64(blk), name="pixel")
            vecs = [load(b, src, b.add(pixel, i64(j * plane * blk)), blk, f"x{j}")
                    for j in range(cb)] + [splat(0.0, blk)]
            for o, picks in enumerate(lanes):
                order = list(dict.fromkeys(j for j, _ in picks))
                # the first two sources, then each further one over the lanes it owns
                first, second = order[0], order[1] if len(order) > 1 else order[0]
                mask = [k2 if j == first else blk + k2 if j == second else 0
                        for j, k2 in picks]
                out = b.shuffle_vector(vecs[first], vecs[second], ir.Constant(mask_type, mask),
                                       name=f"y{o}.0")
                for step, j_next in enumerate(order[2:], 1):
                    mask = [blk + k2 if j == j_next else lane
                            for lane, (j, k2) in enumerate(picks)]
                    out = b.shuffle_vector(out, vecs[j_next], ir.Constant(mask_type, mask),
                                           name=f"y{o}.{step}")
                store(b, out, dst, b.add(pixel, i64(o * plane * blk)), f"y{o}")


@emitter("concat")
def emit_concat(ctx: EmitContext, node: Node) -> None:
    y, axis = node.outputs[0], node.attrs["axis"]
    outer = math.prod(y.type.shape[:axis])
    total = math.prod(y.type.shape[axis:])
    with ctx.task(node, outer, y.type.size) as (b, env, t):
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(total), name="dst.off"), "dst")
        offset = 0
        for k, v in enumerate(node.inputs):
            chunk = math.prod(v.type.shape[axis:])
            src = gep(b, ctx.ptr(b, env, v, f"in{k}"), b.mul(t, i64(chunk), name=f"src{k}.off"),
                      f"src{k}")
            part = gep(b, dst, offset, f"dst{k}")
            vec_loop(b, 0, chunk, lanes_of(ctx, y.type.dtype),
                     lambda i, wd, src=src, part=part, k=k: vstore(
                         b, vload(b, src, as_i64(i), wd, f"x{k}"), part, as_i64(i), f"y{k}"),
                     f"cp{k}")
            offset += chunk


@emitter("pad")
def emit_pad(ctx: EmitContext, node: Node) -> None:
    if node.attrs["mode"] != "constant":
        emit_pad_modes(ctx, node)
        return
    x, y = node.inputs[0], node.outputs[0]
    pads, value = node.attrs["pads"], float(node.attrs["value"])
    xs, ys = x.type.shape, y.type.shape
    r = len(xs)
    begins = pads[:r]
    in_strides = strides_of(xs)
    outer, inner = ys[:-1], ys[-1]
    # output column j reads input column j - begin when that is inside the input
    lo = max(0, begins[-1])
    hi = min(inner, xs[-1] + begins[-1])
    with ctx.task(node, math.prod(outer), y.type.size) as (b, env, t):
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(inner), name="dst.off"), "dst")
        vec_loop(b, 0, inner, ctx.vw, lambda i, wd: store(b, splat(value, wd), dst, i, "fill"),
                 "fill")
        idx = decompose(b, t, outer, "o") if outer else []
        inside = ir.Constant(ir.IntType(1), 1)
        src_off: ir.Value = i64(0)
        for d, o in enumerate(idx):
            src_i = b.sub(o, i64(begins[d]), name=f"s{d}")
            ok = b.and_(b.icmp_signed(">=", src_i, i64(0), name=f"s{d}.ge"),
                        b.icmp_signed("<", src_i, i64(xs[d]), name=f"s{d}.lt"), name=f"s{d}.ok")
            inside = b.and_(inside, ok, name=f"in{d}")
            src_off = b.add(src_off, b.mul(src_i, i64(in_strides[d]), name=f"s{d}.m"),
                            name=f"s{d}.off")
        if hi > lo:
            with b.if_then(inside):
                src = gep(b, ctx.ptr(b, env, x, "in"), b.add(src_off, i64(-begins[-1]),
                                                             name="src.off"), "src")
                vec_loop(b, lo, hi, ctx.vw, lambda i, wd: store(b, load(b, src, i, wd, "x"), dst,
                                                                 i, "y"), "cp")


# pixels per layout-conversion task: a few L1-sized strips per plane, so one image's planes
# still give every thread work
CONVERT_CHUNK = 512


def _pixel_tasks(b: ir.IRBuilder, t: ir.Value, outer: int, plane: int, name: str
                 ) -> tuple[ir.Value, ir.Value, ir.Value]:
    """task -> (outer index, first pixel, end pixel) over `outer` x chunks of the plane."""
    chunks = -(-plane // CONVERT_CHUNK)
    o, k = b.udiv(t, i64(chunks), name=f"{name}.o"), b.urem(t, i64(chunks), name=f"{name}.k")
    p0 = b.mul(k, i64(CONVERT_CHUNK), name=f"{name}.p0")
    end = b.add(p0, i64(CONVERT_CHUNK), name=f"{name}.end")
    p1 = b.select(b.icmp_unsigned("<", end, i64(plane)), end, i64(plane), name=f"{name}.p1")
    return o, p0, p1


@emitter("to_blocked")
def emit_to_blocked(ctx: EmitContext, node: Node) -> None:
    """out[n, cb, s, l] = x[n, cb*blk + l, s] (zero past C). A task is a strip of pixels of one
    (image, channel block): per pixel the block's lanes are read from their channel planes
    (each a sequential stream) and stored as one vector."""
    x, y = node.inputs[0], node.outputs[0]
    n, c = x.type.shape[:2]
    blk = node.attrs["block"]
    cb = y.type.shape[1]
    plane = math.prod(x.type.shape[2:])
    chunks = -(-plane // CONVERT_CHUNK)
    with ctx.task(node, n * cb * chunks, 4 * y.type.size) as (b, env, t):
        o, p0, p1 = _pixel_tasks(b, t, n * cb, plane, "t")
        ni, bi = b.udiv(o, i64(cb), name="n"), b.urem(o, i64(cb), name="cb")
        src = ctx.ptr(b, env, x, "in")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(o, i64(plane * blk), name="dst.off"),
                  "dst")
        planes, real = [], []
        for lane in range(blk):
            ch = b.add(b.mul(bi, i64(blk), name=f"c{lane}.b"), i64(lane), name=f"c{lane}")
            ok = b.icmp_signed("<", ch, i64(c), name=f"c{lane}.ok")
            safe = b.select(ok, ch, i64(c - 1), name=f"c{lane}.safe")  # read, then zeroed
            planes.append(gep(b, src, b.mul(b.add(b.mul(ni, i64(c)), safe), i64(plane)),
                              f"plane{lane}"))
            real.append(ok)
        with for_range(b, p0, p1, name="s") as s:
            vec = ir.Constant(ir.VectorType(F32, blk), ir.Undefined)
            for lane in range(blk):
                v = b.select(real[lane], load_scalar(b, planes[lane], s, f"x{lane}"),
                             ir.Constant(F32, 0.0), name=f"v{lane}")
                vec = b.insert_element(vec, v, i64(lane), name=f"vec{lane}")
            store(b, vec, dst, b.mul(s, i64(blk), name="o"), "y")


@emitter("from_blocked")
def emit_from_blocked(ctx: EmitContext, node: Node) -> None:
    """out[n, c, s] = x[n, c // blk, s, c % blk]. A task is a strip of pixels of one (image,
    channel block), small enough to stay in L1 while each real lane is copied out of it into
    its channel plane (a sequential store stream)."""
    x, y = node.inputs[0], node.outputs[0]
    n, c = y.type.shape[:2]
    cb, blk = x.type.shape[1], x.type.shape[-1]
    plane = math.prod(y.type.shape[2:])
    chunks = -(-plane // CONVERT_CHUNK)
    with ctx.task(node, n * cb * chunks, 4 * y.type.size) as (b, env, t):
        o, p0, p1 = _pixel_tasks(b, t, n * cb, plane, "t")
        ni, bi = b.udiv(o, i64(cb), name="n"), b.urem(o, i64(cb), name="cb")
        src = gep(b, ctx.ptr(b, env, x, "in"), b.mul(o, i64(plane * blk), name="src.off"), "src")
        out = ctx.ptr(b, env, y, "out")
        first = b.mul(bi, i64(blk), name="c0")
        real = b.sub(i64(c), first, name="real")  # lanes holding channels (< blk in the last)
        lanes = b.select(b.icmp_signed("<", real, i64(blk)), real, i64(blk), name="lanes")
        with for_range(b, 0, lanes, name="lane") as lane:
            dst = gep(b, out, b.mul(b.add(b.mul(ni, i64(c)), b.add(first, lane)), i64(plane)),
                      "plane")
            with for_range(b, p0, p1, name="s") as s:
                v = load_scalar(b, src, b.add(b.mul(s, i64(blk)), lane, name="i"), "x")
                b.store(v, b.gep(dst, [s], name="y.p"))
