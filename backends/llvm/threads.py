"""The thread pool, emitted as LLVM IR into every model module (no C, no Python in the loop).

Design: a persistent pool of (threads - 1) pthreads per compiled model, created by
`graphcnn_init_threads(n)` and joined by `graphcnn_shutdown_threads()` (the Python side calls
them when the model is built and when it is garbage collected; a C caller of the AOT library
calls them itself — without init the library runs single-threaded).

`gc_parallel_for(fn, env, num_tasks)` cuts [0, num_tasks) into fixed chunks of contiguous tasks
(~4 per thread) that the caller and the workers claim from an atomic counter. Each task writes
its own outputs with a fixed summation order, whoever runs it, so results are bit-identical
for any thread count and any schedule. Claiming (rather than a static split) matters on a
shared machine: a descheduled worker delays a kernel by one chunk, not by a whole share.
Hand-off: one mutex and two condition variables. Between kernels a worker first polls the
generation counter for SPIN pause-rounds, then sleeps on `start`; a worker joins a job under the mutex (`active` += 1)
unless the caller already drained and closed it; the caller, after draining the counter, closes
the job, polls `active` (SPIN rounds) and then sleeps on `done` until every joined worker left. Kernels whose work is below a
threshold are called directly, single-threaded.

pthread_mutex_t / pthread_cond_t live in zero-initialised 64-byte globals: on glibc the static
initialisers are all zeros and both types are smaller than 64 bytes.
"""
from __future__ import annotations

from llvmlite import ir

I8 = ir.IntType(8)
I8P = I8.as_pointer()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VOID = ir.VoidType()
TASK_FN = ir.FunctionType(VOID, [I8P, I64, I64])
MAX_THREADS = 256
# below this much work (~flops) a kernel runs on the calling thread: waking the pool costs more
PARALLEL_THRESHOLD = 2_000_000
# pause-loop iterations (~140 cycles each) a worker polls for the next job before sleeping on
# the condition variable, and the caller polls for the workers to finish before sleeping: a
# futex wake-up costs tens of microseconds per kernel, a kernel is often ~100 us
SPIN = 3000


def _global(module: ir.Module, name: str, ty: ir.Type, init=None) -> ir.GlobalVariable:
    g = ir.GlobalVariable(module, ty, name)
    g.linkage = "internal"
    g.initializer = init if init is not None else ir.Constant(ty, None)
    return g


def _i64(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def emit_pool(module: ir.Module) -> ir.Function:
    """Define the pool globals, the worker, init/shutdown (exported) and gc_parallel_for."""
    sync_ty = ir.ArrayType(I8, 64)
    mutex = _global(module, "pool.mutex", sync_ty)
    start_cv = _global(module, "pool.start", sync_ty)
    done_cv = _global(module, "pool.done", sync_ty)
    for g in (mutex, start_cv, done_cv):
        g.align = 64
    handles = _global(module, "pool.handles", ir.ArrayType(I64, MAX_THREADS))
    nthreads = _global(module, "pool.nthreads", I64, _i64(1))
    gen = _global(module, "pool.gen", I64)
    active = _global(module, "pool.active", I64)   # workers that joined the current job
    closed = _global(module, "pool.closed", I64)   # the caller drained the job: late joiners skip
    next_task = _global(module, "pool.next", I64)  # next unclaimed task (atomic)
    job_step = _global(module, "pool.step", I64)
    quit_ = _global(module, "pool.quit", I64)
    job_fn = _global(module, "pool.fn", TASK_FN.as_pointer())
    job_env = _global(module, "pool.env", I8P)
    job_n = _global(module, "pool.ntasks", I64)

    def declare(name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args), name)
    worker_ty = ir.FunctionType(I8P, [I8P])
    p_create = declare("pthread_create", I32, [I64.as_pointer(), I8P, worker_ty.as_pointer(), I8P])
    p_join = declare("pthread_join", I32, [I64, I8P.as_pointer()])
    lock_fn = declare("pthread_mutex_lock", I32, [I8P])
    unlock_fn = declare("pthread_mutex_unlock", I32, [I8P])
    wait_fn = declare("pthread_cond_wait", I32, [I8P, I8P])
    bcast_fn = declare("pthread_cond_broadcast", I32, [I8P])

    pause = declare("llvm.x86.sse2.pause", VOID, [])

    def spin_until(b: ir.IRBuilder, ready, name: str) -> None:
        """Poll `ready()` (an i1 built fresh each round) up to SPIN times with `pause`."""
        pre = b.block
        hdr, body, out = (b.append_basic_block(f"{name}.{s}") for s in ("hdr", "body", "out"))
        b.branch(hdr)
        b.position_at_end(hdr)
        i = b.phi(I64, name=f"{name}.i")
        i.add_incoming(_i64(0), pre)
        go = b.or_(ready(), b.icmp_unsigned(">=", i, _i64(SPIN), name=f"{name}.max"),
                   name=f"{name}.go")
        b.cbranch(go, out, body)
        b.position_at_end(body)
        b.call(pause, [])
        i.add_incoming(b.add(i, _i64(1), name=f"{name}.n"), body)
        b.branch(hdr)
        b.position_at_end(out)

    def ptr(b: ir.IRBuilder, g: ir.GlobalVariable) -> ir.Value:
        return b.bitcast(g, I8P, name=f"{g.name}.p")

    def lock(b):
        b.call(lock_fn, [ptr(b, mutex)])

    def unlock(b):
        b.call(unlock_fn, [ptr(b, mutex)])

    def claim_loop(b: ir.IRBuilder, fn: ir.Value, env: ir.Value, n: ir.Value, step: ir.Value,
                   name: str) -> None:
        """Claim chunks [lo, lo + step) of the shared counter until it passes n; run each."""
        hdr = b.append_basic_block(f"{name}.claim")
        body = b.append_basic_block(f"{name}.run")
        out = b.append_basic_block(f"{name}.drained")
        b.branch(hdr)
        b.position_at_end(hdr)
        lo = b.atomic_rmw("add", next_task, step, "seq_cst", name=f"{name}.lo")
        b.cbranch(b.icmp_unsigned("<", lo, n, name=f"{name}.more"), body, out)
        b.position_at_end(body)
        end = b.add(lo, step, name=f"{name}.end")
        hi = b.select(b.icmp_unsigned("<", end, n, name=f"{name}.inside"), end, n,
                      name=f"{name}.hi")
        b.call(fn, [env, lo, hi])
        b.branch(hdr)
        b.position_at_end(out)

    # ----- worker(i8* id) -------------------------------------------------------------------
    worker = ir.Function(module, worker_ty, "pool.worker")
    worker.linkage = "internal"
    b = ir.IRBuilder(worker.append_basic_block("entry"))
    seen = b.alloca(I64, name="seen")
    b.store(_i64(0), seen)
    top, wait_hdr, wait_body, woke, pick, join, exit_blk = (worker.append_basic_block(n) for n in (
        "top", "wait.hdr", "wait.body", "woke", "pick", "join", "exit"))
    b.branch(top)
    b.position_at_end(top)
    spin_until(b, lambda: b.or_(
        b.icmp_unsigned("!=", b.load_atomic(gen, "monotonic", 8, name="sg"),
                        b.load(seen, name="ss"), name="new"),
        b.icmp_unsigned("!=", b.load_atomic(quit_, "monotonic", 8, name="sq"), _i64(0),
                        name="sq.set"), name="spin.go"), "wspin")
    lock(b)
    b.branch(wait_hdr)
    b.position_at_end(wait_hdr)
    same = b.icmp_unsigned("==", b.load(gen, name="g"), b.load(seen, name="s"), name="same")
    live = b.icmp_unsigned("==", b.load(quit_, name="q"), _i64(0), name="live")
    b.cbranch(b.and_(same, live, name="idle"), wait_body, woke)
    b.position_at_end(wait_body)
    b.call(wait_fn, [ptr(b, start_cv), ptr(b, mutex)])
    b.branch(wait_hdr)
    b.position_at_end(woke)
    stop = b.icmp_unsigned("!=", b.load(quit_, name="q2"), _i64(0), name="stop")
    b.cbranch(stop, exit_blk, pick)
    b.position_at_end(exit_blk)
    unlock(b)
    b.ret(ir.Constant(I8P, None))
    b.position_at_end(pick)
    b.store(b.load(gen, name="g2"), seen)
    # a job the caller already closed (it drained the counter without us): skip it
    late = b.icmp_unsigned("!=", b.load(closed, name="closed"), _i64(0), name="late")
    with b.if_then(late):
        unlock(b)
        b.branch(top)
    b.branch(join)
    b.position_at_end(join)
    b.store_atomic(b.add(b.load(active, name="a"), _i64(1), name="a1"), active, "monotonic", 8)
    fn = b.load(job_fn, name="fn")
    env = b.load(job_env, name="env")
    n = b.load(job_n, name="n")
    step = b.load(job_step, name="step")
    unlock(b)
    claim_loop(b, fn, env, n, step, "w")
    lock(b)
    left = b.sub(b.load(active, name="a2"), _i64(1), name="left")
    b.store_atomic(left, active, "release", 8)
    with b.if_then(b.icmp_unsigned("==", left, _i64(0), name="last")):
        b.call(bcast_fn, [ptr(b, done_cv)])
    unlock(b)
    b.branch(top)

    # ----- gc_parallel_for(fn, env, n) -------------------------------------------------------
    pfor = ir.Function(module, ir.FunctionType(VOID, [TASK_FN.as_pointer(), I8P, I64]),
                       "gc_parallel_for")
    pfor.linkage = "internal"
    fn, env, n = pfor.args
    fn.name, env.name, n.name = "fn", "env", "n"
    b = ir.IRBuilder(pfor.append_basic_block("entry"))
    count = b.load(nthreads, name="count")
    serial = b.or_(b.icmp_unsigned("<=", count, _i64(1), name="one"),
                   b.icmp_unsigned("<=", n, _i64(1), name="small"), name="serial")
    with b.if_else(serial) as (then, otherwise):
        with then:
            b.call(fn, [env, _i64(0), n])
        with otherwise:
            # ~4 chunks per thread: a descheduled worker delays the kernel by one chunk at most
            step = b.udiv(n, b.mul(count, _i64(4), name="slots"), name="step0")
            step = b.select(b.icmp_unsigned("<", step, _i64(1), name="zero"), _i64(1), step,
                            name="step")
            lock(b)
            b.store(fn, job_fn)
            b.store(env, job_env)
            b.store(n, job_n)
            b.store(step, job_step)
            b.store(_i64(0), next_task)
            b.store(_i64(0), closed)
            b.store(_i64(0), active)
            b.store_atomic(b.add(b.load(gen, name="g"), _i64(1), name="g1"), gen, "release", 8)
            b.call(bcast_fn, [ptr(b, start_cv)])
            unlock(b)
            claim_loop(b, fn, env, n, step, "own")
            lock(b)
            b.store(_i64(1), closed)
            unlock(b)
            spin_until(b, lambda: b.icmp_unsigned(
                "==", b.load_atomic(active, "acquire", 8, name="sa"), _i64(0), name="sa.zero"),
                "cspin")
            lock(b)
            hdr = b.append_basic_block("join.hdr")
            body = b.append_basic_block("join.body")
            after = b.append_basic_block("join.end")
            b.branch(hdr)
            b.position_at_end(hdr)
            pending = b.icmp_unsigned("!=", b.load(active, name="a"), _i64(0), name="pending")
            b.cbranch(pending, body, after)
            b.position_at_end(body)
            b.call(wait_fn, [ptr(b, done_cv), ptr(b, mutex)])
            b.branch(hdr)
            b.position_at_end(after)
            unlock(b)
    b.ret_void()

    # ----- graphcnn_init_threads(i64 n) -> i64 threads running --------------------------------
    init = ir.Function(module, ir.FunctionType(I64, [I64]), "graphcnn_init_threads")
    b = ir.IRBuilder(init.append_basic_block("entry"))
    want = init.args[0]
    want.name = "want"
    started = b.icmp_unsigned(">", b.load(nthreads, name="cur"), _i64(1), name="started")
    with b.if_then(started):
        b.ret(b.load(nthreads, name="cur2"))
    clamp = b.select(b.icmp_signed(">", want, _i64(MAX_THREADS), name="big"), _i64(MAX_THREADS),
                     want, name="clamped")
    total = b.select(b.icmp_signed("<", clamp, _i64(1), name="tiny"), _i64(1), clamp, name="total")
    b.store(_i64(0), quit_)
    b.store(total, nthreads)
    with _range(b, 1, total, "spawn") as i:
        slot = b.gep(handles, [_i64(0), i], name="handle")
        b.call(p_create, [slot, ir.Constant(I8P, None), worker,
                          b.inttoptr(i, I8P, name="id")])
    b.ret(total)

    # ----- graphcnn_shutdown_threads() --------------------------------------------------------
    shut = ir.Function(module, ir.FunctionType(VOID, []), "graphcnn_shutdown_threads")
    b = ir.IRBuilder(shut.append_basic_block("entry"))
    count = b.load(nthreads, name="count")
    lock(b)
    b.store_atomic(_i64(1), quit_, "release", 8)
    b.call(bcast_fn, [ptr(b, start_cv)])
    unlock(b)
    with _range(b, 1, count, "join") as i:
        handle = b.load(b.gep(handles, [_i64(0), i], name="handle.p"), name="handle")
        b.call(p_join, [handle, ir.Constant(I8P.as_pointer(), None)])
    b.store(_i64(1), nthreads)
    b.store(_i64(0), quit_)
    b.ret_void()
    return pfor


class _range:
    """for (i = lo; i < hi; ++i) over i64 with a runtime bound (a tiny for_range)."""

    def __init__(self, b: ir.IRBuilder, lo: int, hi: ir.Value, name: str):
        self.b, self.lo, self.hi, self.name = b, lo, hi, name

    def __enter__(self) -> ir.Value:
        b, name = self.b, self.name
        self.pre = b.block
        self.hdr = b.append_basic_block(f"{name}.hdr")
        self.body = b.append_basic_block(f"{name}.body")
        self.end = b.append_basic_block(f"{name}.end")
        b.branch(self.hdr)
        b.position_at_end(self.hdr)
        self.i = b.phi(I64, name=name)
        self.i.add_incoming(_i64(self.lo), self.pre)
        b.cbranch(b.icmp_signed("<", self.i, self.hi, name=f"{name}.c"), self.body, self.end)
        b.position_at_end(self.body)
        return self.i

    def __exit__(self, *exc) -> None:
        b = self.b
        self.i.add_incoming(b.add(self.i, _i64(1), name=f"{self.name}.n"), b.block)
        b.branch(self.hdr)
        b.position_at_end(self.end)
