"""Data movement: transpose, concat, pad, channel_shuffle, and the NCHW <-> NCHW[x]c layout
changes.

(The views — reshape, flatten, squeeze, unsqueeze, identity, dropout — emit nothing: the memory
planner aliases their output to their input's buffer.)
"""
from __future__ import annotations

import math

from llvmlite import ir

from graphcnn.ir import Node
from graphcnn.ops.tensor import channel_shuffle_sources

from ..kernels._emit import F32, I64, const_table, for_range, i64, load_table, splat
from .base import (
    EmitContext,
    decompose,
    dot_index,
    emitter,
    gep,
    load,
    load_scalar,
    store,
    strides_of,
    vec_loop,
)


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
            vec_loop(b, 0, inner, ctx.vw, lambda i, wd: store(b, load(b, src, i, wd, "x"), dst, i,
                                                               "y"), "cp")
        else:
            with for_range(b, 0, inner, name="i") as i:
                v = load_scalar(b, src, b.mul(i, i64(inner_stride), name="si"), "x")
                b.store(v, b.gep(dst, [i], name="y.p"))


@emitter("channel_shuffle")
def emit_channel_shuffle(ctx: EmitContext, node: Node) -> None:
    """Plain layout: each output channel plane is a copy of its source plane. Blocked: a task
    is one (image, output block); every output pixel vector is one masked gather of its lanes'
    source channels (up to `blk` different input blocks) at that pixel, padding lanes zero."""
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
    # per output lane: the source's offset from the image's pixel (floats), or 0 if padding
    offsets = [(int(sources[k]) // blk * plane * blk + int(sources[k]) % blk) if k < c else 0
               for k in range(cb * blk)]
    table = const_table(ctx.module, f"{node.name}.offsets", offsets)
    vec_i64 = ir.VectorType(I64, blk)
    vec_ptr = ir.VectorType(F32.as_pointer(), blk)
    vec_f32 = ir.VectorType(F32, blk)
    bits = ir.VectorType(ir.IntType(1), blk)
    gather = ctx.module.globals.get(f"llvm.masked.gather.v{blk}f32.v{blk}p0f32") or ir.Function(
        ctx.module, ir.FunctionType(vec_f32, [vec_ptr, ir.IntType(32), bits, vec_f32]),
        f"llvm.masked.gather.v{blk}f32.v{blk}p0f32")
    with ctx.task(node, n * cb, y.type.size) as (b, env, t):
        ni, bi = b.udiv(t, i64(cb), name="n"), b.urem(t, i64(cb), name="cb")
        image = b.ptrtoint(gep(b, ctx.ptr(b, env, x, "in"), b.mul(ni, i64(cb * plane * blk)),
                               "image"), I64, name="image.int")
        lanes, real = ir.Constant(vec_i64, ir.Undefined), ir.Constant(bits, ir.Undefined)
        for k in range(blk):  # byte offsets of this block's sources, and which lanes are real
            off = load_table(b, table, b.add(b.mul(bi, i64(blk)), i64(k)), f"off{k}")
            lanes = b.insert_element(lanes, b.mul(off, i64(4)), i64(k), name=f"lanes{k}")
            is_real = b.icmp_unsigned("<", b.add(b.mul(bi, i64(blk)), i64(k)), i64(c))
            real = b.insert_element(real, is_real, i64(k), name=f"real{k}")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(plane * blk), name="dst.off"),
                  "dst")
        with for_range(b, 0, plane, name="s") as s:
            pixel = b.add(image, b.mul(s, i64(4 * blk)), name="pixel")
            base = b.insert_element(ir.Constant(vec_i64, ir.Undefined), pixel, i64(0))
            base = b.shuffle_vector(base, base, ir.Constant(ir.VectorType(ir.IntType(32), blk),
                                                            [0] * blk), name="pixel.v")
            ptrs = b.inttoptr(b.add(base, lanes), vec_ptr, name="ptrs")
            v = b.call(gather, [ptrs, ir.Constant(ir.IntType(32), 4), real, splat(0.0, blk)],
                       name="g")
            store(b, v, dst, b.mul(s, i64(blk), name="o"), "y")


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
            vec_loop(b, 0, chunk, ctx.vw, lambda i, wd, src=src, part=part, k=k: store(
                b, load(b, src, i, wd, f"x{k}"), part, i, f"y{k}"), f"cp{k}")
            offset += chunk


@emitter("pad")
def emit_pad(ctx: EmitContext, node: Node) -> None:
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
