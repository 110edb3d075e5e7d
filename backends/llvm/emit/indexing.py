"""Indexing and dtype kernels on any element type (float32, int64, int32, bool as i8): gather,
slice, split, expand, tile, cast, where, argmax, argmin, and copies of non-float values.

Slice, split, expand and tile are one pattern, a strided copy: output element i (row-major over
an index space) reads the input at `offset + sum(idx[d] * stride[d])`, the strides being the
input's times the slice steps (negative for a reversed slice), 0 on a broadcast dim, and tile
written over the index space (r0, d0, r1, d1, ...) with stride 0 on each repeat dim. Dims that
stay row-major neighbours merge; a task is one row (or a chunk of a long row) of the merged
space, copied as vectors of the element type when its inner stride is 1, as a splat when it is
0, element by element otherwise.

Gather checks every index at run time: one outside [-n, n) stores the kernel's error code
(EmitContext.fail, returned by `run`) and the row is zero-filled, never read.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from llvmlite import ir

from graphcnn.ir import Node, Value
from graphcnn.ops.indexing import split_offsets

from ..builder import F32, I32, decompose, dot_index, entry_alloca, for_range, i64, strides_of
from .base import EmitContext, element_type, emitter

# a split or slice output is a view of its input only at a byte offset that keeps the 64-byte
# alignment every buffer has (memory.ALIGN), so no kernel ever sees a less aligned pointer
VIEW_ALIGN = 64
# elements per task of a long row: big enough to amortise the task, small enough to split
ROW_CHUNK = 4096
I1 = ir.IntType(1)
I8 = ir.IntType(8)

# the ops whose kernels here take every dtype of ELEMENT_TYPES (plan.py checks the others
# read and write float32 only)
ANY_DTYPE_OPS = frozenset({"gather", "slice", "split", "expand", "tile", "cast", "where",
                           "argmax", "argmin", "concat", "transpose"})


def lanes_of(ctx: EmitContext, dtype: str) -> int:
    """Vector lanes of `dtype` in the bytes of one float vector."""
    return max(1, ctx.vw * 4 // np.dtype(dtype).itemsize)


def vload(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value, width: int, name: str) -> ir.Value:
    """`width` consecutive elements at ptr + offset (a scalar for width 1)."""
    p = b.gep(ptr, [offset], name=f"{name}.p")
    ty = ptr.type.pointee
    if width == 1:
        return b.load(p, name=name)
    vp = b.bitcast(p, ir.VectorType(ty, width).as_pointer(), name=f"{name}.vp")
    return b.load(vp, name=name, align=_align(ty))


def vstore(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, offset: ir.Value, name: str) -> None:
    p = b.gep(ptr, [offset], name=f"{name}.p")
    if isinstance(value.type, ir.VectorType):
        p = b.bitcast(p, value.type.as_pointer(), name=f"{name}.vp")
        b.store(value, p, align=_align(value.type.element))
    else:
        b.store(value, p)


def vsplat(b: ir.IRBuilder, scalar: ir.Value, width: int, name: str) -> ir.Value:
    if width == 1:
        return scalar
    vec = ir.VectorType(scalar.type, width)
    one = b.insert_element(ir.Constant(vec, ir.Undefined), scalar, ir.Constant(I32, 0),
                           name=f"{name}.ins")
    return b.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, width), [0] * width), name=name)


def _align(ty: ir.Type) -> int:
    return {F32: 4, I32: 4, I8: 1}.get(ty, 8)


def _loop(b: ir.IRBuilder, start: ir.Value | int, stop: ir.Value | int, width: int,
          body: Callable[[ir.Value, int], None], name: str) -> None:
    """body(i, width) over the largest multiple of width from start, body(i, 1) over the
    tail (bounds may be runtime values)."""
    start = i64(start) if isinstance(start, int) else start
    stop = i64(stop) if isinstance(stop, int) else stop
    if width > 1:
        count = b.sub(stop, start, name=f"{name}.count")
        main = b.sub(count, b.urem(count, i64(width), name=f"{name}.rem"), name=f"{name}.main")
        main_end = b.add(start, main, name=f"{name}.mainend")
        with for_range(b, start, main_end, step=width, name=f"{name}.vec") as i:
            body(i, width)
        start = main_end
    with for_range(b, start, stop, name=f"{name}.tail") as i:
        body(i, 1)


def merge_dims(shape: Sequence[int], strides: Sequence[Sequence[int]]
               ) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge dim d into d-1 where every operand steps row-major across
    them (stride[d-1] == stride[d] * shape[d]); at least one dim remains."""
    dims: list[int] = []
    merged: list[list[int]] = [[] for _ in strides]
    for d, size in enumerate(shape):
        if size == 1:
            continue
        if dims and all(m[-1] == s[d] * size for s, m in zip(strides, merged)):
            dims[-1] *= size
            for s, m in zip(strides, merged):
                m[-1] = s[d]
            continue
        dims.append(size)
        for s, m in zip(strides, merged):
            m.append(s[d])
    if not dims:
        return [1], [[0] for _ in strides]
    return dims, merged


def _row_tasks(b: ir.IRBuilder, t: ir.Value, inner: int, name: str
               ) -> tuple[ir.Value, ir.Value, ir.Value | int, int]:
    """task -> (row, first element of its chunk, chunk end, chunks per row)."""
    chunks = -(-inner // ROW_CHUNK)
    if chunks == 1:
        return t, i64(0), inner, 1
    row, k = b.udiv(t, i64(chunks), name=f"{name}.row"), b.urem(t, i64(chunks), name=f"{name}.k")
    first = b.mul(k, i64(ROW_CHUNK), name=f"{name}.first")
    end = b.add(first, i64(ROW_CHUNK), name=f"{name}.end")
    end = b.select(b.icmp_signed("<", end, i64(inner)), end, i64(inner), name=f"{name}.stop")
    return row, first, end, chunks


def view_offsets(node: Node) -> list[int] | None:
    """Byte offset of each output inside the input when a split or slice selects contiguous,
    VIEW_ALIGN-aligned parts of it (a split whose outer dims are all 1; a slice whose dims
    after the first it keeps more than one element of are whole and unit-stepped): its outputs
    are then views of the input (place.py) and it emits nothing. Else None."""
    if node.op not in ("split", "slice"):
        return None
    x = node.inputs[0]
    shape, itemsize = x.type.shape, np.dtype(x.type.dtype).itemsize
    strides = strides_of(shape)
    if node.op == "split":
        axis = node.attrs["axis"]
        if math.prod(shape[:axis]) != 1:
            return None
        offsets = [k * strides[axis] * itemsize for k in split_offsets(node.attrs["split"])]
    else:
        out, steps = node.attrs["shape"], node.attrs["steps"]
        first = next((d for d, n in enumerate(out) if n > 1), len(out))
        if first < len(out) and steps[first] != 1:
            return None
        if any(out[d] != shape[d] or steps[d] != 1 for d in range(first + 1, len(out))):
            return None
        offsets = [sum(s * k for s, k in zip(strides, node.attrs["starts"])) * itemsize]
    return offsets if all(o % VIEW_ALIGN == 0 for o in offsets) else None


def emit_strided_copy(ctx: EmitContext, node: Node, src: Value, dst: Value,
                      shape: Sequence[int], strides: Sequence[int], offset: int,
                      suffix: str = "") -> None:
    """dst (dense, `shape` elements row-major) = src[offset + idx . strides]; nothing for an
    empty dst."""
    if math.prod(shape) == 0:
        return
    dims, (src_strides, _) = merge_dims(shape, [strides, strides_of(shape)])
    outer, inner = dims[:-1], dims[-1]
    inner_src = src_strides[-1]
    width = lanes_of(ctx, dst.type.dtype)
    rows = math.prod(outer)
    with ctx.task(node, rows * -(-inner // ROW_CHUNK), dst.type.size, suffix) as (b, env, t):
        row, first, end, _ = _row_tasks(b, t, inner, "r")
        idx = decompose(b, row, outer, "o") if outer else []
        base = b.add(dot_index(b, idx, src_strides[:-1], "src.row"), i64(offset), name="src.base")
        x = ctx.ptr(b, env, src, "in")
        y = ctx.ptr(b, env, dst, "out")
        out_row = b.mul(row, i64(inner), name="dst.row")

        def body(i: ir.Value, w: int) -> None:
            at = b.add(out_row, i, name="dst.i")
            if inner_src == 0:
                v = vsplat(b, vload(b, x, base, 1, "x"), w, "xs")
            elif inner_src == 1:
                v = vload(b, x, b.add(base, i, name="src.i"), w, "x")
            else:
                v = vload(b, x, b.add(base, b.mul(i, i64(inner_src), name="src.s"),
                                      name="src.i"), 1, "x")
            vstore(b, v, y, at, "y")

        _loop(b, first, end, width if inner_src in (0, 1) else 1, body, "cp")


def emit_copy_any(ctx: EmitContext, node: Node, src: Value, dst: Value) -> None:
    """dst = src for any element type (copies of graph outputs)."""
    emit_strided_copy(ctx, node, src, dst, src.type.shape, strides_of(src.type.shape), 0)


@emitter("slice")
def emit_slice(ctx: EmitContext, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    st = strides_of(x.type.shape)
    a = node.attrs
    emit_strided_copy(ctx, node, x, y, a["shape"], [s * k for s, k in zip(st, a["steps"])],
                      sum(s * k for s, k in zip(st, a["starts"])))


@emitter("split")
def emit_split(ctx: EmitContext, node: Node) -> None:
    x, axis = node.inputs[0], node.attrs["axis"]
    st = strides_of(x.type.shape)
    for k, (y, start) in enumerate(zip(node.outputs, split_offsets(node.attrs["split"]))):
        emit_strided_copy(ctx, node, x, y, y.type.shape, st, start * st[axis], suffix=f".{k}")


@emitter("expand")
def emit_expand(ctx: EmitContext, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    rank = y.type.rank
    shape = (1,) * (rank - x.type.rank) + x.type.shape
    natural = strides_of(shape)
    emit_strided_copy(ctx, node, x, y, y.type.shape,
                      [0 if d == 1 else s for d, s in zip(shape, natural)], 0)


@emitter("tile")
def emit_tile(ctx: EmitContext, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    space, strides = [], []
    for d, s, r in zip(x.type.shape, strides_of(x.type.shape), node.attrs["repeats"]):
        space += [r, d]
        strides += [0, s]
    emit_strided_copy(ctx, node, x, y, space, strides, 0)


@emitter("gather")
def emit_gather(ctx: EmitContext, node: Node) -> None:
    """out[p, j, q] = data[p, wrap(indices[j]), q] over (pre, indices, post); a task is one
    (p, j) row of `post` contiguous elements."""
    data, indices = node.inputs
    y, axis = node.outputs[0], node.attrs["axis"]
    shape = data.type.shape
    pre, n, post = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    m = indices.type.size
    width = lanes_of(ctx, y.type.dtype)
    code = ctx.next_task_code()
    with ctx.task(node, pre * m, y.type.size) as (b, env, t):
        p, j = b.udiv(t, i64(m), name="p"), b.urem(t, i64(m), name="j")
        raw = vload(b, ctx.ptr(b, env, indices, "idx"), j, 1, "id")
        index = raw if raw.type == i64(0).type else b.sext(raw, i64(0).type, name="id64")
        wrapped = b.select(b.icmp_signed("<", index, i64(0), name="neg"),
                           b.add(index, i64(n), name="id.w"), index, name="id.n")
        ok = b.icmp_unsigned("<", wrapped, i64(n), name="ok")  # also rejects < -n
        out = b.mul(t, i64(post), name="dst.row")
        yp = ctx.ptr(b, env, y, "out")
        with b.if_else(ok) as (then, otherwise):
            with then:
                src = b.mul(b.add(b.mul(p, i64(n), name="p.n"), wrapped, name="src.r"),
                            i64(post), name="src.row")
                xp = ctx.ptr(b, env, data, "in")
                _loop(b, 0, post, width, lambda i, w: vstore(
                    b, vload(b, xp, b.add(src, i, name="src.i"), w, "x"), yp,
                    b.add(out, i, name="dst.i"), "y"), "cp")
            with otherwise:
                ctx.fail(b, env, code)
                zero = ir.Constant(element_type(y.type.dtype), 0)
                _loop(b, 0, post, width, lambda i, w: vstore(
                    b, vsplat(b, zero, w, "z"), yp, b.add(out, i, name="dst.z"), "zero"), "zf")


# ----- elementwise maps with broadcasting: cast, where ------------------------------------
def _emit_map(ctx: EmitContext, node: Node, inputs: Sequence[Value], y: Value,
              fn: Callable[[ir.IRBuilder, list[ir.Value]], ir.Value]) -> None:
    """y = fn(inputs...) with numpy broadcasting; vectors along the merged inner dim where
    every input steps by 1 or 0 there (a broadcast input is splat)."""
    rank = y.type.rank
    strides = []
    for v in inputs:
        shape = (1,) * (rank - v.type.rank) + v.type.shape
        strides.append([0 if d == 1 else s for d, s in zip(shape, strides_of(shape))])
    dims, merged = merge_dims(y.type.shape, strides + [strides_of(y.type.shape)])
    outer, inner = dims[:-1], dims[-1]
    inner_strides = [m[-1] for m in merged[:-1]]
    vector = all(s in (0, 1) for s in inner_strides)
    width = max(lanes_of(ctx, v.type.dtype) for v in [*inputs, y]) if vector else 1
    width = min(width, 4 * ctx.vw)
    rows = math.prod(outer)
    with ctx.task(node, rows * -(-inner // ROW_CHUNK), y.type.size) as (b, env, t):
        row, first, end, _ = _row_tasks(b, t, inner, "r")
        idx = decompose(b, row, outer, "o") if outer else []
        ptrs = [ctx.ptr(b, env, v, f"in{k}") for k, v in enumerate(inputs)]
        bases = [dot_index(b, idx, m[:-1], f"in{k}.row") for k, m in enumerate(merged[:-1])]
        yp = ctx.ptr(b, env, y, "out")
        out_row = b.mul(row, i64(inner), name="dst.row")

        def body(i: ir.Value, w: int) -> None:
            vals = []
            for k, (ptr, base, s) in enumerate(zip(ptrs, bases, inner_strides)):
                if s == 0:
                    vals.append(vsplat(b, vload(b, ptr, base, 1, f"x{k}"), w, f"x{k}s"))
                else:
                    off = b.add(base, i if s == 1 else b.mul(i, i64(s)), name=f"x{k}.i")
                    vals.append(vload(b, ptr, off, w, f"x{k}"))
            vstore(b, fn(b, vals), yp, b.add(out_row, i, name="dst.i"), "y")

        _loop(b, first, end, width, body, "map")


def convert(b: ir.IRBuilder, x: ir.Value, src: str, dst: str) -> ir.Value:
    """x (scalar or vector of `src`) as `dst`: float -> int truncates toward zero, anything
    -> bool is x != 0 (NaN is true, as numpy), bool -> anything is 0 or 1."""
    ty = element_type(dst)
    if isinstance(x.type, ir.VectorType):
        ty = ir.VectorType(ty, x.type.count)
    if src == dst:
        return x
    if dst == "bfloat16":  # from float32 (the cast's rule): round to nearest even
        return b.fptrunc(x, ty, name="bf")
    if src == "bfloat16":
        return b.fpext(x, ty, name="f")
    if dst == "bool":
        if src == "float32":
            nz = b.fcmp_unordered("!=", x, ir.Constant(x.type, None), name="nz")
        else:
            nz = b.icmp_unsigned("!=", x, ir.Constant(x.type, None), name="nz")
        return b.zext(nz, ty, name="b")
    if src == "float32":
        return b.fptosi(x, ty, name="i")
    if dst == "float32":
        return (b.uitofp if src == "bool" else b.sitofp)(x, ty, name="f")
    if np.dtype(dst).itemsize < np.dtype(src).itemsize:
        return b.trunc(x, ty, name="t")
    return (b.zext if src == "bool" else b.sext)(x, ty, name="e")


@emitter("cast")
def emit_cast(ctx: EmitContext, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    _emit_map(ctx, node, [x], y, lambda b, v: convert(b, v[0], x.type.dtype, y.type.dtype))


@emitter("where")
def emit_where(ctx: EmitContext, node: Node) -> None:
    def select(b: ir.IRBuilder, v: list[ir.Value]) -> ir.Value:
        cond = b.icmp_unsigned("!=", v[0], ir.Constant(v[0].type, None), name="c")
        return b.select(cond, v[1], v[2], name="w")
    _emit_map(ctx, node, node.inputs, node.outputs[0], select)


# ----- argmax / argmin ----------------------------------------------------------------------
@emitter("argmax", "argmin")
def emit_arg(ctx: EmitContext, node: Node) -> None:
    """Over (pre, n, post): a task is one p; the n candidates are scanned in order with a
    vector of `post` lanes at a time, replacing the best where the candidate beats it (strictly
    for the first index, or also on ties for select_last_index)."""
    x, y = node.inputs[0], node.outputs[0]
    axis = node.attrs["axis"]
    shape = x.type.shape
    pre, n, post = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    is_float = x.type.dtype == "float32"
    last = bool(node.attrs["select_last_index"])
    op = (">" if node.op == "argmax" else "<") + ("=" if last else "")
    width = min(lanes_of(ctx, x.type.dtype), lanes_of(ctx, "int64"))
    with ctx.task(node, pre, x.type.size) as (b, env, t):
        xp, yp = ctx.ptr(b, env, x, "in"), ctx.ptr(b, env, y, "out")
        src = b.mul(t, i64(n * post), name="src.p")
        dst = b.mul(t, i64(post), name="dst.p")

        def body(q: ir.Value, w: int) -> None:
            start = b.add(src, q, name="s0")
            first = vload(b, xp, start, w, "b0")
            best = entry_alloca(b, first.type, f"best{w}")
            where = entry_alloca(b, vsplat(b, i64(0), w, "w0").type, f"where{w}")
            b.store(first, best)
            b.store(vsplat(b, i64(0), w, "w0"), where)
            with for_range(b, 1, n, name="k") as k:
                cand = vload(b, xp, b.add(start, b.mul(k, i64(post)), name="s.k"), w, "c")
                old = b.load(best, name="old")
                if is_float:  # NaN wins over numbers, as in numpy (the first, or the last)
                    nan = b.fcmp_unordered("uno", cand, cand, name="c.nan")
                    if not last:
                        nan = b.and_(nan, b.fcmp_ordered("ord", old, old, name="o.num"),
                                     name="nan")
                    beats = b.or_(b.fcmp_ordered(op, cand, old, name="cmp"), nan, name="beats")
                else:
                    beats = b.icmp_signed(op, cand, old, name="beats")
                b.store(b.select(beats, cand, old, name="nb"), best)
                b.store(b.select(beats, vsplat(b, k, w, "ks"), b.load(where, name="ow"),
                                 name="nw"), where)
            vstore(b, b.load(where, name="arg"), yp, b.add(dst, q, name="d.q"), "y")

        _loop(b, 0, post, width, body, "arg")


__all__ = ["ANY_DTYPE_OPS", "emit_copy_any", "emit_strided_copy", "merge_dims", "view_offsets"]
