"""Graph -> one LLVM module with one entry point `void run(float** in, float** out, i8* ws)`.

Steps (straight-line, in `lower`):
0. with `rewrites`, the pass pipeline's level-2 llvm passes (graphcnn.passes: BN folding,
   epilogue fusion, the blocked layout for the fast conv kernels) — a no-op on graphs that
   gc.compile already optimised, so graphs given at opt_level 0 still get the fast kernels;
1. legalise: blocked convs the fast kernels do not take become from_blocked -> NCHW conv ->
   to_blocked (the generic kernel is NCHW);
2. place buffers: graph inputs and outputs are the caller's pointers, views alias their input,
   constants live in the packed-weights arena, every other tensor gets a workspace offset from
   the static memory plan (memory.py);
3. emit each node through its op's emitter (emit/), a copy for outputs that alias something;
   the kernels/ plans they call fill kernel modules of their own, each handed over
   (`on_kernel_module`) once full, so its LLVM compile can start while lowering goes on;
4. emit the thread pool (threads.py) and `run`, which calls every task in order.
"""
from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from graphcnn.errors import CompileError, GraphcnnError, where
from graphcnn.ir import Graph, Node, Value

from . import memory, threads
from .codegen import MODEL_PIPELINE, PipelinedModule
from .emit import EMITTERS, VIEW_OPS, EmitContext, Location
from .emit.conv import POOLED, fast_plan, residual_in_place
from .emit.elementwise import emit_copy
from .kernels.conv2d_rows import RowConv2dPlan

I8P = ir.IntType(8).as_pointer()
F32PP = ir.FloatType().as_pointer().as_pointer()


@dataclass
class Lowered:
    module: ir.Module
    weights: np.ndarray  # the packed-weights arena, uint8, 64-byte aligned
    workspace_bytes: int
    weights_bytes: int
    weights_symbol: str
    kernels: list[dict] = field(default_factory=list)  # per task: node, op, fn, tasks, work
    # the kernels/ plans' modules, each with its pipeline (emit.base.EmitContext.kernel)
    kernel_modules: list[PipelinedModule] = field(default_factory=list)

    @property
    def modules(self) -> list[PipelinedModule]:
        """Every module to compile and link, with its pipeline: the main one (pool, tasks,
        `run`) first."""
        return [(self.module, MODEL_PIPELINE)] + [(m, p) for m, p in self.kernel_modules
                                                  if m.globals]


def _fast_plan_or_none(node: Node, vector_width: int):
    try:
        if all(v.is_constant for v in node.inputs[1:3]):
            return fast_plan(node, vector_width=vector_width)
    except ValueError:
        pass
    return None


def _pool_to_fuse(graph: Graph, conv: Node) -> Node | None:
    """The max pool a blocked conv's output feeds, alone, if it is the 2x2 stride-2 kind the row
    kernel fuses (no pads, no dilation, floor mode)."""
    y = conv.outputs[0]
    if conv.attrs["layout"] != "NCHWc" or conv.attrs["pool"] or len(y.uses) != 1 \
            or y in graph.outputs:
        return None
    pool = y.uses[0][0]
    a = pool.attrs if pool.op == "max_pool" else None
    if a is None or a["layout"] != "NCHWc" or a["ceil_mode"] or any(a["pads"]) \
            or tuple(a["kernel_shape"]) != POOLED or tuple(a["strides"]) != POOLED \
            or any(d != 1 for d in a["dilations"]):
        return None
    return pool


def fuse_pools(graph: Graph, vector_width: int) -> Graph:
    """conv -> max_pool 2x2/2 becomes one conv with `pool` where the row kernel takes it (it
    pools in registers: the conv's full-size output is never written); a conv carrying a pool
    no kernel takes is split back into conv + max_pool."""
    for node in list(graph.nodes):
        if node.op != "conv":
            continue
        pool = _pool_to_fuse(graph, node)
        if pool is not None:
            fused = graph.apply("conv", list(node.inputs), {**node.attrs, "pool": POOLED},
                                name=f"{node.name}.pooled", before=pool)
            if isinstance(_fast_plan_or_none(fused.producer, vector_width), RowConv2dPlan):
                graph.replace_all_uses_with(pool.outputs[0], fused)
                graph.remove(pool)
                graph.remove(node)
            else:
                graph.remove(fused.producer)
        elif node.attrs["pool"] and _fast_plan_or_none(node, vector_width) is None:
            y = graph.apply("conv", list(node.inputs), {**node.attrs, "pool": ()},
                            name=f"{node.name}.conv", before=node)
            pooled = graph.apply("max_pool", [y], {"kernel_shape": node.attrs["pool"],
                                                   "strides": node.attrs["pool"],
                                                   "layout": node.attrs["layout"]},
                                 name=node.name, before=node)
            graph.replace_all_uses_with(node.outputs[0], pooled)
            graph.remove(node)
    return graph


def legalize(graph: Graph, vector_width: int = 16) -> Graph:
    """Rewrite blocked convs without a fast kernel into NCHW convs between layout changes."""
    for node in list(graph.nodes):
        if node.op != "conv" or node.attrs["layout"] != "NCHWc":
            continue
        if _fast_plan_or_none(node, vector_width) is not None:
            continue
        x, w = node.inputs[0], node.inputs[1]
        c_in, c_out = w.type.shape[1] * node.attrs["groups"], w.type.shape[0]
        ins = [graph.apply("from_blocked", [x], {"channels": c_in}, before=node)]
        ins += list(node.inputs[1:3])
        if node.attrs["residual"]:
            ins.append(graph.apply("from_blocked", [node.inputs[3]], {"channels": c_out},
                                   before=node))
        attrs = {**node.attrs, "layout": "NCHW", "out_block": 0}
        y = graph.apply("conv", ins, attrs, name=f"{node.name}.nchw", before=node)
        blocked = graph.apply("to_blocked", [y], {"block": node.attrs["out_block"]},
                              before=node)
        graph.replace_all_uses_with(node.outputs[0], blocked)
        graph.remove(node)
    return graph


@dataclass
class _Slice:
    concat: Node      # the in-place concat whose buffer holds the value
    writer: Node      # the node producing the value
    byte_offset: int  # of the value's slice in the concat's buffer


def _inplace_slices(graph: Graph, nodes: list[Node], placed: dict) -> dict[int, _Slice]:
    """id(input value) -> its slice, for every concat marked `concat_inplace` whose output
    gets a workspace buffer (not a graph output, not a view's source) and whose inputs the
    pass marked `write_into` it. The slices are contiguous (the pass checks that every dim
    before the axis is 1), so a producer's kernel writes its slice as a whole tensor."""
    notes = graph.annotations
    emitted = {id(n) for n in nodes}
    viewed = {id(v) for n in graph.nodes if n.op in VIEW_OPS for v in n.inputs}
    slices: dict[int, _Slice] = {}
    for concat in nodes:
        out = concat.outputs[0]
        if (concat.op != "concat" or not notes.get(concat.name, {}).get("concat_inplace")
                or id(out) in placed or id(out) in viewed):
            continue
        axis, shape = concat.attrs["axis"], out.type.shape
        inner = math.prod(shape[axis + 1:]) * np.dtype(out.type.dtype).itemsize
        mine = {}
        for v in concat.inputs:
            p = v.producer
            mark = notes.get(p.name, {}).get("write_into") if p is not None else None
            if (p is None or id(p) not in emitted or mark is None or mark[0] != concat.name
                    or id(v) in placed or id(v) in viewed):
                break
            mine[id(v)] = _Slice(concat, p, mark[1] * inner)
        else:
            slices.update(mine)
    return slices


def _residuals_in_place(nodes: list[Node], index: dict[int, int],
                        buffers: dict[int, memory.Buffer], slices: dict,
                        annotations: dict, vector_width: int) -> dict[int, int]:
    """Put the output of each conv that adds a residual on the residual's buffer when the conv
    is that buffer's last reader and its kernel reads each residual element just before it
    writes the output element there (emit/conv.residual_in_place): the conv then reads and
    writes the same lines, where a separate output costs one more stream of memory traffic
    (ResNet-50's residual convs on 56x56 write 3.2 MB each). Not when the conv's input is in
    that buffer too (the kernel reads its input around each pixel). Merges the buffers (the
    residual's now lives on to the output's last reader) and returns {output key: the key of
    the buffer that holds it}."""
    shared: dict[int, int] = {}
    concat_buffers = {id(s.concat.outputs[0]) for s in slices.values()}

    def holder(key: int) -> int:
        while key in shared:
            key = shared[key]
        return key
    for n in nodes:
        if not residual_in_place(n, annotations, vector_width):
            continue
        out_key, res_key = id(n.outputs[0]), holder(id(root(n.inputs[3])))
        # no buffer of its own: a graph input or output, a constant, or a concat's slice
        out, res = buffers.get(out_key), buffers.get(res_key)
        if (out is None or res is None or res_key in concat_buffers
                or res.last != index[id(n)] or res.size != out.size
                or holder(id(root(n.inputs[0]))) == res_key):
            continue
        res.last = max(res.last, out.last)
        del buffers[out_key]
        shared[out_key] = res_key
    return {key: holder(key) for key in shared}


def root(value: Value) -> Value:
    """The value whose buffer `value` lives in (views alias their input)."""
    while value.producer is not None and value.producer.op in VIEW_OPS:
        value = value.producer.inputs[0]
    return value


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: lowering builds ~10^5 llvmlite objects, and the
    full collections they trigger walk the whole heap (ResNet-50: ~0.3 s of ~0.65 s lowering),
    and touch every page a forked compile child shares (copy-on-write faults in both). The
    cycles left behind are collected once the collector runs again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def lower(graph: Graph, vector_width: int, weights_symbol: str, rewrites: bool = True,
          profile: bool = False,
          on_kernel_module: Callable[[ir.Module, str], None] | None = None) -> Lowered:
    """Lower `graph` (the backend's own copy: it is rewritten in place). With `profile`, `run`
    also adds each task's wall time (ns, clock_gettime) to the exported i64 array
    `graphcnn_profile`, one slot per task in order. `on_kernel_module(module, pipeline)` gets
    each kernel module as soon as it is complete (e.g. codegen.ObjectBuilder.submit, to compile
    it while lowering goes on); every one of them is in the result's `modules` as well."""
    with gc_paused():
        return _lower(graph, vector_width, weights_symbol, rewrites, profile, on_kernel_module)


def _lower(graph: Graph, vector_width: int, weights_symbol: str, rewrites: bool,
           profile: bool, on_kernel_module: Callable[[ir.Module, str], None] | None) -> Lowered:
    if rewrites:
        from graphcnn.passes import optimize  # passes import the op table, not this backend

        graph = optimize(graph, opt_level=2, target="llvm", block=vector_width)
    graph = legalize(fuse_pools(graph, vector_width), vector_width)
    module = ir.Module(name=graph.name)
    ctx = EmitContext(module, vector_width, weights_symbol, graph.annotations, on_kernel_module)
    nodes = [n for n in graph.nodes if n.op not in VIEW_OPS]
    for v in graph.values():
        if v.type.dtype != "float32":
            where_ = where(v.producer) if v.producer is not None else f"value {v.name!r}"
            raise CompileError(f"{where_}: the llvm backend computes float32 only, "
                               f"%{v.name} is {v.type}")
    for node in graph.nodes:
        if node.op not in EMITTERS and node.op not in VIEW_OPS:
            raise CompileError(f"{where(node)}: the llvm backend has no kernel for op "
                               f"{node.op!r}")

    # ----- 2. buffers ------------------------------------------------------------------------
    for i, v in enumerate(graph.inputs):
        ctx.locations[id(v)] = Location("input", i)
    copies: list[tuple[Value, int]] = []  # (source value, output index) needing a copy
    output_roots: set[int] = set()
    for j, v in enumerate(graph.outputs):
        r = root(v)
        if r is v and v.producer is not None and id(v) not in output_roots:
            ctx.locations[id(v)] = Location("output", j)
            output_roots.add(id(v))
        else:
            copies.append((v, j))
    index = {id(n): i for i, n in enumerate(nodes)}
    # concats the pipeline marked in place (passes/concat_inplace.py): each input is written
    # straight into its slice of the concat's buffer, and the concat itself emits nothing
    slices = _inplace_slices(graph, nodes, ctx.locations)
    buffers: dict[int, memory.Buffer] = {}
    roots: dict[int, Value] = {}
    for n in nodes:
        for v in n.outputs:
            if id(v) not in ctx.locations and id(v) not in slices:
                buffers[id(v)] = memory.Buffer(id(v), v.type.nbytes, index[id(n)], index[id(n)])
                roots[id(v)] = v
    def owner(key: int) -> tuple[int, int]:
        """(id of the value whose buffer holds value `key`, byte offset in it): a concat chain
        resolves to its last concat."""
        offset = 0
        while key in slices:
            offset += slices[key].byte_offset
            key = id(slices[key].concat.outputs[0])
        return key, offset
    for key, s in slices.items():  # the shared buffer is live from its first writer on
        buf = buffers[owner(key)[0]]
        buf.first = min(buf.first, index[id(s.writer)])

    def touch(v: Value, at: int) -> None:
        buf = buffers.get(owner(id(root(v)))[0])
        if buf is not None:
            buf.last = max(buf.last, at)
    for n in nodes:
        for v in n.inputs:
            touch(v, index[id(n)])
    for k, (v, _) in enumerate(copies):
        touch(v, len(nodes) + k)
    shared = _residuals_in_place(nodes, index, buffers, slices, graph.annotations,
                                 vector_width)
    workspace = memory.plan(list(buffers.values()))
    for key, buf in buffers.items():
        ctx.locations[key] = Location("workspace", buf.offset)
    for key, holder in shared.items():
        ctx.locations[key] = ctx.locations[holder]
    for key in slices:
        holder, offset = owner(key)
        ctx.locations[key] = Location("workspace", buffers[holder].offset + offset)
    inplace = {id(s.concat) for s in slices.values()}
    for v in graph.values():
        r = root(v)
        if r is not v:
            if r.is_constant and id(r) not in ctx.locations:
                ctx.locations[id(r)] = Location("weights", ctx.add_weights(r.data))
            if id(r) in ctx.locations and id(v) not in ctx.locations:
                ctx.locations[id(v)] = ctx.locations[id(r)]

    # ----- 3. kernels ------------------------------------------------------------------------
    for node in nodes:
        if id(node) in inplace:
            continue
        try:
            EMITTERS[node.op](ctx, node)
        except GraphcnnError:
            raise
        except Exception as e:  # an emitter that cannot handle these attrs/shapes: say where
            raise CompileError(f"{where(node)}: cannot lower to LLVM: "
                               f"{type(e).__name__}: {e}") from e
    for v, j in copies:
        out = Value(f"{v.name}.out{j}", v.type)
        ctx.locations[id(out)] = Location("output", j)
        copy_node = Node(f"copy_out{j}", "identity", [v], {})
        emit_copy(ctx, copy_node, v, out)
    ctx.seal_kernels()  # every kernel is emitted: the last kernel module can compile now

    # ----- 4. the pool and the entry point ----------------------------------------------------
    pool = threads.emit_pool(module)
    run = ir.Function(module, ir.FunctionType(ir.VoidType(), [F32PP, F32PP, I8P]), "run")
    run.args[0].name, run.args[1].name, run.args[2].name = "inputs", "outputs", "workspace"
    b = ir.IRBuilder(run.append_basic_block("entry"))
    env = b.alloca(ir.ArrayType(I8P, 3), name="env")
    for k, arg in enumerate(run.args):
        slot = b.gep(env, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), k)],
                     name=f"env.{k}")
        b.store(b.bitcast(arg, I8P, name=f"{arg.name}.i8"), slot)
    env_p = b.bitcast(env, I8P, name="env.p")
    clock = _profile_clock(module, len(ctx.tasks)) if profile else None
    parallel = [threads.worth_parallel(t.num_tasks, t.work, t.op) for t in ctx.tasks]
    if any(parallel):
        count = b.call(pool.run_begin, [], name="threads")
    for k, task in enumerate(ctx.tasks):
        start = clock(b, None, k) if clock else None
        n = ir.Constant(ir.IntType(64), task.num_tasks)
        if parallel[k]:
            b.call(pool.parallel_for, [task.fn, env_p, n, count])
        else:
            b.call(task.fn, [env_p, ir.Constant(ir.IntType(64), 0), n])
        if clock:
            clock(b, start, k)
    if any(parallel):
        b.call(pool.run_end, [count])
    b.ret_void()
    kernels = [{"node": t.node, "op": t.op, "fn": t.fn.name, "tasks": t.num_tasks,
                "work": t.work} for t in ctx.tasks]
    return Lowered(module, ctx.weights_blob(), workspace, ctx.weights_bytes, weights_symbol,
                   kernels, ctx.kernel_modules)


def _profile_clock(module: ir.Module, slots: int):
    """Timer for the instrumented build: clock(b, None, k) reads the clock; clock(b, t0, k)
    adds now - t0 to graphcnn_profile[k]."""
    i64, i32 = ir.IntType(64), ir.IntType(32)
    table_ty = ir.ArrayType(i64, max(slots, 1))
    table = ir.GlobalVariable(module, table_ty, "graphcnn_profile")
    table.initializer = ir.Constant(table_ty, None)
    timespec = ir.LiteralStructType([i64, i64])
    gettime = ir.Function(module, ir.FunctionType(i32, [i32, timespec.as_pointer()]),
                          "clock_gettime")

    def now(b: ir.IRBuilder) -> ir.Value:
        with b.goto_entry_block():
            ts = b.alloca(timespec, name="ts")
        b.call(gettime, [ir.Constant(i32, 1), ts])  # CLOCK_MONOTONIC
        sec = b.load(b.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 0)], name="ts.s"),
                     name="sec")
        nsec = b.load(b.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 1)], name="ts.ns"),
                      name="nsec")
        return b.add(b.mul(sec, ir.Constant(i64, 1_000_000_000), name="sec.ns"), nsec, name="now")

    def clock(b: ir.IRBuilder, start: ir.Value | None, k: int) -> ir.Value:
        t = now(b)
        if start is None:
            return t
        slot = b.gep(table, [ir.Constant(i64, 0), ir.Constant(i64, k)], name=f"prof.{k}")
        b.store(b.add(b.load(slot, name=f"prof.{k}.old"), b.sub(t, start, name=f"dt.{k}"),
                      name=f"prof.{k}.new"), slot)
        return t
    return clock

