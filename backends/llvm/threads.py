"""The thread pool, emitted as LLVM IR into every model module (no C, no Python in the loop).

Design: a persistent pool of (threads - 1) pthreads per compiled model, created by
`graphcnn_init_threads(n)` and joined by `graphcnn_shutdown_threads()` (the Python side calls
them when the model is built and when it is garbage collected; a C caller of the AOT library
calls them itself — without init the library runs single-threaded).

`gc_parallel_for(fn, env, num_tasks)` gives each of the T threads (the caller is thread 0) a
home slice of [0, num_tasks), the t-th of T contiguous ranges, cut into fixed chunks (~4 a
thread). A thread claims its own home's chunks first, then the other homes' (t+1, t+2, ...),
each claim a compare-and-swap on that home's counter. Each task writes its own outputs with a
fixed summation order, whoever runs it, so results are bit-identical for any thread count and
any schedule. Claiming (rather than a static split) matters on a shared machine: a descheduled
worker delays a kernel by one chunk, not by a whole share. Homes keep the split the same from
kernel to kernel: with a spatial task order (conv2d_nchwc.TaskLoop), the image rows a thread
writes are the rows it reads in the next layer, still in its own L2 (ResNet-50's 1x1 convs on
56x56 ran up to 42% faster; shared claiming handed them to whichever thread came first).

Each home counter holds the job's generation in its high 32 bits and the home's next unclaimed
task in its low 32 bits. A claim is a CAS that expects the generation it started from, so a
worker that falls behind can never claim a task of a later job with stale job fields; before
rewriting the job fields the caller closes the job word and every home (index all ones), so a
stale read of them always meets a failing CAS. Workers wait for the job word to open. The
caller counts finished tasks (`done`) and returns when all are done: no lock, no condition
variable and no system call per kernel.

Hand-off between kernels is the cost that matters at batch 1 (a ResNet runs ~70 kernels of
10-500 us each, and waking a sleeping thread costs 5-100 us, more on a virtual machine). So the
workers poll (with `pause`) only while a `run` is in progress: `run` sets `busy` on entry and
wakes sleepers then, so they are polling by the time its first parallel kernel starts, and
clears it on exit; workers keep polling LINGER rounds more (a back-to-back next call finds them
awake) and then sleep on a condition variable. Between inferences the pool costs no CPU. Pollers
call sched_yield every YIELD_EVERY rounds so an oversubscribed machine still makes progress.
Kernels with less work than `worth_parallel` asks for are called directly on the calling
thread.

Waking a sleeper: Linux queues a thread woken by a futex on the waker's CPU when it guesses
they share data, so the worker waited 4-9 ms behind the computing caller until the next load
balance (measured with /proc/<tid>/schedstat) and took no part in the first calls after an
idle spell. So the caller yields once after the broadcast, and a woken worker that finds itself
on the caller's CPU (`run` records it) narrows its affinity to its original CPU set minus that
CPU, which moves it at once.

pthread_mutex_t / pthread_cond_t live in zero-initialised 64-byte globals: on glibc the static
initialisers are all zeros and both types are smaller than 64 bytes. A forked child (its pool
threads were not copied) runs single-threaded: `run` compares getpid() with the pool's owner.
"""
from __future__ import annotations

from contextlib import contextmanager

from llvmlite import ir

from .builder import for_range

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I8P = I8.as_pointer()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VOID = ir.VoidType()
TASK_FN = ir.FunctionType(VOID, [I8P, I64, I64])
MAX_THREADS = 256
# Below this much work a kernel runs on the calling thread: each threshold is ~10 us of one
# core, against a hand-off to polling workers of ~1-2 us and, for a run whose kernels are all
# below, not waking the pool at all. Work is flops for the compute kernels (ops in FLOP_OPS,
# ~100 GFLOP/s a core) and elements for the memory-bound rest (~0.1-0.3 ns each: pools,
# layout changes, batch norm). Against one 400k threshold for both (A/B in one process, 2
# threads): LeNet-5 b1 -25%, b64 -3%, DenseNet-121 -3%, ResNet-50 -4%, the rest within 2%.
PARALLEL_FLOPS = 1_000_000
PARALLEL_ELEMENTS = 100_000
FLOP_OPS = ("conv", "gemm")

# pause rounds (~40 ns each) between sched_yield calls while polling
YIELD_EVERY = 1024
# pause rounds a worker keeps polling after a `run` returned before it sleeps (~100 us)
LINGER = 2500
CLOSED = 0xFFFFFFFF  # counter index while the caller rewrites the job fields
CPU_SET_BYTES = 128  # glibc cpu_set_t (1024 CPUs)
SEQ = "seq_cst"


def worth_parallel(num_tasks: int, work: int, op: str) -> bool:
    """Whether a kernel of `num_tasks` tasks and `work` (flops or elements, by `op`) goes to the
    pool rather than running on the calling thread."""
    return num_tasks > 1 and work >= (PARALLEL_FLOPS if op in FLOP_OPS else PARALLEL_ELEMENTS)


def _global(module: ir.Module, name: str, ty: ir.Type, init=None) -> ir.GlobalVariable:
    g = ir.GlobalVariable(module, ty, name)
    g.linkage = "internal"
    g.initializer = init if init is not None else ir.Constant(ty, None)
    return g


def _i64(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


class Pool:
    """The pool's globals and the IR functions built on them; `emit_pool` returns one."""

    def __init__(self, module: ir.Module):
        self.module = module
        sync_ty = ir.ArrayType(I8, 64)
        self.mutex = _global(module, "pool.mutex", sync_ty)
        self.start_cv = _global(module, "pool.start", sync_ty)
        for g in (self.mutex, self.start_cv):
            g.align = 64
        self.handles = _global(module, "pool.handles", ir.ArrayType(I64, MAX_THREADS))
        self.nthreads = _global(module, "pool.nthreads", I64, _i64(1))
        self.owner = _global(module, "pool.owner", I32)     # pid that started the workers
        # generation << 32 | CLOSED while the caller writes a job, | 0 once it is open
        self.job_word = _global(module, "pool.job", I64)
        self.job_word.align = 64
        # per thread, on its own cache line: generation << 32 | next task of its home slice
        self.homes = _global(module, "pool.homes", ir.ArrayType(ir.ArrayType(I64, 8),
                                                                  MAX_THREADS))
        self.homes.align = 64
        self.done = _global(module, "pool.done", I64)       # tasks finished in this job
        self.done.align = 64
        self.busy = _global(module, "pool.busy", I64)       # a run is in progress: poll
        self.sleepers = _global(module, "pool.sleepers", I64)
        self.quit = _global(module, "pool.quit", I64)
        self.caller_cpu = _global(module, "pool.caller_cpu", I32)  # where `run` was entered
        self.job_fn = _global(module, "pool.fn", TASK_FN.as_pointer())
        self.job_env = _global(module, "pool.env", I8P)
        self.job_n = _global(module, "pool.ntasks", I64)
        self.job_step = _global(module, "pool.step", I64)

        worker_ty = ir.FunctionType(I8P, [I8P])
        self.p_create = self._declare("pthread_create", I32,
                                      [I64.as_pointer(), I8P, worker_ty.as_pointer(), I8P])
        self.p_join = self._declare("pthread_join", I32, [I64, I8P.as_pointer()])
        self.lock_fn = self._declare("pthread_mutex_lock", I32, [I8P])
        self.unlock_fn = self._declare("pthread_mutex_unlock", I32, [I8P])
        self.wait_fn = self._declare("pthread_cond_wait", I32, [I8P, I8P])
        self.bcast_fn = self._declare("pthread_cond_broadcast", I32, [I8P])
        self.yield_fn = self._declare("sched_yield", I32, [])
        self.getpid = self._declare("getpid", I32, [])
        self.getcpu = self._declare("sched_getcpu", I32, [])
        self.getaffinity = self._declare("sched_getaffinity", I32, [I32, I64, I8P])
        self.setaffinity = self._declare("sched_setaffinity", I32, [I32, I64, I8P])
        self.pause = self._declare("llvm.x86.sse2.pause", VOID, [])
        self.memcpy = self._declare("llvm.memcpy.p0i8.p0i8.i64", VOID, [I8P, I8P, I64, I1])
        self.memset = self._declare("llvm.memset.p0i8.i64", VOID, [I8P, I8, I64, I1])

        self.claim = self._emit_claim()
        self.worker = self._emit_worker(worker_ty)
        self.parallel_for = self._emit_parallel_for()
        self.run_begin, self.run_end = self._emit_run_hooks()
        self._emit_init()
        self._emit_shutdown()

    # ----- small helpers ---------------------------------------------------------------------
    def _declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return (self.module.globals.get(name)
                or ir.Function(self.module, ir.FunctionType(ret, args), name))

    def _function(self, name: str, ret: ir.Type, args: list[ir.Type], arg_names=()
                  ) -> tuple[ir.Function, ir.IRBuilder]:
        fn = ir.Function(self.module, ir.FunctionType(ret, args), name)
        fn.linkage = "internal"
        for a, n in zip(fn.args, arg_names):
            a.name = n
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def _home(self, b: ir.IRBuilder, h: ir.Value) -> ir.Value:
        return b.gep(self.homes, [_i64(0), h, _i64(0)], name="home.slot")

    def _ptr(self, b: ir.IRBuilder, g: ir.GlobalVariable) -> ir.Value:
        return b.bitcast(g, I8P, name=f"{g.name}.p")

    @contextmanager
    def _locked(self, b: ir.IRBuilder):
        b.call(self.lock_fn, [self._ptr(b, self.mutex)])
        yield
        b.call(self.unlock_fn, [self._ptr(b, self.mutex)])

    def _wake_sleepers(self, b: ir.IRBuilder) -> None:
        """Broadcast `start` if a worker sleeps (the caller stored what they wait for first).
        Linux tends to queue a thread woken this way on the waker's CPU, behind the caller,
        until the next load balance (4-9 ms measured here): one sched_yield lets it run at
        once and move itself off this CPU (see `_leave_caller_cpu`)."""
        asleep = b.icmp_unsigned("!=", b.load_atomic(self.sleepers, SEQ, 8, name="sl"),
                                 _i64(0), name="asleep")
        with b.if_then(asleep):
            with self._locked(b):
                b.call(self.bcast_fn, [self._ptr(b, self.start_cv)])
            b.call(self.yield_fn, [])

    def _leave_caller_cpu(self, b: ir.IRBuilder, allowed: ir.Value, scratch: ir.Value) -> None:
        """A worker woken onto the caller's CPU would share it with the caller: restrict the
        worker to its allowed CPUs minus that one (the kernel migrates it at once). `allowed`
        is the worker's original cpu_set_t, so the restriction never accumulates."""
        cpu = b.call(self.getcpu, [], name="cpu")
        here = b.icmp_signed("==", cpu, b.load_atomic(self.caller_cpu, "monotonic", 4,
                                                      name="ccpu"), name="here")
        inside = b.icmp_unsigned("<", cpu, ir.Constant(I32, CPU_SET_BYTES * 8), name="inrange")
        with b.if_then(b.and_(here, inside, name="move")):
            b.call(self.memcpy, [scratch, allowed, _i64(CPU_SET_BYTES), ir.Constant(I1, 0)])
            word = b.gep(b.bitcast(scratch, I64.as_pointer(), name="words"),
                         [b.zext(b.lshr(cpu, ir.Constant(I32, 6)), I64, name="wi")], name="w")
            bit = b.shl(_i64(1), b.zext(b.and_(cpu, ir.Constant(I32, 63)), I64), name="bit")
            old = b.load(word, name="old")
            others = b.and_(old, b.xor(bit, _i64(-1)), name="others")
            b.store(others, word)
            # only when another CPU is allowed (a worker pinned to one CPU stays)
            any_other = self._any_set(b, scratch)
            with b.if_then(any_other):
                b.call(self.setaffinity, [ir.Constant(I32, 0), _i64(CPU_SET_BYTES), scratch])

    def _any_set(self, b: ir.IRBuilder, mask: ir.Value) -> ir.Value:
        words = b.bitcast(mask, I64.as_pointer(), name="mw")
        acc = _i64(0)
        for k in range(CPU_SET_BYTES // 8):
            acc = b.or_(acc, b.load(b.gep(words, [_i64(k)]), name=f"m{k}"), name=f"acc{k}")
        return b.icmp_unsigned("!=", acc, _i64(0), name="anyset")

    def _poll(self, b: ir.IRBuilder, rounds: ir.Value) -> ir.Value:
        """One polling round: pause, and sched_yield every YIELD_EVERY rounds. Returns the
        incremented round count."""
        b.call(self.pause, [])
        nxt = b.add(rounds, _i64(1), name="rounds.n")
        with b.if_then(b.icmp_unsigned("==", b.urem(nxt, _i64(YIELD_EVERY), name="rounds.m"),
                                       _i64(0), name="yield.now")):
            b.call(self.yield_fn, [])
        return nxt

    # ----- claim(gen, tid): run chunks of job `gen` until none is left -----------------------
    def _emit_claim(self) -> ir.Function:
        """Thread `tid` claims chunks from its own home slice first, then from the others'
        (home tid+1, tid+2, ... mod count), each with a CAS on that home's counter."""
        fn, b = self._function("pool.claim", VOID, [I64, I64], ["gen", "tid"])
        gen, tid = fn.args
        wait, homes, home_hdr, check, try_, run, next_home, out = (
            fn.append_basic_block(n) for n in ("wait", "homes", "home.hdr", "check", "try",
                                               "run", "next", "out"))
        b.branch(wait)
        # the job opens once the caller has written its fields and every home counter
        b.position_at_end(wait)
        job = b.load_atomic(self.job_word, SEQ, 8, name="job")
        same = b.icmp_unsigned("==", b.lshr(job, _i64(32), name="job.gen"), gen, name="same")
        closed = b.icmp_unsigned("==", b.and_(job, _i64(0xFFFFFFFF), name="job.lo"),
                                 _i64(CLOSED), name="closed")
        opening = b.append_basic_block("opening")
        b.cbranch(same, opening, out)
        b.position_at_end(opening)
        with b.if_then(closed):
            b.call(self.pause, [])
            b.branch(wait)
        count = b.load(self.nthreads, name="count")
        n = b.load_atomic(self.job_n, SEQ, 8, name="n")
        step = b.load_atomic(self.job_step, SEQ, 8, name="step")
        ready = b.block
        b.branch(homes)

        b.position_at_end(homes)  # visit = 0 .. count-1: home (tid + visit) % count
        visit = b.phi(I64, name="visit")
        visit.add_incoming(_i64(0), ready)
        b.cbranch(b.icmp_unsigned("<", visit, count, name="more.homes"), home_hdr, out)
        b.position_at_end(home_hdr)
        home = b.urem(b.add(tid, visit, name="h.sum"), count, name="home")
        slot = self._home(b, home)
        home_end = b.udiv(b.mul(b.add(home, _i64(1), name="h1"), n, name="h1n"), count,
                          name="home.end")
        b.branch(check)
        b.position_at_end(check)
        c = b.load_atomic(slot, SEQ, 8, name="c")
        lo = b.and_(c, _i64(0xFFFFFFFF), name="lo")
        live = b.icmp_unsigned("==", b.lshr(c, _i64(32), name="c.gen"), gen, name="live")
        # a later job has begun (this one is done): leave; this home is used up: the next
        left = b.append_basic_block("left")
        b.cbranch(live, left, out)
        b.position_at_end(left)
        b.cbranch(b.icmp_unsigned("<", lo, home_end, name="more"), try_, next_home)
        b.position_at_end(try_)
        # succeeds only if the home is still (gen, lo): then n and step belong to job gen
        got = b.cmpxchg(slot, c, b.add(c, step, name="c.next"), SEQ, SEQ, name="cas")
        b.cbranch(b.extract_value(got, 1, name="claimed"), run, check)
        b.position_at_end(run)
        end = b.add(lo, step, name="end")
        hi = b.select(b.icmp_unsigned("<", end, home_end, name="inside"), end, home_end,
                      name="hi")
        # job gen is unfinished until we add to `done`: its fields are stable here
        b.call(b.load(self.job_fn, name="fn"), [b.load(self.job_env, name="env"), lo, hi])
        b.atomic_rmw("add", self.done, b.sub(hi, lo, name="count"), "release")
        b.branch(check)
        b.position_at_end(next_home)
        visit.add_incoming(b.add(visit, _i64(1), name="visit.n"), next_home)
        b.branch(homes)
        b.position_at_end(out)
        b.ret_void()
        return fn

    # ----- worker(i8* id) --------------------------------------------------------------------
    def _emit_worker(self, worker_ty: ir.FunctionType) -> ir.Function:
        worker = ir.Function(self.module, worker_ty, "pool.worker")
        worker.linkage = "internal"
        b = ir.IRBuilder(worker.append_basic_block("entry"))
        seen = b.alloca(I64, name="seen")
        rounds = b.alloca(I64, name="rounds")
        idle_rounds = b.alloca(I64, name="idle")
        mask_ty = ir.ArrayType(I8, CPU_SET_BYTES)
        allowed = b.bitcast(b.alloca(mask_ty, name="allowed"), I8P, name="allowed.p")
        scratch = b.bitcast(b.alloca(mask_ty, name="scratch"), I8P, name="scratch.p")
        b.call(self.memset, [allowed, ir.Constant(I8, 0), _i64(CPU_SET_BYTES), ir.Constant(I1, 0)])
        b.call(self.getaffinity, [ir.Constant(I32, 0), _i64(CPU_SET_BYTES), allowed])
        # the job published last before this worker started is not its to claim: a pool started
        # again (after shutdown, maybe with another thread count) would otherwise rerun the
        # unclaimed part of that job's homes as cut for the new count, on memory long freed
        b.store(b.lshr(b.load_atomic(self.job_word, SEQ, 8, name="c0"), _i64(32), name="g0"),
                seen)
        blocks = {n: worker.append_basic_block(n) for n in (
            "top", "wait", "go", "job", "idle", "poll", "sleep", "sleep.hdr", "sleep.wait",
            "sleep.out", "exit")}
        b.branch(blocks["top"])

        b.position_at_end(blocks["top"])
        b.store(_i64(0), rounds)
        b.store(_i64(0), idle_rounds)
        b.branch(blocks["wait"])

        b.position_at_end(blocks["wait"])
        g = b.lshr(b.load_atomic(self.job_word, "acquire", 8, name="c"), _i64(32), name="g")
        fresh = b.icmp_unsigned("!=", g, b.load(seen, name="s"), name="fresh")
        stop = b.icmp_unsigned("!=", b.load_atomic(self.quit, "acquire", 8, name="q"), _i64(0),
                               name="stop")
        b.cbranch(b.or_(fresh, stop, name="wake"), blocks["go"], blocks["idle"])

        b.position_at_end(blocks["go"])
        b.cbranch(stop, blocks["exit"], blocks["job"])
        b.position_at_end(blocks["job"])
        b.store(g, seen)
        b.call(self.claim, [g, b.ptrtoint(worker.args[0], I64, name="tid")])
        b.branch(blocks["top"])

        # no new job: poll while a run is in progress (and LINGER rounds after), else sleep
        b.position_at_end(blocks["idle"])
        busy = b.icmp_unsigned("!=", b.load_atomic(self.busy, "monotonic", 8, name="b"),
                               _i64(0), name="busy")
        idle = b.select(busy, _i64(0), b.add(b.load(idle_rounds, name="i"), _i64(1),
                                             name="i.n"), name="idle.n")
        b.store(idle, idle_rounds)
        b.cbranch(b.icmp_unsigned("<", idle, _i64(LINGER), name="keep"), blocks["poll"],
                  blocks["sleep"])
        b.position_at_end(blocks["poll"])
        b.store(self._poll(b, b.load(rounds, name="r")), rounds)
        b.branch(blocks["wait"])

        b.position_at_end(blocks["sleep"])
        b.call(self.lock_fn, [self._ptr(b, self.mutex)])
        b.atomic_rmw("add", self.sleepers, _i64(1), SEQ)
        b.branch(blocks["sleep.hdr"])
        b.position_at_end(blocks["sleep.hdr"])
        g2 = b.lshr(b.load_atomic(self.job_word, SEQ, 8, name="c2"), _i64(32), name="g2")
        wake = b.or_(b.icmp_unsigned("!=", g2, b.load(seen, name="s2"), name="fresh2"),
                     b.icmp_unsigned("!=", b.or_(
                         b.load_atomic(self.quit, SEQ, 8, name="q2"),
                         b.load_atomic(self.busy, SEQ, 8, name="b2"), name="qb"), _i64(0),
                         name="qb.set"), name="wake2")
        b.cbranch(wake, blocks["sleep.out"], blocks["sleep.wait"])
        b.position_at_end(blocks["sleep.wait"])
        b.call(self.wait_fn, [self._ptr(b, self.start_cv), self._ptr(b, self.mutex)])
        b.branch(blocks["sleep.hdr"])
        b.position_at_end(blocks["sleep.out"])
        b.atomic_rmw("sub", self.sleepers, _i64(1), SEQ)
        b.call(self.unlock_fn, [self._ptr(b, self.mutex)])
        self._leave_caller_cpu(b, allowed, scratch)
        b.branch(blocks["top"])

        b.position_at_end(blocks["exit"])
        b.ret(ir.Constant(I8P, None))
        return worker

    # ----- gc_parallel_for(fn, env, n) --------------------------------------------------------
    def _emit_parallel_for(self) -> ir.Function:
        pfor, b = self._function("gc_parallel_for", VOID, [TASK_FN.as_pointer(), I8P, I64],
                                 ["fn", "env", "n"])
        fn, env, n = pfor.args
        count = b.load(self.nthreads, name="count")
        serial = b.or_(b.icmp_unsigned("<=", count, _i64(1), name="one"),
                       b.icmp_unsigned("<=", n, _i64(1), name="small"), name="serial")
        with b.if_else(serial) as (then, otherwise):
            with then:
                b.call(fn, [env, _i64(0), n])
            with otherwise:
                # ~4 chunks per thread: a descheduled worker delays the kernel by one chunk
                step = b.udiv(n, b.mul(count, _i64(4), name="slots"), name="step0")
                step = b.select(b.icmp_unsigned("<", step, _i64(1), name="zero"), _i64(1), step,
                                name="step")
                # only the caller changes the generation (claims move the homes' low halves)
                gen = b.and_(b.add(b.lshr(b.load(self.job_word, name="c0"), _i64(32), name="g0"),
                                   _i64(1), name="g1"), _i64(0xFFFFFFFF), name="gen")
                top = b.shl(gen, _i64(32), name="gen.hi")
                closed = b.or_(top, _i64(CLOSED), name="closed")
                b.store_atomic(closed, self.job_word, SEQ, 8)
                with for_range(b, 0, count, name="close") as h:
                    b.store_atomic(closed, self._home(b, h), SEQ, 8)
                b.store(fn, self.job_fn)
                b.store(env, self.job_env)
                b.store_atomic(n, self.job_n, SEQ, 8)
                b.store_atomic(step, self.job_step, SEQ, 8)
                b.store_atomic(_i64(0), self.done, SEQ, 8)
                with for_range(b, 0, count, name="open") as h:  # home h: [h * n / count, ...)
                    start = b.udiv(b.mul(h, n, name="hn"), count, name="home.start")
                    b.store_atomic(b.or_(top, start, name="home.open"), self._home(b, h), SEQ, 8)
                b.store_atomic(top, self.job_word, SEQ, 8)  # open: workers may claim
                self._wake_sleepers(b)  # only if called outside `run` (workers poll inside)
                b.call(self.claim, [gen, _i64(0)])
                # every chunk is claimed: wait for the ones the workers are still running
                pre = b.block
                hdr = b.append_basic_block("join.hdr")
                body = b.append_basic_block("join.body")
                after = b.append_basic_block("join.end")
                b.branch(hdr)
                b.position_at_end(hdr)
                r = b.phi(I64, name="r")
                r.add_incoming(_i64(0), pre)
                finished = b.icmp_unsigned("==", b.load_atomic(self.done, "acquire", 8,
                                                               name="d"), n, name="finished")
                b.cbranch(finished, after, body)
                b.position_at_end(body)
                r.add_incoming(self._poll(b, r), b.block)
                b.branch(hdr)
                b.position_at_end(after)
        b.ret_void()
        return pfor

    # ----- run_begin() / run_end(): workers poll only while a run is in progress --------------
    def _emit_run_hooks(self) -> tuple[ir.Function, ir.Function]:
        begin, b = self._function("pool.run_begin", VOID, [])
        with b.if_then(b.icmp_unsigned(">", b.load(self.nthreads, name="count"), _i64(1),
                                       name="pooled")):
            # a forked child has none of the parent's workers: run single-threaded
            child = b.icmp_signed("!=", b.call(self.getpid, [], name="pid"),
                                  b.load(self.owner, name="owner"), name="child")
            with b.if_else(child) as (then, otherwise):
                with then:
                    b.store(_i64(1), self.nthreads)
                with otherwise:
                    b.store_atomic(b.call(self.getcpu, [], name="cpu"), self.caller_cpu,
                                   "monotonic", 4)
                    b.store_atomic(_i64(1), self.busy, SEQ, 8)
                    self._wake_sleepers(b)
        b.ret_void()
        end, b = self._function("pool.run_end", VOID, [])
        b.store_atomic(_i64(0), self.busy, "release", 8)
        b.ret_void()
        return begin, end

    # ----- graphcnn_init_threads(i64 n) -> i64 threads running --------------------------------
    def _emit_init(self) -> None:
        init = ir.Function(self.module, ir.FunctionType(I64, [I64]), "graphcnn_init_threads")
        b = ir.IRBuilder(init.append_basic_block("entry"))
        want = init.args[0]
        want.name = "want"
        started = b.icmp_unsigned(">", b.load(self.nthreads, name="cur"), _i64(1),
                                  name="started")
        with b.if_then(started):
            b.ret(b.load(self.nthreads, name="cur2"))
        clamp = b.select(b.icmp_signed(">", want, _i64(MAX_THREADS), name="big"),
                         _i64(MAX_THREADS), want, name="clamped")
        total = b.select(b.icmp_signed("<", clamp, _i64(1), name="tiny"), _i64(1), clamp,
                         name="total")
        for g in (self.quit, self.busy, self.sleepers):
            b.store(_i64(0), g)
        b.store(b.call(self.getpid, [], name="pid"), self.owner)
        # count only the workers that started (pthread_create can fail, e.g. EAGAIN under a
        # thread limit): handles[1 .. started) are exactly the ones shutdown joins, and each
        # worker's id, its home slice, is its slot: the ids are 1 .. count-1 with no gap
        started = b.alloca(I64, name="started")
        b.store(_i64(1), started)
        with for_range(b, 1, total, name="spawn"):
            k = b.load(started, name="k")
            slot = b.gep(self.handles, [_i64(0), k], name="handle")
            rc = b.call(self.p_create, [slot, ir.Constant(I8P, None), self.worker,
                                        b.inttoptr(k, I8P, name="id")], name="rc")
            ok = b.icmp_signed("==", rc, ir.Constant(I32, 0), name="ok")
            b.store(b.add(k, b.zext(ok, I64, name="ok64"), name="k1"), started)
        count = b.load(started, name="count")
        b.store(count, self.nthreads)
        b.ret(count)

    # ----- graphcnn_shutdown_threads() --------------------------------------------------------
    def _emit_shutdown(self) -> None:
        shut = ir.Function(self.module, ir.FunctionType(VOID, []), "graphcnn_shutdown_threads")
        b = ir.IRBuilder(shut.append_basic_block("entry"))
        count = b.load(self.nthreads, name="count")
        b.store_atomic(_i64(1), self.quit, SEQ, 8)
        with self._locked(b):
            b.call(self.bcast_fn, [self._ptr(b, self.start_cv)])
        with for_range(b, 1, count, name="join") as i:
            handle = b.load(b.gep(self.handles, [_i64(0), i], name="handle.p"), name="handle")
            b.call(self.p_join, [handle, ir.Constant(I8P.as_pointer(), None)])
        b.store(_i64(1), self.nthreads)
        b.store(_i64(0), self.quit)
        b.ret_void()


def emit_pool(module: ir.Module) -> Pool:
    """Define the pool globals, the worker, init/shutdown (exported), gc_parallel_for and the
    run_begin/run_end hooks `run` calls around its kernels."""
    return Pool(module)
