"""Stage 3, emit: kernel steps + their placement -> one LLVM module with the entry point

    i32 run(float** inputs, float** outputs, i8* workspace)

(the pointers point at any element type; `run` returns 0, or the error code of a kernel that
found its runtime data invalid: EmitContext.fail)

Each step becomes task functions: a kernels/ plan through the kernel call of its op (the plan's
body goes to a kernel module of its own, handed to `on_kernel_module` once full, so its LLVM
compile can start while emission goes on), any other node through its op's emitter. Outputs
that alias something are copied out last. Then the thread pool (threads.py) and `run`, which
calls every task in order, in parallel where threads.worth_parallel says it pays. Nothing here
changes the graph or chooses a kernel.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from llvmlite import ir

from graphcnn.budgets import check_time
from graphcnn.errors import CompileError, GraphcnnError, where
from graphcnn.ir import Graph, Node, Value

from .. import threads
from ..place import Placement
from ..plan import Step
from .base import EMITTERS, EmitContext, Location, Task
from .conv import emit_fast
from .elementwise import emit_copy
from .indexing import emit_copy_any
from .linear import emit_gemm_plan

I8P = ir.IntType(8).as_pointer()
F32PP = ir.FloatType().as_pointer().as_pointer()

# op -> the call of a step's kernels/ plan: (ctx, node, plan) -> None
PLANNED: dict[str, Callable[[EmitContext, Node, object], None]] = {
    "conv": emit_fast, "gemm": emit_gemm_plan, "matmul": emit_gemm_plan,
}


def emit_step(ctx: EmitContext, step: Step, shared: dict | None = None) -> None:
    """The step's task functions; with `shared`, a step whose task key (shared_key) was emitted
    before calls the same functions instead of emitting copies: a deep chain of equal weightless
    layers on the same buffers (2000 ReLUs) compiles each distinct kernel once."""
    key = shared_key(ctx, step) if shared is not None else None
    if key is not None and key in shared:
        for fn, num_tasks, work in shared[key]:
            ctx.tasks.append(Task(fn, num_tasks, work, step.node.name, step.node.op))
        return
    state = (len(ctx.tasks), ctx.weights_bytes, len(ctx.locations), ctx.codes_given)
    _emit(ctx, step)
    if key is not None and state[1:] == (ctx.weights_bytes, len(ctx.locations), ctx.codes_given):
        # only tasks were added (no weights, buffers or error codes of this node's own)
        shared[key] = [(t.fn, t.num_tasks, t.work) for t in ctx.tasks[state[0]:]]


def shared_key(ctx: EmitContext, step: Step) -> tuple | None:
    """What an emitter's code depends on: op, attributes, kernel plan, and each input's and
    output's type and buffer location (None if a value has no location yet, e.g. a constant
    the emitter appends to the weights: then the step is not shared)."""
    node = step.node
    places = []
    for v in (*node.inputs, *node.outputs):
        loc = ctx.locations.get(id(v))
        if loc is None:
            return None
        places.append((v.type, loc))
    return node.op, node.attrs, step.family, step.plan, tuple(places)


def _emit(ctx: EmitContext, step: Step) -> None:
    node = step.node
    try:
        if step.plan is not None:
            PLANNED[node.op](ctx, node, step.plan)
        else:
            EMITTERS[node.op](ctx, node)
    except GraphcnnError:
        raise
    except Exception as e:  # an emitter that cannot handle these attrs/shapes: say where
        raise CompileError(f"{where(node)}: cannot lower to LLVM: "
                           f"{type(e).__name__}: {e}") from e


def emit_model(graph: Graph, steps: list[Step], placement: Placement, vector_width: int,
               weights_symbol: str, profile: bool = False,
               on_kernel_module: Callable[[ir.Module, str], None] | None = None
               ) -> EmitContext:
    """The module (`ctx.module`) with every step's tasks (`ctx.tasks`) and `run`; the
    context also holds the weights arena and the kernel modules."""
    # the module id is a line of LLVM IR text: a graph name may hold anything
    module = ir.Module(name=re.sub(r"[^\w.-]", "_", graph.name, flags=re.ASCII) or "model")
    ctx = EmitContext(module, vector_width, weights_symbol, graph.annotations, on_kernel_module)
    ctx.locations.update(placement.locations)
    for view, constant, offset in placement.constant_views:
        if id(constant) not in ctx.locations:
            ctx.locations[id(constant)] = Location("weights", ctx.add_weights(constant.data))
        ctx.locations.setdefault(id(view), ctx.locations[id(constant)].shifted(offset))
    shared: dict[tuple, list] = {}
    for step in steps:
        check_time(lambda: f"lowering {where(step.node)}")  # noqa: B023 (called at once)
        if id(step.node) not in placement.inplace_concats:  # those emit nothing
            emit_step(ctx, step, shared)
    for v, j in placement.copies:
        out = Value(f"{v.name}.out{j}", v.type)
        ctx.locations[id(out)] = Location("output", j)
        copy = emit_copy if v.type.dtype == "float32" else emit_copy_any
        copy(ctx, Node(f"copy_out{j}", "identity", [v], {}), v, out)
    ctx.seal_kernels()  # every kernel is emitted: the last kernel module can compile now
    _emit_run(ctx, profile)
    return ctx


def _emit_run(ctx: EmitContext, profile: bool) -> None:
    """The pool and `run`: every task in order, each a parallel-for where it pays."""
    module = ctx.module
    pool = threads.emit_pool(module)
    i32 = ir.IntType(32)
    run = ir.Function(module, ir.FunctionType(i32, [F32PP, F32PP, I8P]), "run")
    run.args[0].name, run.args[1].name, run.args[2].name = "inputs", "outputs", "workspace"
    b = ir.IRBuilder(run.append_basic_block("entry"))
    env = b.alloca(ir.ArrayType(I8P, 4), name="env")
    status = b.alloca(i32, name="status")
    b.store(ir.Constant(i32, 0), status)
    for k, arg in enumerate([*run.args, status]):
        slot = b.gep(env, [ir.Constant(i32, 0), ir.Constant(i32, k)], name=f"env.{k}")
        b.store(b.bitcast(arg, I8P, name=f"{arg.name or 'status'}.i8"), slot)
    env_p = b.bitcast(env, I8P, name="env.p")
    clock = ProfileClock(module, len(ctx.tasks)) if profile else None
    parallel = [threads.worth_parallel(t.num_tasks, t.work, t.op) for t in ctx.tasks]
    if any(parallel):
        count = b.call(pool.run_begin, [], name="threads")
    for k, task in enumerate(ctx.tasks):
        start = clock.now(b) if clock else None
        n = ir.Constant(ir.IntType(64), task.num_tasks)
        if parallel[k]:
            b.call(pool.parallel_for, [task.fn, env_p, n, count])
        else:
            b.call(task.fn, [env_p, ir.Constant(ir.IntType(64), 0), n])
        if clock:
            clock.add_since(b, start, k)
    if any(parallel):
        b.call(pool.run_end, [count])
    b.ret(b.load(status, name="status.v"))


class ProfileClock:
    """The instrumented build's timer: `add_since(b, t0, k)` adds now - t0 (ns,
    CLOCK_MONOTONIC) to slot k of the exported i64 array `graphcnn_profile`."""

    def __init__(self, module: ir.Module, slots: int):
        i64 = ir.IntType(64)
        table_ty = ir.ArrayType(i64, max(slots, 1))
        self.table = ir.GlobalVariable(module, table_ty, "graphcnn_profile")
        self.table.initializer = ir.Constant(table_ty, None)
        self.timespec = ir.LiteralStructType([i64, i64])
        self.gettime = ir.Function(
            module, ir.FunctionType(ir.IntType(32), [ir.IntType(32), self.timespec.as_pointer()]),
            "clock_gettime")

    def now(self, b: ir.IRBuilder) -> ir.Value:
        i64, i32 = ir.IntType(64), ir.IntType(32)
        with b.goto_entry_block():
            ts = b.alloca(self.timespec, name="ts")
        b.call(self.gettime, [ir.Constant(i32, 1), ts])  # CLOCK_MONOTONIC
        sec = b.load(b.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 0)], name="ts.s"),
                     name="sec")
        nsec = b.load(b.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 1)], name="ts.ns"),
                      name="nsec")
        return b.add(b.mul(sec, ir.Constant(i64, 1_000_000_000), name="sec.ns"), nsec, name="now")

    def add_since(self, b: ir.IRBuilder, start: ir.Value, k: int) -> None:
        i64 = ir.IntType(64)
        t = self.now(b)
        slot = b.gep(self.table, [ir.Constant(i64, 0), ir.Constant(i64, k)], name=f"prof.{k}")
        b.store(b.add(b.load(slot, name=f"prof.{k}.old"), b.sub(t, start, name=f"dt.{k}"),
                      name=f"prof.{k}.new"), slot)
