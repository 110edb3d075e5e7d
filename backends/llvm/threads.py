"""The thread pool, emitted as LLVM IR (no C, no Python in the loop): one pool per process.

The pool is a module of its own (`pool_module`). The JIT compiles it once per process
(process_pool.py) and every model's object code calls its exported `graphcnn_pool_*` functions,
resolved by name when the model is loaded; a model module only declares them and holds its own
thread count, `graphcnn_threads` (`emit_pool`). An AOT library has no Python to share a pool
with: it links its own copy (hidden symbols) plus the C entry points graphcnn_init_threads(n),
which starts it on first use, and graphcnn_shutdown_threads().

`graphcnn_pool_start(n)` grows the pool to n threads (n - 1 workers; a caller is thread 0) and
returns how many run; `graphcnn_pool_stop()` joins the workers. A `run` with parallel kernels
calls `graphcnn_pool_begin(want)` first: the pool serves one run at a time, so a run that finds
it held (another thread's model is running) runs its kernels on its own thread; no caller ever
waits for another and the result does not depend on it. begin returns the run's thread count:
1 (serial, also for want = 1, which never touches the pool), or min(want, pool size) for the run
that holds the pool until `graphcnn_pool_end(count)`.

`graphcnn_pool_for(fn, env, num_tasks, count)` gives each of the `count` threads a home slice of
[0, num_tasks), the t-th of count contiguous ranges (`home_start`), cut into fixed chunks (~4 a
thread). A thread claims its own home's chunks first, then the other homes' (t+1, t+2, ...),
each claim a compare-and-swap on that home's counter; workers numbered `count` and above stay
out. Each task writes its own outputs with a fixed summation order, whoever runs it, so results
are bit-identical for any thread count and any schedule. Claiming (rather than a static split)
matters on a shared machine: a descheduled worker delays a kernel by one chunk, not by a whole
share. Homes keep the split the same from kernel to kernel: with a spatial task order
(conv2d_nchwc.TaskLoop), the image rows a thread writes are the rows it reads in the next layer,
still in its own L2.

The job word holds the job's generation in its high 32 bits and, once the job is open, its
thread count in the low 32 (CLOSED while the caller writes the job fields). Each home counter
holds the generation and the home's next unclaimed task. A claim is a CAS that expects the
generation it started from, so a worker that falls behind never claims a task of a later job
with stale job fields: before rewriting them the caller closes the job word and every home any
earlier job may have opened (all `size` of them), so a stale read always meets a failing CAS. A
worker started later takes the generation already published as seen: it never claims a job
from before its start. The caller counts finished tasks (`done`) and returns when all are done:
no lock, no condition variable and no system call per kernel.

Hand-off between kernels is the cost that matters at batch 1 (a ResNet runs ~70 kernels of
10-500 us each, and waking a sleeping thread costs 5-100 us, more on a virtual machine). So the
workers poll (with `pause`) only while a run holds the pool: begin sets `busy` and wakes
sleepers, so they are polling by the time its first parallel kernel starts, and end clears it;
workers keep polling LINGER rounds more (a back-to-back next call finds them awake) and then
sleep on a condition variable. Between inferences the pool costs no CPU. Pollers call
sched_yield every YIELD_EVERY rounds so an oversubscribed machine still makes progress. Kernels
with less work than `worth_parallel` asks for are called directly on the calling thread.

Waking a sleeper: Linux queues a thread woken by a futex on the waker's CPU when it guesses
they share data, so the worker would wait behind the computing caller until the next load
balance. So the caller yields once after the broadcast, and a woken worker that finds itself on
the caller's CPU (begin records it) narrows its affinity to its original CPU set minus that
CPU, which moves it at once.

pthread_mutex_t / pthread_cond_t live in zero-initialised 64-byte globals: on glibc the static
initialisers are all zeros and both types are smaller than 64 bytes. A forked child (its pool
threads were not copied) runs single-threaded: begin and start compare getpid() with the pid
that started the workers.
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
# layout changes, batch norm).
PARALLEL_FLOPS = 1_000_000
PARALLEL_ELEMENTS = 100_000
FLOP_OPS = ("conv", "gemm")

# pause rounds (~40 ns each) between sched_yield calls while polling
YIELD_EVERY = 1024
# pause rounds a worker keeps polling after a run released the pool before it sleeps (~100 us)
LINGER = 2500
CLOSED = 0xFFFFFFFF  # job word / home index while the caller rewrites the job fields
CPU_SET_BYTES = 128  # glibc cpu_set_t (1024 CPUs)
SEQ = "seq_cst"
# the pool's entry points, as a model's code calls them and the JIT resolves them
START, STOP, BEGIN, FOR, END = (f"graphcnn_pool_{n}" for n in ("start", "stop", "begin", "for",
                                                               "end"))
POOL_SYMBOLS = (START, STOP, BEGIN, FOR, END)
THREADS_SYMBOL = "graphcnn_threads"  # a model's thread count (i64), set when it is loaded
# hidden: linked into an AOT library but not exported from it (each library its own pool)
HIDDEN = "hidden"


def worth_parallel(num_tasks: int, work: int, op: str) -> bool:
    """Whether a kernel of `num_tasks` tasks and `work` (flops or elements, by `op`) goes to the
    pool rather than running on the calling thread."""
    return num_tasks > 1 and work >= (PARALLEL_FLOPS if op in FLOP_OPS else PARALLEL_ELEMENTS)


def home_range(home: int, num_tasks: int, count: int) -> tuple[int, int]:
    """Home `home`'s slice of [0, num_tasks) among `count` threads, as `home_start` emits it."""
    return home * num_tasks // count, (home + 1) * num_tasks // count


def _global(module: ir.Module, name: str, ty: ir.Type, init=None) -> ir.GlobalVariable:
    g = ir.GlobalVariable(module, ty, name)
    g.linkage = "internal"
    g.initializer = init if init is not None else ir.Constant(ty, None)
    return g


def _i64(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args), name)


class Pool:
    """The pool's globals and functions, defined in `module` (`pool_module`, or a test's
    module); the exported ones are hidden when `hidden` (an AOT library's own pool)."""

    def __init__(self, module: ir.Module, hidden: bool = False):
        self.module = module
        self.hidden = hidden
        sync_ty = ir.ArrayType(I8, 64)
        self.mutex = _global(module, "pool.mutex", sync_ty)
        self.start_cv = _global(module, "pool.start", sync_ty)
        self.admin = _global(module, "pool.admin", sync_ty)  # serialises start and stop
        for g in (self.mutex, self.start_cv, self.admin):
            g.align = 64
        self.handles = _global(module, "pool.handles", ir.ArrayType(I64, MAX_THREADS))
        self.size = _global(module, "pool.size", I64, _i64(1))  # threads, a caller included
        self.owner = _global(module, "pool.owner", I32)     # pid that started the workers
        self.holder = _global(module, "pool.holder", I64)   # 1 while a run holds the pool
        self.holder.align = 64
        # generation << 32 | CLOSED while the caller writes a job, | its thread count when open
        self.job_word = _global(module, "pool.job", I64)
        self.job_word.align = 64
        # per thread, on its own cache line: generation << 32 | next task of its home slice
        self.homes = _global(module, "pool.homes", ir.ArrayType(ir.ArrayType(I64, 8),
                                                                  MAX_THREADS))
        self.homes.align = 64
        self.done = _global(module, "pool.done", I64)       # tasks finished in this job
        self.done.align = 64
        self.busy = _global(module, "pool.busy", I64)       # a run holds the pool: poll
        self.sleepers = _global(module, "pool.sleepers", I64)
        self.quit = _global(module, "pool.quit", I64)
        self.caller_cpu = _global(module, "pool.caller_cpu", I32)  # where begin was called
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

        self.home_start = self._emit_home_start()
        self.claim = self._emit_claim()
        self.worker = self._emit_worker(worker_ty)
        self.parallel_for = self._emit_parallel_for()
        self.begin, self.end = self._emit_run_hooks()
        self.start = self._emit_start()
        self.stop = self._emit_stop()

    # ----- small helpers ---------------------------------------------------------------------
    def _declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return _declare(self.module, name, ret, args)

    def _function(self, name: str, ret: ir.Type, args: list[ir.Type], arg_names=()
                  ) -> tuple[ir.Function, ir.IRBuilder]:
        fn = ir.Function(self.module, ir.FunctionType(ret, args), name)
        fn.linkage = "internal"
        for a, n in zip(fn.args, arg_names):
            a.name = n
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def _exported(self, name: str, ret: ir.Type, args: list[ir.Type], arg_names=()
                  ) -> tuple[ir.Function, ir.IRBuilder]:
        fn, b = self._function(name, ret, args, arg_names)
        # llvmlite has no visibility field: "hidden" in the linkage slot prints as the
        # visibility of an externally linked definition
        fn.linkage = HIDDEN if self.hidden else ""
        return fn, b

    def _home(self, b: ir.IRBuilder, h: ir.Value) -> ir.Value:
        return b.gep(self.homes, [_i64(0), h, _i64(0)], name="home.slot")

    def _ptr(self, b: ir.IRBuilder, g: ir.GlobalVariable) -> ir.Value:
        return b.bitcast(g, I8P, name=f"{g.name}.p")

    @contextmanager
    def _locked(self, b: ir.IRBuilder, mutex: ir.GlobalVariable | None = None):
        m = self._ptr(b, mutex if mutex is not None else self.mutex)
        b.call(self.lock_fn, [m])
        yield
        b.call(self.unlock_fn, [m])

    def _is_owner(self, b: ir.IRBuilder) -> ir.Value:
        """Whether this process started the workers (a forked child has none of them)."""
        return b.icmp_signed("==", b.call(self.getpid, [], name="pid"),
                             b.load(self.owner, name="owner"), name="is.owner")

    def _wake_sleepers(self, b: ir.IRBuilder) -> None:
        """Broadcast `start` if a worker sleeps (the caller stored what they wait for first).
        Linux tends to queue a thread woken this way on the waker's CPU, behind the caller,
        until the next load balance: one sched_yield lets it run at once and move itself off
        this CPU (see `_leave_caller_cpu`)."""
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

    # ----- home_start(h, n, count): where home h's slice of [0, n) begins ---------------------
    def _emit_home_start(self) -> ir.Function:
        fn, b = self._function("pool.home_start", I64, [I64, I64, I64], ["h", "n", "count"])
        fn.attributes.add("alwaysinline")
        h, n, count = fn.args
        b.ret(b.udiv(b.mul(h, n, name="hn"), count, name="start"))
        return fn

    # ----- claim(gen, tid): run chunks of job `gen` until none is left -----------------------
    def _emit_claim(self) -> ir.Function:
        """Thread `tid` claims chunks from its own home slice first, then from the others'
        (home tid+1, tid+2, ... mod count), each with a CAS on that home's counter; a thread
        numbered count or above takes no part in the job."""
        fn, b = self._function("pool.claim", VOID, [I64, I64], ["gen", "tid"])
        gen, tid = fn.args
        wait, opening, member, homes, home_hdr, check, try_, run, next_home, out = (
            fn.append_basic_block(n) for n in ("wait", "opening", "member", "homes",
                                               "home.hdr", "check", "try", "run", "next",
                                               "out"))
        b.branch(wait)
        # the job opens once the caller has written its fields and every home counter
        b.position_at_end(wait)
        job = b.load_atomic(self.job_word, SEQ, 8, name="job")
        same = b.icmp_unsigned("==", b.lshr(job, _i64(32), name="job.gen"), gen, name="same")
        low = b.and_(job, _i64(0xFFFFFFFF), name="job.lo")
        closed = b.icmp_unsigned("==", low, _i64(CLOSED), name="closed")
        b.cbranch(same, opening, out)
        b.position_at_end(opening)
        with b.if_then(closed):
            b.call(self.pause, [])
            b.branch(wait)
        count = low  # the open job's thread count, read with its generation
        b.cbranch(b.icmp_unsigned("<", tid, count, name="in.job"), member, out)
        b.position_at_end(member)
        n = b.load_atomic(self.job_n, SEQ, 8, name="n")
        step = b.load_atomic(self.job_step, SEQ, 8, name="step")
        b.branch(homes)

        b.position_at_end(homes)  # visit = 0 .. count-1: home (tid + visit) % count
        visit = b.phi(I64, name="visit")
        visit.add_incoming(_i64(0), member)
        b.cbranch(b.icmp_unsigned("<", visit, count, name="more.homes"), home_hdr, out)
        b.position_at_end(home_hdr)
        home = b.urem(b.add(tid, visit, name="h.sum"), count, name="home")
        slot = self._home(b, home)
        home_end = b.call(self.home_start, [b.add(home, _i64(1), name="h1"), n, count],
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
        # the job published last before this worker started is not its to claim (it began
        # without this worker and its memory may be long freed)
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

        # no new job: poll while a run holds the pool (and LINGER rounds after), else sleep
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

    # ----- graphcnn_pool_for(fn, env, n, count) -----------------------------------------------
    def _emit_parallel_for(self) -> ir.Function:
        pfor, b = self._exported(FOR, VOID, [TASK_FN.as_pointer(), I8P, I64, I64],
                                 ["fn", "env", "n", "count"])
        fn, env, n, count = pfor.args
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
                # every home an earlier job may have opened: the pool never had more threads
                # than `size` since its workers were last joined
                size = b.load_atomic(self.size, "monotonic", 8, name="size")
                with for_range(b, 0, size, name="close") as h:
                    b.store_atomic(closed, self._home(b, h), SEQ, 8)
                b.store(fn, self.job_fn)
                b.store(env, self.job_env)
                b.store_atomic(n, self.job_n, SEQ, 8)
                b.store_atomic(step, self.job_step, SEQ, 8)
                b.store_atomic(_i64(0), self.done, SEQ, 8)
                with for_range(b, 0, count, name="open") as h:
                    start = b.call(self.home_start, [h, n, count], name="home.start")
                    b.store_atomic(b.or_(top, start, name="home.open"), self._home(b, h), SEQ, 8)
                # open: workers 1 .. count-1 may claim
                b.store_atomic(b.or_(top, count, name="open"), self.job_word, SEQ, 8)
                self._wake_sleepers(b)  # only if called outside a run (workers poll inside)
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

    # ----- graphcnn_pool_begin(want) -> count / graphcnn_pool_end(count) ----------------------
    def _emit_run_hooks(self) -> tuple[ir.Function, ir.Function]:
        begin, b = self._exported(BEGIN, I64, [I64], ["want"])
        want = begin.args[0]
        serial = begin.append_basic_block("serial")
        check, mine, acquire, go = (begin.append_basic_block(n)
                                    for n in ("check", "mine", "acquire", "go"))
        b.cbranch(b.icmp_signed(">", want, _i64(1), name="pooled"), check, serial)
        b.position_at_end(check)
        size = b.load_atomic(self.size, "acquire", 8, name="size")
        b.cbranch(b.icmp_unsigned(">", size, _i64(1), name="workers"), mine, serial)
        b.position_at_end(mine)
        # a forked child has none of the parent's workers: run single-threaded
        b.cbranch(self._is_owner(b), acquire, serial)
        b.position_at_end(acquire)
        # one run at a time; a run finding the pool held runs on its own thread
        got = b.cmpxchg(self.holder, _i64(0), _i64(1), SEQ, SEQ, name="take")
        b.cbranch(b.extract_value(got, 1, name="taken"), go, serial)
        b.position_at_end(go)
        b.store_atomic(b.call(self.getcpu, [], name="cpu"), self.caller_cpu, "monotonic", 4)
        b.store_atomic(_i64(1), self.busy, SEQ, 8)
        self._wake_sleepers(b)
        b.ret(b.select(b.icmp_unsigned("<", want, size, name="fewer"), want, size,
                       name="count"))
        b.position_at_end(serial)
        b.ret(_i64(1))

        end, b = self._exported(END, VOID, [I64], ["count"])
        with b.if_then(b.icmp_signed(">", end.args[0], _i64(1), name="held")):
            b.store_atomic(_i64(0), self.busy, "release", 8)
            b.store_atomic(_i64(0), self.holder, "release", 8)
        b.ret_void()
        return begin, end

    # ----- graphcnn_pool_start(want) -> threads running ---------------------------------------
    def _emit_start(self) -> ir.Function:
        """Grow the pool to `want` threads (clamped to 1 .. MAX_THREADS); never shrinks it. Only
        the workers that started count (pthread_create can fail, e.g. EAGAIN under a thread
        limit): handles[1 .. size) are exactly the ones stop joins, and each worker's id, its
        home, is its slot, with no gap."""
        start, b = self._exported(START, I64, [I64], ["want"])
        want = start.args[0]
        spawn_hdr, spawn_body, spawn_end, child, grow = (
            start.append_basic_block(n) for n in ("spawn.hdr", "spawn.body", "spawn.end",
                                                  "child", "grow"))
        admin = self._ptr(b, self.admin)
        b.call(self.lock_fn, [admin])
        size = b.load_atomic(self.size, SEQ, 8, name="size")
        running = b.icmp_unsigned(">", size, _i64(1), name="running")
        with b.if_then(b.not_(running, name="idle")):  # no workers: this process owns them
            b.store(b.call(self.getpid, [], name="pid"), self.owner)
            for g in (self.quit, self.busy, self.sleepers):
                b.store_atomic(_i64(0), g, SEQ, 8)
        b.cbranch(b.and_(running, b.not_(self._is_owner(b)), name="forked"), child, grow)
        b.position_at_end(child)  # a forked child: the parent's workers are not here
        b.call(self.unlock_fn, [admin])
        b.ret(_i64(1))

        b.position_at_end(grow)
        clamp = b.select(b.icmp_signed(">", want, _i64(MAX_THREADS), name="big"),
                         _i64(MAX_THREADS), want, name="clamped")
        target = b.select(b.icmp_signed("<", clamp, _i64(1), name="tiny"), _i64(1), clamp,
                          name="target")
        b.branch(spawn_hdr)
        b.position_at_end(spawn_hdr)
        k = b.phi(I64, name="k")
        k.add_incoming(size, grow)
        b.cbranch(b.icmp_signed("<", k, target, name="more"), spawn_body, spawn_end)
        b.position_at_end(spawn_body)
        slot = b.gep(self.handles, [_i64(0), k], name="handle")
        rc = b.call(self.p_create, [slot, ir.Constant(I8P, None), self.worker,
                                    b.inttoptr(k, I8P, name="id")], name="rc")
        k.add_incoming(b.add(k, _i64(1), name="k.n"), spawn_body)
        b.cbranch(b.icmp_signed("==", rc, ir.Constant(I32, 0), name="ok"), spawn_hdr, spawn_end)
        b.position_at_end(spawn_end)
        count = b.phi(I64, name="count")
        count.add_incoming(k, spawn_hdr)
        count.add_incoming(k, spawn_body)  # pthread_create failed for worker k: stop there
        b.store_atomic(count, self.size, SEQ, 8)
        b.call(self.unlock_fn, [admin])
        b.ret(count)
        return start

    # ----- graphcnn_pool_stop() ---------------------------------------------------------------
    def _emit_stop(self) -> ir.Function:
        """Join every worker (a run holding the pool meanwhile finishes its kernels itself)."""
        stop, b = self._exported(STOP, VOID, [])
        admin = self._ptr(b, self.admin)
        b.call(self.lock_fn, [admin])
        count = b.load_atomic(self.size, SEQ, 8, name="count")
        running = b.icmp_unsigned(">", count, _i64(1), name="running")
        with b.if_then(b.and_(running, self._is_owner(b), name="ours")):
            b.store_atomic(_i64(1), self.quit, SEQ, 8)
            with self._locked(b):
                b.call(self.bcast_fn, [self._ptr(b, self.start_cv)])
            with for_range(b, 1, count, name="join") as i:
                handle = b.load(b.gep(self.handles, [_i64(0), i], name="handle.p"),
                                name="handle")
                b.call(self.p_join, [handle, ir.Constant(I8P.as_pointer(), None)])
            b.store_atomic(_i64(1), self.size, SEQ, 8)
            b.store_atomic(_i64(0), self.quit, SEQ, 8)
        b.call(self.unlock_fn, [admin])
        b.ret_void()
        return stop


def define_pool(module: ir.Module, hidden: bool = False) -> Pool:
    """Define the pool (globals, worker, the exported graphcnn_pool_* functions) in `module`."""
    return Pool(module, hidden)


def pool_module(aot: bool = False) -> ir.Module:
    """The pool as a module of its own: the JIT's process-wide one, or with `aot` an AOT
    library's, hidden, plus the library's C entry points over it:
    graphcnn_init_threads(n) -> threads it will use, and graphcnn_shutdown_threads()."""
    module = ir.Module("graphcnn_pool")
    pool = define_pool(module, hidden=aot)
    if aot:
        threads = ir.GlobalVariable(module, I64, THREADS_SYMBOL)  # the model's, declared
        threads.storage_class = HIDDEN
        init = ir.Function(module, ir.FunctionType(I64, [I64]), "graphcnn_init_threads")
        b = ir.IRBuilder(init.append_basic_block("entry"))
        want = init.args[0]
        want.name = "want"
        running = b.call(pool.start, [want], name="running")
        use = b.select(b.icmp_signed("<", want, running, name="fewer"), want, running,
                       name="use")
        use = b.select(b.icmp_signed("<", use, _i64(1), name="tiny"), _i64(1), use, name="n")
        b.store(use, threads)
        b.ret(use)
        shut = ir.Function(module, ir.FunctionType(VOID, []), "graphcnn_shutdown_threads")
        b = ir.IRBuilder(shut.append_basic_block("entry"))
        b.store(_i64(1), threads)
        b.call(pool.stop, [])
        b.ret_void()
    return module


class ModelPool:
    """A model module's side of the pool: its thread count `graphcnn_threads` (1 until the
    loader sets it) and the pool's entry points, declared. `run` calls
    count = run_begin(), parallel_for(fn, env, n, count) per parallel kernel, run_end(count)."""

    def __init__(self, module: ir.Module):
        self.threads = ir.GlobalVariable(module, I64, THREADS_SYMBOL)
        self.threads.initializer = _i64(1)
        self.threads.storage_class = HIDDEN
        begin = _declare(module, BEGIN, I64, [I64])
        self.parallel_for = _declare(module, FOR, VOID, [TASK_FN.as_pointer(), I8P, I64, I64])
        self.run_end = _declare(module, END, VOID, [I64])
        self.run_begin = ir.Function(module, ir.FunctionType(I64, []), "pool.run_begin")
        self.run_begin.linkage = "internal"
        b = ir.IRBuilder(self.run_begin.append_basic_block("entry"))
        b.ret(b.call(begin, [b.load(self.threads, name="want")], name="count"))


def emit_pool(module: ir.Module) -> ModelPool:
    """Declare the shared pool in a model module and define its thread count (see ModelPool)."""
    return ModelPool(module)
