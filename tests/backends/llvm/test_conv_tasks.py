"""The direct conv's task split: a map of one row (a 1-D conv over time, lifted to 2-D) cuts
its columns into chunks so that the threads share it; every split computes each output
element in the same order."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.llvm.kernels.conv2d_nchwc import MIN_TASKS, Conv2dNCHWcPlan
from graphcnn.backends.reference import interpret
from llvm_cases import record_plans, rel_l2

import graphcnn as gc


def text_conv(width: int, length: int, kernel: int) -> gc.Graph:
    return gc.Sequential(gc.Conv1d(64, width, kernel, seed=kernel), gc.ReLU(),
                         gc.Conv1d(width, 16, 3, padding=1, seed=width)).build((1, 64, length))


@pytest.mark.parametrize("width,length,kernel", [(100, 400, 5), (32, 61, 3), (16, 90, 4)])
def test_one_row_maps_are_shared_out_by_columns(monkeypatch, width, length, kernel):
    plans = record_plans(monkeypatch, Conv2dNCHWcPlan)
    graph = text_conv(width, length, kernel)
    x = np.random.default_rng(0).standard_normal((1, 64, length)).astype(np.float32)
    results = [gc.compile(graph, target="llvm", cache=False, threads=t)(x) for t in (1, 2)]
    assert np.array_equal(results[0], results[1])  # any thread count, the same sums
    assert rel_l2(results[0], interpret(graph, [x])[0]) <= 1e-5
    assert plans and all(p.geometry.oh == 1 for p in plans)
    for p in plans:
        loop = p.task_loop
        assert loop.col_chunks == min(len(p.tiling.widths),
                                      -(-MIN_TASKS // (loop.num_tasks // loop.col_chunks)))
        assert [t for chunk in loop.chunk_tiles() for t in chunk] == loop.column_tiles()
    assert any(p.task_loop.col_chunks > 1 for p in plans)
