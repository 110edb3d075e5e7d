"""Convolution: a call of the blocked kernel plan plan.py chose (emit_fast), or for kernel
family "generic" a direct conv on NCHW (1-D/2-D/3-D, stride, padding, dilation, groups, fused
epilogue).

Generic kernel: 1-D and 2-D convs are seen as 3-D with leading unit dims. A task is one output
row (n, oc, od, oh). The row starts as the bias; for every input channel of the group and
every kernel tap whose input row is inside the image, the row accumulates w * (input row
shifted by the tap): with stride 1 that is a contiguous `<vw x float>` FMA loop over output
width, otherwise a strided scalar loop. The valid output range of each kernel column is a
compile-time constant, so padding costs no per-element branch. Then + residual, activation.
"""
from __future__ import annotations

from llvmlite import ir

from graphcnn.ir import Node

from ..builder import (
    apply_activation,
    as_words,
    decompose,
    entry_alloca,
    fma,
    for_range,
    gep,
    i64,
    load,
    splat_value,
    store,
    vec_loop,
    vec_type,
    window_index,
)
from ..kernels.conv2d_nchwc import Conv2dNCHWcPlan
from .base import EmitContext, Task, emitter


def as_3d(shape: tuple[int, ...], nd: int, fill: int) -> tuple[int, ...]:
    return (fill,) * (3 - nd) + tuple(shape)


def valid_range(out: int, size: int, stride: int, offset: int) -> tuple[int, int]:
    """[lo, hi) of output positions o with 0 <= o*stride + offset < size."""
    ok = [o for o in range(out) if 0 <= o * stride + offset < size]
    return (ok[0], ok[-1] + 1) if ok else (0, 0)


def emit_fast(ctx: EmitContext, node: Node, plan) -> None:
    """A blocked conv through its kernels/ plan (plan.py built it): weights packed into the
    arena, one task calling the plan's kernel over [begin, end)."""
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2].data if len(node.inputs) > 2 else None
    # the dense direct kernel's packing is a transpose: the arena copies the view once
    copy = {"copy": False} if isinstance(plan, Conv2dNCHWcPlan) else {}
    w_packed, b_packed = plan.pack_weights(w.data, bias, **copy)
    w_off, b_off = ctx.add_weights(w_packed), ctx.add_weights(b_packed)
    kernel = ctx.kernel(plan, node.name)
    fn = ctx.new_task_fn(node.name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    env, begin, end = fn.args
    px = as_words(b, ctx.ptr(b, env, x, "in"), "in.words")  # a bf16 input: channel pairs
    po = as_words(b, ctx.ptr(b, env, node.outputs[0], "out"), "out.words")  # stored bf16
    pr = ctx.ptr(b, env, node.inputs[3], "res") if node.attrs["residual"] else \
        ir.Constant(px.type, None)
    b.call(kernel, [px, ctx.weights_ptr(b, w_off, "w"), ctx.weights_ptr(b, b_off, "bias"),
                    pr, po, begin, end])
    b.ret_void()
    ctx.tasks.append(Task(fn, plan.num_tasks, plan.flops, node.name, node.op))


@emitter("conv")
def emit_conv(ctx: EmitContext, node: Node) -> None:
    """Kernel family "generic": the NCHW loops (the blocked families run their plan through
    emit_fast)."""
    if node.attrs["layout"] != "NCHW" or node.attrs["pool"]:
        raise NotImplementedError("a blocked or pooling conv outside the blocked kernels "
                                  "(the llvm lowering passes rewrite those)")
    if is_pointwise(node):
        emit_pointwise(ctx, node)
        return
    emit_generic(ctx, node)


def is_pointwise(node: Node) -> bool:
    """A 1x1, stride 1, unpadded conv: per group a small matrix times the (C, H*W) image."""
    a, w = node.attrs, node.inputs[1].type.shape
    return all(k == 1 for k in w[2:]) and all(s == 1 for s in a["strides"]) and \
        not any(a["pads"])


POINTWISE_OC = 4        # output channels per register tile
POINTWISE_VECS = 4      # pixel vectors per register tile: 4 x 4 accumulators
POINTWISE_CHUNK = 256   # pixels per task


def emit_pointwise(ctx: EmitContext, node: Node) -> None:
    """1x1 conv (any groups, e.g. ShuffleNet's grouped 1x1) as register-tiled outer products:
    a task is (image, tile of output channels, chunk of pixels); the tile keeps
    POINTWISE_OC x POINTWISE_VECS pixel vectors in registers over the group's input channels
    (one weight broadcast feeds POINTWISE_VECS FMAs), then bias, residual, activation. The
    generic kernel re-reads and re-writes the output row per input channel instead."""
    a = node.attrs
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    n, c = x.type.shape[:2]
    oc, cg = w.type.shape[:2]
    ocg = oc // a["groups"]
    size = 1
    for d in y.type.shape[2:]:
        size *= d
    tile = next(t for t in (POINTWISE_OC, 2, 1) if ocg % t == 0)
    chunks = -(-size // POINTWISE_CHUNK)
    act, params = a["activation"], tuple(a["activation_params"])
    vw = ctx.vw
    has_bias = len(node.inputs) > 2
    work = 2 * y.type.size * cg
    with ctx.task(node, n * (oc // tile) * chunks, work) as (b, env, t):
        tn, tt, tch = decompose(b, t, [n, oc // tile, chunks], "t")
        oc0 = b.mul(tt, i64(tile), name="oc0")
        ic0 = b.mul(b.udiv(oc0, i64(ocg), name="grp"), i64(cg), name="ic0")
        px = ctx.ptr(b, env, x, "in")
        pwt = ctx.ptr(b, env, w, "w")
        po = ctx.ptr(b, env, y, "out")
        x_img = gep(b, px, b.mul(b.add(b.mul(tn, i64(c), name="nc"), ic0, name="nci"),
                                 i64(size), name="x.off"), "x_img")
        y_img = gep(b, po, b.mul(b.add(b.mul(tn, i64(oc), name="no"), oc0, name="noc"),
                                 i64(size), name="y.off"), "y_img")
        w_t = gep(b, pwt, b.mul(oc0, i64(cg), name="w.off"), "w_t")
        res = None
        if a["residual"]:
            res = gep(b, ctx.ptr(b, env, node.inputs[3], "res"),
                      b.mul(b.add(b.mul(tn, i64(oc), name="rno"), oc0, name="rnoc"),
                            i64(size), name="r.off"), "res_img")
        biases = []
        for k in range(tile):
            if has_bias:
                pb = ctx.ptr(b, env, node.inputs[2], "bias")
                biases.append(b.load(b.gep(pb, [b.add(oc0, i64(k), name=f"oc{k}")],
                                           name=f"bias{k}.p"), name=f"bias{k}", align=4))
            else:
                biases.append(ir.Constant(ir.FloatType(), 0.0))
        p0 = b.mul(tch, i64(POINTWISE_CHUNK), name="p0")
        p_end = b.add(p0, i64(POINTWISE_CHUNK), name="p.end")
        p1 = b.select(b.icmp_unsigned("<", p_end, i64(size), name="p.in"), p_end, i64(size),
                      name="p1")

        def block(i: ir.Value, wd: int, vecs: int, tag: str) -> None:
            accs = {}
            for k in range(tile):
                for v in range(vecs):
                    accs[k, v] = entry_alloca(b, vec_type(wd), f"acc{tag}{k}_{v}")
                    b.store(splat_value(b, biases[k], wd, f"b{tag}{k}_{v}"), accs[k, v])
            with for_range(b, 0, cg, name=f"ic{tag}") as ic:
                x_c = gep(b, x_img, b.add(b.mul(ic, i64(size), name=f"xc{tag}"), i,
                                          name=f"xci{tag}"), f"x_c{tag}")
                xs = [load(b, x_c, v * wd, wd, f"x{tag}{v}") for v in range(vecs)]
                for k in range(tile):
                    wk = b.load(b.gep(w_t, [b.add(ic, i64(k * cg), name=f"wi{tag}{k}")],
                                      name=f"w{tag}{k}.p"), name=f"w{tag}{k}", align=4)
                    ws = splat_value(b, wk, wd, f"ws{tag}{k}")
                    for v in range(vecs):
                        acc = accs[k, v]
                        b.store(fma(b, ws, xs[v], b.load(acc, name=f"{acc.name}.v"),
                                    f"f{tag}{k}_{v}"), acc)
            for k in range(tile):
                for v in range(vecs):
                    off = b.add(i, i64(k * size + v * wd), name=f"o{tag}{k}_{v}")
                    val = b.load(accs[k, v], name=f"s{tag}{k}_{v}")
                    if res is not None:
                        val = b.fadd(val, load(b, res, off, wd, f"r{tag}{k}_{v}"),
                                     name=f"sr{tag}{k}_{v}")
                    store(b, apply_activation(b, val, act, params, f"a{tag}{k}_{v}"), y_img,
                          off, f"y{tag}{k}_{v}")

        span = vw * POINTWISE_VECS
        count = b.sub(p1, p0, name="p.count")
        full = b.add(p0, b.sub(count, b.urem(count, i64(span), name="p.rem"), name="p.main"),
                     name="p.full")
        with for_range(b, p0, full, step=span, name="pt") as i:
            block(i, vw, POINTWISE_VECS, "m")
        vec_loop(b, full, p1, vw, lambda i, wd: block(i, wd, 1, f"t{wd}"), "ptail")


def emit_generic(ctx: EmitContext, node: Node) -> None:
    a = node.attrs
    x, w = node.inputs[0], node.inputs[1]
    y = node.outputs[0]
    nd = x.type.rank - 2
    n, c = x.type.shape[:2]
    oc = w.type.shape[0]
    cg, g = w.type.shape[1], a["groups"]
    ocg = oc // g
    dd, hh, ww = as_3d(x.type.shape[2:], nd, 1)
    kd, kh, kw = as_3d(w.type.shape[2:], nd, 1)
    od, oh, ow = as_3d(y.type.shape[2:], nd, 1)
    sd, sh, sw = as_3d(a["strides"], nd, 1)
    pd, ph, pw = as_3d(a["pads"][:nd], nd, 0)
    ld, lh, lw = as_3d(a["dilations"], nd, 1)
    has_bias = len(node.inputs) > 2
    act, params = a["activation"], tuple(a["activation_params"])
    vw = ctx.vw
    work = 2 * y.type.size * cg * kd * kh * kw
    with ctx.task(node, n * oc * od * oh, work) as (b, env, t):
        tn, toc, tod, toh = decompose(b, t, [n, oc, od, oh], "t")
        grp = b.udiv(toc, i64(ocg), name="group")
        px = ctx.ptr(b, env, x, "in")
        pwt = ctx.ptr(b, env, w, "w")
        po = ctx.ptr(b, env, y, "out")
        row = gep(b, po, b.mul(t, i64(ow), name="row.off"), "row")
        if has_bias:
            bias = b.load(b.gep(ctx.ptr(b, env, node.inputs[2], "bias"), [toc], name="bias.p"),
                          name="bias.s", align=4)
        else:
            bias = ir.Constant(ir.FloatType(), 0.0)
        vec_loop(b, 0, ow, vw, lambda i, wd: store(b, splat_value(b, bias, wd, "b0"), row, i,
                                                     "init"), "init")
        with for_range(b, 0, cg, name="icg") as icg:
            ic = b.add(b.mul(grp, i64(cg), name="ic.g"), icg, name="ic")
            in_ch = gep(b, px, b.mul(b.add(b.mul(tn, i64(c), name="nc"), ic, name="nci"),
                                     i64(dd * hh * ww), name="inch.off"), "in_ch")
            w_ch = gep(b, pwt, b.mul(b.add(b.mul(toc, i64(cg), name="occ"), icg, name="occi"),
                                     i64(kd * kh * kw), name="wch.off"), "w_ch")
            with for_range(b, 0, kd, name="kd") as tkd:
                idd, ok_d = window_index(b, tod, tkd, sd, ld, pd, dd, "id")
                with b.if_then(ok_d), for_range(b, 0, kh, name="kh") as tkh:
                    ih, ok_h = window_index(b, toh, tkh, sh, lh, ph, hh, "ih")
                    with b.if_then(ok_h):
                        in_row = gep(b, in_ch, b.mul(b.add(b.mul(idd, i64(hh), name="idh"),
                                                           ih, name="idhi"),
                                                     i64(ww), name="inrow.off"), "in_row")
                        tap0 = b.mul(b.add(b.mul(tkd, i64(kh), name="tk.d"), tkh,
                                           name="tk.dh"), i64(kw), name="tap0")
                        _row_taps(b, row, in_row, w_ch, tap0, ow, ww, kw, sw, pw, lw, vw)
        res = ctx.ptr(b, env, node.inputs[3], "res") if a["residual"] else None

        def epilogue(i: ir.Value, wd: int) -> None:
            v = load(b, row, i, wd, "acc")
            if res is not None:
                v = b.fadd(v, load(b, res, b.add(b.mul(t, i64(ow), name="r.row"), i,
                                                 name="r.off"), wd, "r"), name="acc.r")
            store(b, apply_activation(b, v, act, params, "act"), row, i, "y")
        if res is not None or act != "none":
            vec_loop(b, 0, ow, vw, epilogue, "epi")


def _row_taps(b: ir.IRBuilder, row: ir.Value, in_row: ir.Value, w_ch: ir.Value, tap0: ir.Value,
              ow: int, ww: int, kw: int, sw: int, pw: int, lw: int, vw: int) -> None:
    """row[o] += w[tap0 + k] * in_row[o*sw - pw + k*lw] for each kernel column k (unrolled)."""
    for k in range(kw):
        off0 = k * lw - pw
        lo, hi = valid_range(ow, ww, sw, off0)
        if lo >= hi:
            continue
        wv = b.load(b.gep(w_ch, [b.add(tap0, i64(k), name=f"tap{k}")], name=f"w{k}.p"),
                    name=f"w{k}", align=4)
        if sw == 1:
            def body(i: ir.Value, wd: int, wv=wv, off0=off0, k=k) -> None:
                xv = load(b, in_row, b.add(i, i64(off0), name=f"x{k}.o"), wd, f"x{k}")
                acc = load(b, row, i, wd, f"a{k}")
                store(b, fma(b, splat_value(b, wv, wd, f"ws{k}"), xv, acc, f"f{k}"), row, i,
                      f"s{k}")
            vec_loop(b, lo, hi, vw, body, f"kw{k}")
        else:
            with for_range(b, lo, hi, name=f"ow{k}") as o:
                xo = b.add(b.mul(o, i64(sw), name=f"x{k}.os"), i64(off0), name=f"x{k}.o")
                xv = load(b, in_row, xo, 1, f"x{k}")
                acc = load(b, row, o, 1, f"a{k}")
                store(b, fma(b, splat_value(b, wv, 1, f"ws{k}"), xv, acc, f"f{k}"), row, o,
                      f"s{k}")
