"""Differential fuzzing: random graphs (random_graphs.py) on llvm, at a random opt level and
thread count, and on onnxruntime, each against the reference interpreter on random inputs.
The default suite draws a few hundred graphs, the slow suite thousands; both derandomised, so
a run is repeatable and a failure prints the graph that caused it."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from random_graphs import random_graphs

import graphcnn as gc

CHECKS = {"deadline": None, "derandomize": True, "database": None,
          "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                    HealthCheck.filter_too_much]}


def agree(graph: gc.Graph, target: str, seed: int, **options) -> None:
    note(str(graph))
    rng = np.random.default_rng(seed)
    feeds = {v.name: rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs}
    want = gc.compile(graph, target="reference").run(feeds)
    got = gc.compile(graph, target=target, **options).run(feeds)
    assert list(got) == list(want)
    for name, y in want.items():
        scale = max(1.0, float(np.abs(y).max()))
        np.testing.assert_allclose(got[name], y, rtol=2e-3, atol=2e-4 * scale,
                                   err_msg=f"output {name} on {target} {options}")


def llvm_options():
    return st.fixed_dictionaries({"opt_level": st.sampled_from([0, 1, 2, 3]),
                                  "threads": st.sampled_from([1, 2])})


@settings(max_examples=300, **CHECKS)
@given(graph=random_graphs(), options=llvm_options(), seed=st.integers(0, 2**31))
def test_llvm_matches_the_reference(graph, options, seed):
    agree(graph, "llvm", seed, cache=False, **options)


@settings(max_examples=150, **CHECKS)
@given(graph=random_graphs(), seed=st.integers(0, 2**31))
def test_onnxruntime_matches_the_reference(graph, seed):
    agree(graph, "onnxruntime", seed)


@pytest.mark.slow
@settings(max_examples=3000, **CHECKS)
@given(graph=random_graphs(max_layers=14), options=llvm_options(), seed=st.integers(0, 2**31))
def test_llvm_matches_the_reference_thousands(graph, options, seed):
    agree(graph, "llvm", seed, cache=False, **options)


@pytest.mark.slow
@settings(max_examples=1000, **CHECKS)
@given(graph=random_graphs(max_layers=14), seed=st.integers(0, 2**31))
def test_onnxruntime_matches_the_reference_thousands(graph, seed):
    agree(graph, "onnxruntime", seed)
