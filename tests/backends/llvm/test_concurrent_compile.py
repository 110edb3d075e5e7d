"""Compiles from several Python threads at once: each compile forks LLVM children, and a child
forked while another thread is inside an LLVM call used to find llvmlite's lock held by a thread
it does not have and wait until CHILD_TIMEOUT_S killed it (120 s per batch of compiles). The
check is a deadlock detector, not a stopwatch: no child may go silent, and every model must
match the reference. The time is reported for the record."""
from __future__ import annotations

import threading
import time

import numpy as np
from graphcnn.backends.llvm import codegen

import graphcnn as gc

THREADS, MODELS = 4, 8


def small_cnn(k: int) -> gc.Graph:
    gc.manual_seed(k)
    c = 4 + k
    return gc.Sequential(gc.Conv2d(3, c, 3, padding=1), gc.ReLU(), gc.MaxPool2d(2), gc.Flatten(),
                         gc.Linear(c * 8 * 8, 10)).build((1, 3, 16, 16))


def test_compiles_from_four_threads_never_stall(monkeypatch):
    # a healthy child compiles a model this size in well under a second; 30 s of silence
    # is a child that will never answer
    monkeypatch.setattr(codegen, "CHILD_TIMEOUT_S", 30.0)
    silent_before = codegen.silent_children
    graphs = [small_cnn(k) for k in range(MODELS)]
    models: dict[int, gc.CompiledModel] = {}
    errors: list[BaseException] = []

    def work(first: int) -> None:
        try:
            for k in range(first, MODELS, THREADS):
                models[k] = gc.compile(graphs[k], target="llvm", cache=False)
        except Exception as e:  # noqa: BLE001  (asserted on in the test thread)
            errors.append(e)

    start = time.perf_counter()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    print(f"{MODELS} compiles from {THREADS} threads: {seconds:.2f} s")
    assert not errors, errors
    assert codegen.silent_children == silent_before, "a compile child deadlocked"
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    for k, g in enumerate(graphs):
        want = gc.compile(g, target="reference")(x)
        np.testing.assert_allclose(models[k](x), want, rtol=1e-4, atol=1e-5)
