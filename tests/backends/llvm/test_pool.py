"""The thread pool run natively (threads.py), on a private pool compiled with a test driver:
properties that hold whatever the OS schedules (every task exactly once, a finished job never
runs again, home slices, one run holding the pool at a time), and the process-wide pool that
every compiled model shares."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from graphcnn.backends.llvm import threads
from graphcnn.backends.llvm.builder import for_range
from jit import JitModule, new_module
from llvmlite import ir

I64 = ir.IntType(64)
I8P = ir.IntType(8).as_pointer()


def _pool_module() -> ir.Module:
    """A private pool; a task whose env is i64 [n, runs[n]] counting its runs in runs[task];
    `drive(env, n, want)`: one run of one job of n tasks on up to `want` threads (returns the
    count begin gave); `claim(gen, tid)`: a thread's claim loop called directly; `home(h, n,
    count)`; `generation()`: the last job's."""
    m = new_module("pool")
    pool = threads.define_pool(m)
    task = ir.Function(m, threads.TASK_FN, "task")
    env, begin, end = task.args
    b = ir.IRBuilder(task.append_basic_block("entry"))
    words = b.bitcast(env, I64.as_pointer())
    with for_range(b, begin, end, name="t") as t:
        b.atomic_rmw("add", b.gep(words, [b.add(t, ir.Constant(I64, 1))]),
                     ir.Constant(I64, 1), "monotonic")
    b.ret_void()
    drive = ir.Function(m, ir.FunctionType(I64, [I8P, I64, I64]), "drive")
    b = ir.IRBuilder(drive.append_basic_block("entry"))
    count = b.call(pool.begin, [drive.args[2]])
    b.call(pool.parallel_for, [task, drive.args[0], drive.args[1], count])
    b.call(pool.end, [count])
    b.ret(count)
    claim = ir.Function(m, ir.FunctionType(ir.VoidType(), [I64, I64]), "claim")
    b = ir.IRBuilder(claim.append_basic_block("entry"))
    b.call(pool.claim, list(claim.args))
    b.ret_void()
    home = ir.Function(m, ir.FunctionType(I64, [I64, I64, I64]), "home")
    b = ir.IRBuilder(home.append_basic_block("entry"))
    b.ret(b.call(pool.home_start, list(home.args)))
    gen = ir.Function(m, ir.FunctionType(I64, []), "generation")
    b = ir.IRBuilder(gen.append_basic_block("entry"))
    b.ret(b.lshr(b.load_atomic(pool.job_word, "seq_cst", 8), ir.Constant(I64, 32)))
    return m


class PrivatePool:
    def __init__(self):
        self.jit = JitModule(_pool_module())
        f, c = self.jit.function, ctypes
        self.drive = f("drive", c.c_int64, c.c_void_p, c.c_int64, c.c_int64)
        self.claim = f("claim", None, c.c_int64, c.c_int64)
        self.home = f("home", c.c_int64, c.c_int64, c.c_int64, c.c_int64)
        self.generation = f("generation", c.c_int64)
        self.start = f(threads.START, c.c_int64, c.c_int64)
        self.stop = f(threads.STOP, None)
        self.begin = f(threads.BEGIN, c.c_int64, c.c_int64)
        self.end = f(threads.END, None, c.c_int64)

    def job(self, n: int, want: int) -> tuple[np.ndarray, np.ndarray, int]:
        """One job of n tasks: (runs per task, its words, the thread count it ran with)."""
        words = np.zeros(n + 1, np.int64)
        words[0] = n
        count = self.drive(words.ctypes.data, n, want)
        return words[1:], words, count


@pytest.fixture(scope="module")
def pool():
    p = PrivatePool()
    yield p
    p.stop()


@pytest.mark.parametrize("count", range(1, 9))
def test_every_task_runs_once(pool, count):
    assert pool.start(count) >= count
    for n in (1, 2, 3, 5, 7, 31, 64, 1000):
        for _ in range(10):
            runs, _, used = pool.job(n, count)
            assert used == count
            np.testing.assert_array_equal(runs, 1, err_msg=f"{count} threads, {n} tasks")


def test_fewer_threads_than_the_pool(pool):
    """A run asking for fewer threads than the pool has gets exactly that many (workers above
    stay out) and still runs every task once."""
    assert pool.start(8) == 8
    for want in (2, 3, 5):
        runs, _, used = pool.job(777, want)
        assert used == want
        np.testing.assert_array_equal(runs, 1)


def test_a_finished_job_never_runs_again(pool):
    """Any thread claiming the last job after it finished (a worker that fell behind, a new
    worker of a regrown pool, with any id) finds nothing: every home is used up under the
    job's own cut. Called directly, so no schedule is assumed."""
    pool.start(3)
    runs, words, _ = pool.job(1000, 3)
    before = words.copy()
    gen = pool.generation()
    for tid in range(threads.MAX_THREADS):
        pool.claim(gen, tid)
    pool.stop()
    assert pool.start(8) == 8  # regrown: more homes than the job was cut into
    for tid in range(8):
        pool.claim(gen, tid)
    np.testing.assert_array_equal(words, before)
    np.testing.assert_array_equal(runs, 1)


def test_restarted_pool_runs_new_jobs_once(pool):
    for count in (2, 5, 1, 3):
        pool.stop()
        assert pool.start(count) == count
        runs, _, _ = pool.job(513, count)
        np.testing.assert_array_equal(runs, 1)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 1000, 4099])
@pytest.mark.parametrize("count", [1, 2, 3, 7, 8])
def test_home_slices(pool, n, count):
    """Home h covers [h*n/count, (h+1)*n/count): contiguous, covering, balanced to one task,
    and the native cut equals threads.home_range."""
    starts = [pool.home(h, n, count) for h in range(count + 1)]
    assert starts == [threads.home_range(h, n, count)[0] for h in range(count + 1)]
    assert starts[0] == 0 and starts[-1] == n
    sizes = np.diff(starts)
    assert (sizes >= 0).all() and sizes.max() - sizes.min() <= 1


def test_one_run_holds_the_pool(pool):
    """While a run holds the pool another gets one thread (runs on its own thread, never
    waits); after end the pool is free again; want=1 never takes it."""
    assert pool.start(4) == 4
    held = pool.begin(4)
    assert held == 4
    try:
        assert pool.begin(4) == 1
        runs, _, used = pool.job(100, 4)  # a second caller meanwhile: serial, complete
        assert used == 1
        np.testing.assert_array_equal(runs, 1)
    finally:
        pool.end(held)
    assert pool.begin(1) == 1
    again = pool.begin(3)
    pool.end(again)
    assert again == 3


def test_bit_identical_for_any_thread_count():
    import graphcnn as gc

    gc.manual_seed(5)
    graph = gc.Sequential(gc.Conv2d(8, 16, 3, padding=1), gc.ReLU(), gc.Flatten(),
                          gc.Dense(16 * 12 * 12, 10), gc.Softmax()).build((4, 8, 12, 12))
    x = np.random.default_rng(1).standard_normal((4, 8, 12, 12)).astype(np.float32)
    outs = [gc.compile(graph, target="llvm", threads=t)(x) for t in (1, 2, 3, 5)]
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


SHARED = r"""
import os
import threading
import numpy as np
import graphcnn as gc

def tasks():
    # native threads: the tasks that are no Python thread (those come and go)
    python = {t.native_id for t in threading.enumerate()}
    return {int(t) for t in os.listdir("/proc/self/task")} - python

gc.manual_seed(0)
graph = gc.Sequential(gc.Conv2d(8, 32, 3, padding=1), gc.ReLU()).build((2, 8, 16, 16))
x = np.random.default_rng(0).standard_normal((2, 8, 16, 16)).astype(np.float32)
base = tasks()  # the interpreter's own and numpy's (which may stop its own later)
models = [gc.compile(graph, target="llvm", threads=t, cache=False)
          for t in (2, 3, 4, 2, 3, 4, 1, 2, 3, 4)]
ys = [m(x) for m in models]
assert all((y == ys[0]).all() for y in ys), "results differ across thread counts"
workers = tasks() - base
print(len(workers), [m.threads for m in models])
del models, ys
again = gc.compile(graph, target="llvm", threads=3, cache=False)
y = again(x)
print(int(tasks() - base == workers), float(np.abs(y).sum()))
"""


def test_ten_models_share_one_pool(tmp_path):
    """Ten models (threads 1-4) in one process: 3 native workers in all, not a pool each;
    dropping them all and compiling again works on the same pool. In a child process, so the
    native threads counted are the pool's and the interpreter's own (numpy's, if any)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SHARED)], capture_output=True,
                          text=True, timeout=600, check=False,
                          env={**os.environ, "GRAPHCNN_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()
    assert first == "3 [2, 3, 4, 2, 3, 4, 1, 2, 3, 4]"  # largest threads - 1 workers
    same, total = second.split()
    assert same == "1" and float(total) > 0  # the same workers serve the new model


def test_models_called_from_several_threads_at_once():
    """Four Python threads calling two models (threads=2, one pool) at once: whichever run
    holds the pool, every output equals the single-threaded one."""
    import threading

    import graphcnn as gc

    gc.manual_seed(6)
    graph = gc.Sequential(gc.Conv2d(8, 32, 3, padding=1), gc.ReLU()).build((2, 8, 16, 16))
    x = np.random.default_rng(2).standard_normal((2, 8, 16, 16)).astype(np.float32)
    want = gc.compile(graph, target="llvm", threads=1)(x)
    models = [gc.compile(graph, target="llvm", threads=2) for _ in range(2)]
    bad = []

    def calls(model):
        for _ in range(30):
            if not np.array_equal(model(x), want):
                bad.append(1)

    workers = [threading.Thread(target=calls, args=(models[k % 2],)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not bad
