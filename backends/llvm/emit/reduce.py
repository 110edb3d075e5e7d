"""The reductions of graphcnn.ops.REDUCTIONS, from the table's pre / combine / post.

The input is seen as runs of kept and reduced axes (unit axes dropped, neighbours of one kind
merged). Two loop nests, both with vector accumulators:
- innermost run reduced (a contiguous run of L floats per output, e.g. a mean over H*W): a task
  is one output element; the other reduced runs are scalar loops around a `<vw x float>` loop
  over the run, then one horizontal reduce;
- innermost run kept (e.g. a sum over the channels of NCHW): a task is one row of the kept run;
  the vector lanes go along it and every reduced run is a loop around the accumulation.
LogSumExp makes two passes, the max and then the sum of exp(x - max) (a max of -inf shifts by
0, as the reference does).
"""
from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from graphcnn.ir import Node
from graphcnn.ops import REDUCTIONS
from graphcnn.ops.reduce import Reduction

from ..builder import (
    F32,
    decompose,
    dot_index,
    entry_alloca,
    fmax,
    for_range,
    gep,
    hreduce,
    i64,
    intrinsic,
    load,
    splat,
    splat_value,
    store,
    vec_loop,
    vec_type,
    vexp,
)
from .base import EmitContext, emitter

Dims = list[tuple[int, int]]  # (size, stride in floats)


def merged_runs(shape: tuple[int, ...], axes: tuple[int, ...]) -> list[tuple[int, bool]]:
    """(size, reduced) runs of the shape: unit axes dropped, adjacent axes of one kind merged."""
    runs: list[tuple[int, bool]] = []
    for i, d in enumerate(shape):
        if d == 1:
            continue
        red = i in axes
        if runs and runs[-1][1] == red:
            runs[-1] = (runs[-1][0] * d, red)
        else:
            runs.append((d, red))
    return runs or [(1, True)]


def split_runs(runs: list[tuple[int, bool]]) -> tuple[Dims, Dims]:
    """The kept and the reduced runs, each as (size, stride in floats)."""
    strides, acc = [], 1
    for size, _ in reversed(runs):
        strides.append(acc)
        acc *= size
    strides.reverse()
    kept = [(s, st) for (s, red), st in zip(runs, strides) if not red]
    reduced = [(s, st) for (s, red), st in zip(runs, strides) if red]
    return kept, reduced


def _nest(b: ir.IRBuilder, dims: Dims, body: Callable[[ir.Value], None], off: ir.Value,
          name: str = "r") -> None:
    """body(offset) for every index of `dims` (loops outermost first)."""
    if not dims:
        body(off)
        return
    (size, stride), rest = dims[0], dims[1:]
    with for_range(b, 0, size, name=name) as i:
        _nest(b, rest, body, b.add(off, b.mul(i, i64(stride)), name=f"{name}.off"),
              f"{name}{len(rest)}")


class _Math:
    """The table's operations on vectors of one width."""

    def __init__(self, b: ir.IRBuilder, r: Reduction, count: int):
        self.b, self.r, self.count = b, r, count

    def pre(self, v: ir.Value) -> ir.Value:
        if self.r.pre == "abs":
            return intrinsic(self.b, "llvm.fabs", [v], "abs")
        if self.r.pre == "square":
            return self.b.fmul(v, v, name="sq")
        return v

    def combine(self, kind: str, acc: ir.Value, v: ir.Value) -> ir.Value:
        b = self.b
        if kind == "add":
            return b.fadd(acc, v, name="acc")
        if kind == "mul":
            return b.fmul(acc, v, name="acc")
        if kind == "max":
            return fmax(b, acc, v, "acc")
        return b.select(b.fcmp_ordered("<=", acc, v, name="le"), acc, v, name="acc")  # min

    def post(self, v: ir.Value) -> ir.Value:
        b, width = self.b, v.type.count if isinstance(v.type, ir.VectorType) else 0
        if self.r.post == "mean":
            n = splat(float(self.count), width) if width else ir.Constant(F32, float(self.count))
            return b.fdiv(v, n, name="mean")
        if self.r.post == "sqrt":
            return intrinsic(b, "llvm.sqrt", [v], "sqrt")
        if self.r.post == "log":
            return intrinsic(b, "llvm.log", [v], "log")
        return v

    def shift(self, m: ir.Value) -> ir.Value:
        """The LogSumExp shift: the max, or 0 where it is -inf (all inputs -inf)."""
        b = self.b
        width = m.type.count if isinstance(m.type, ir.VectorType) else 0
        ninf = splat(float("-inf"), width) if width else ir.Constant(F32, float("-inf"))
        zero = splat(0.0, width) if width else ir.Constant(F32, 0.0)
        return b.select(b.fcmp_ordered("==", m, ninf, name="m.ninf"), zero, m, name="shift")


@emitter(*REDUCTIONS)
def emit_reduce(ctx: EmitContext, node: Node) -> None:
    r = REDUCTIONS[node.op]
    runs = merged_runs(node.inputs[0].type.shape, node.attrs["axes"])
    kept, reduced = split_runs(runs)
    count = math.prod(s for s, _ in reduced)
    if runs[-1][1]:
        _emit_inner_reduced(ctx, node, r, kept, reduced, count)
    else:
        _emit_inner_kept(ctx, node, r, kept, reduced, count)


def _emit_inner_reduced(ctx: EmitContext, node: Node, r: Reduction, kept: Dims, reduced: Dims,
                        count: int) -> None:
    x, y = node.inputs[0], node.outputs[0]
    length, outer = reduced[-1][0], reduced[:-1]
    width = ctx.vw if length >= ctx.vw else 1
    with ctx.task(node, math.prod(s for s, _ in kept), x.type.size) as (b, env, t):
        m = _Math(b, r, count)
        idx = decompose(b, t, [s for s, _ in kept], "k") if kept else []
        base = dot_index(b, idx, [stride for _, stride in kept], "base")
        src = gep(b, ctx.ptr(b, env, x, "in"), base, "src")
        vacc = entry_alloca(b, vec_type(width), "vacc")
        sacc = entry_alloca(b, F32, "sacc")

        def run(kind: str, init: float, value: Callable[[ir.Value], ir.Value]) -> ir.Value:
            b.store(splat(init, width), vacc)
            b.store(ir.Constant(F32, init), sacc)

            def line(off: ir.Value) -> None:
                def body(i, wd):
                    v = value(load(b, src, b.add(off, i, name="at"), wd, "x"))
                    if wd == width:
                        b.store(m.combine(kind, b.load(vacc, name="va"), v), vacc)
                    else:
                        s = b.extract_element(v, ir.Constant(ir.IntType(32), 0), name="xs")
                        b.store(m.combine(kind, b.load(sacc, name="sa"), s), sacc)
                vec_loop(b, 0, length, width, body, "red")
            _nest(b, outer, line, i64(0))
            total = hreduce(b, b.load(vacc, name="vf"), lambda p, q: m.combine(kind, p, q), "h")
            return m.combine(kind, total, b.load(sacc, name="sf"))

        if r.combine == "logsumexp":
            shift = m.shift(run("max", float("-inf"), lambda v: v))

            def shifted_exp(v):
                return vexp(b, b.fsub(v, splat_value(b, shift, v.type.count, "sh"), name="xs"),
                            "e")
            total = run("add", 0.0, shifted_exp)
            result = b.fadd(intrinsic(b, "llvm.log", [total], "log"), shift, name="lse")
        else:
            result = m.post(run(r.combine, r.init, m.pre))
        b.store(result, gep(b, ctx.ptr(b, env, y, "out"), t, "dst"))


def _emit_inner_kept(ctx: EmitContext, node: Node, r: Reduction, kept: Dims, reduced: Dims,
                     count: int) -> None:
    x, y = node.inputs[0], node.outputs[0]
    row, outer = kept[-1][0], kept[:-1]
    with ctx.task(node, math.prod(s for s, _ in outer), x.type.size) as (b, env, t):
        m = _Math(b, r, count)
        idx = decompose(b, t, [s for s, _ in outer], "k") if outer else []
        base = dot_index(b, idx, [stride for _, stride in outer], "base")
        src = gep(b, ctx.ptr(b, env, x, "in"), base, "src")
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(t, i64(row), name="row"), "dst")
        slots: dict[int, ir.AllocaInstr] = {}

        def chunk(i: ir.Value, wd: int) -> None:
            if wd not in slots:
                slots[wd] = entry_alloca(b, vec_type(wd), f"acc{wd}")
            acc = slots[wd]

            def run(kind: str, init: float, value: Callable[[ir.Value], ir.Value]) -> ir.Value:
                b.store(splat(init, wd), acc)

                def step(off: ir.Value) -> None:
                    v = value(load(b, src, b.add(off, i, name="at"), wd, "x"))
                    b.store(m.combine(kind, b.load(acc, name="a"), v), acc)
                _nest(b, reduced, step, i64(0))
                return b.load(acc, name="total")

            if r.combine == "logsumexp":
                shift = m.shift(run("max", float("-inf"), lambda v: v))
                total = run("add", 0.0, lambda v: vexp(b, b.fsub(v, shift, name="xs"), "e"))
                result = b.fadd(intrinsic(b, "llvm.log", [total], "log"), shift, name="lse")
            else:
                result = m.post(run(r.combine, r.init, m.pre))
            store(b, result, dst, i, "y")
        vec_loop(b, 0, row, ctx.vw, chunk, "row")
