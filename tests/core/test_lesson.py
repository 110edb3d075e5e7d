"""The lesson's worked examples, on every target that can run here."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends import available_targets

import graphcnn as gc
from graphcnn import lesson

TARGETS = available_targets()


def test_reference_and_onnxruntime_are_available():
    assert "reference" in TARGETS and "onnxruntime" in TARGETS


@pytest.mark.parametrize("target", TARGETS)
def test_convolution_feature_map(target):
    y = gc.compile(lesson.convolution_graph(1), target=target)(lesson.IMAGE.reshape(1, 1, 5, 5))
    np.testing.assert_array_equal(y[0, 0], [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


@pytest.mark.parametrize("target", TARGETS)
def test_convolution_stride_2(target):
    y = gc.compile(lesson.convolution_graph(2), target=target)(lesson.IMAGE.reshape(1, 1, 5, 5))
    np.testing.assert_array_equal(y[0, 0], [[4, 4], [2, 4]])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["max", "average", "sum"])
def test_pooling(target, kind):
    y = gc.compile(lesson.pooling_graph(kind), target=target)(lesson.POOL_INPUT.reshape(1, 1, 4, 4))
    np.testing.assert_allclose(y[0, 0], lesson.POOLED[kind], rtol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_softmax_rows_sum_to_one_and_targets_agree(target):
    graph = lesson.classifier().build((4, 1, 12, 12))
    x = lesson.classifier_inputs(4)
    probs = gc.compile(graph, target=target)(x)
    ref = gc.compile(graph, target="reference")(x)
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)
    assert (probs > 0).all()
    assert np.linalg.norm(probs - ref) / np.linalg.norm(ref) <= 1e-5
