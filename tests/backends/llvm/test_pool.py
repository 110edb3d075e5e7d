"""The thread pool run natively: every task of every job runs exactly once, whatever the thread
count and task count, with each thread starting on its own home slice (threads.py)."""
from __future__ import annotations

import ctypes
import time

import numpy as np
import pytest
from graphcnn.backends.llvm import builder as irb
from graphcnn.backends.llvm import threads
from jit import JitModule, new_module
from llvmlite import ir

I64 = ir.IntType(64)
I8P = ir.IntType(8).as_pointer()


def _pool_module() -> ir.Module:
    """The pool; a task whose env is i64 [n, spin, runs[n], ran_by[n]]: it counts its runs in
    runs[task], records the thread that ran it (pthread_self) in ran_by[task], and spins `spin`
    pause rounds first; and `drive(env, n)`: one run of one job of n tasks."""
    m = new_module("pool")
    pool = threads.emit_pool(m)
    self_fn = ir.Function(m, ir.FunctionType(I64, []), "pthread_self")
    pause = m.globals["llvm.x86.sse2.pause"]
    task = ir.Function(m, threads.TASK_FN, "task")
    env, begin, end = task.args
    b = ir.IRBuilder(task.append_basic_block("entry"))
    words = b.bitcast(env, I64.as_pointer())
    n = b.load(words, name="n")
    spin = b.load(b.gep(words, [ir.Constant(I64, 1)]), name="spin")
    me = b.call(self_fn, [])
    with irb.for_range(b, begin, end, name="t") as t:
        with irb.for_range(b, 0, spin, name="spin"):
            b.call(pause, [])
        b.atomic_rmw("add", b.gep(words, [b.add(t, ir.Constant(I64, 2))]),
                     ir.Constant(I64, 1), "monotonic")
        b.store(me, b.gep(words, [b.add(b.add(t, n), ir.Constant(I64, 2))]))
    b.ret_void()
    drive = ir.Function(m, ir.FunctionType(ir.VoidType(), [I8P, I64]), "drive")
    b = ir.IRBuilder(drive.append_basic_block("entry"))
    b.call(pool.run_begin, [])
    b.call(pool.parallel_for, [task, drive.args[0], drive.args[1]])
    b.call(pool.run_end, [])
    b.ret_void()
    return m


def _run(drive, n: int, spin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One job of n tasks: (runs per task, the thread that ran each)."""
    words = np.zeros(2 * n + 2, np.int64)
    words[:2] = n, spin
    drive(words.ctypes.data, n)
    return words[2:n + 2], words[n + 2:]


@pytest.fixture(scope="module")
def pool():
    jit = JitModule(_pool_module())
    fns = (jit.function("drive", None, ctypes.c_void_p, ctypes.c_int64),
           jit.function("graphcnn_init_threads", ctypes.c_int64, ctypes.c_int64),
           jit.function("graphcnn_shutdown_threads", None))
    yield jit, fns
    fns[2]()


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_every_task_runs_once(pool, count):
    _, (drive, init, shutdown) = pool
    assert init(count) == count
    try:
        for n in (1, 2, 3, 5, 7, 31, 64, 1000):
            for _ in range(20):
                runs, _ = _run(drive, n)
                np.testing.assert_array_equal(runs, 1, err_msg=f"{count} threads, {n} tasks")
    finally:
        shutdown()


def test_threads_start_on_their_homes(pool):
    """Two threads, 1000 tasks of ~5 us: the caller's home is the first half, the worker's the
    second. A thread takes the other home's chunks only once its own is done, so the caller
    runs task 0 and the worker task 500 (its home's first) in most runs, where a shared counter
    hands each chunk to whichever thread asks first (a worker descheduled for a whole job loses
    its home to the caller)."""
    _, (drive, init, shutdown) = pool
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_uint64
    caller = libc.pthread_self()
    assert init(2) == 2
    caller_first = worker_home = 0
    runs = 20
    try:
        for _ in range(runs):
            done, ran_by = _run(drive, 1000, spin=100)
            np.testing.assert_array_equal(done, 1)
            caller_first += int(ran_by[0]) == caller
            worker_home += int(ran_by[500]) != caller
    finally:
        shutdown()
    # a shared counter (the pool before homes) gave the caller task 0 in 11 of 20 runs
    assert caller_first >= runs * 3 // 4, f"the caller ran task 0 in {caller_first} of {runs}"
    assert worker_home >= runs * 3 // 4, f"the worker ran task 500 in {worker_home} of {runs}"


@pytest.mark.parametrize("again", [2, 3, 8])
def test_restarted_pool_leaves_the_last_job_alone(pool, again):
    """Workers of a pool started again (here after a 2-thread pool) must not claim the job
    published last before them: cut for their thread count, its homes still have unclaimed
    tasks, and its memory may be freed. (Before the fix, 3 or 8 new threads reran its second
    half.)"""
    _, (drive, init, shutdown) = pool
    assert init(2) == 2
    words = np.zeros(2002, np.int64)
    words[0] = 1000
    try:
        drive(words.ctypes.data, 1000)
    finally:
        shutdown()
    before = words.copy()
    assert init(again) == again
    try:
        time.sleep(0.1)  # the new workers start and look for work
    finally:
        shutdown()
    np.testing.assert_array_equal(words, before)
