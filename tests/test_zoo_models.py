"""Every architecture of graphcnn.models, at reduced width and resolution, on every target
(and every opt level on llvm) against the reference interpreter."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends import available_targets

import graphcnn as gc
from graphcnn import models

SMALL_VERSIONS = {
    "lenet5": lambda: models.lenet5(batch=2),
    "vgg_cifar": lambda: models.vgg_cifar(batch=2, width=0.25),
    "alexnet": lambda: models.alexnet(width=0.1, size=67),
    "vgg19": lambda: models.vgg19(width=0.1, size=32),
    "resnet18": lambda: models.resnet18(width=0.25, size=32),
    "resnet50": lambda: models.resnet50(width=0.125, size=32),
    "inception_v1": lambda: models.inception_v1(width=0.125, size=64),
    "squeezenet": lambda: models.squeezenet(width=0.25, size=48),
    "densenet121": lambda: models.densenet121(width=0.25, size=32, blocks=(2, 3, 4, 2)),
    "shufflenet": lambda: models.shufflenet(width=0.25, size=32),
}
TARGETS = [t for t in available_targets() if t != "reference"]


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module", params=sorted(SMALL_VERSIONS))
def case(request):
    graph = SMALL_VERSIONS[request.param]()
    x = np.random.default_rng(0).standard_normal(graph.inputs[0].type.shape).astype(np.float32)
    return graph, x, gc.compile(graph, target="reference")(x)


def test_every_zoo_model_has_a_small_version():
    assert set(models.IMAGENET) | set(models.SMALL) <= set(SMALL_VERSIONS)


@pytest.mark.parametrize("target", TARGETS)
def test_target_matches_reference(case, target):
    graph, x, ref = case
    assert rel_err(gc.compile(graph, target=target)(x), ref) <= 1e-4


@pytest.mark.parametrize("opt_level", [0, 1, 2, 3])
def test_optimised_reference_matches(case, opt_level):
    graph, x, ref = case
    assert rel_err(gc.compile(graph, target="reference", opt_level=opt_level)(x), ref) <= 1e-5


@pytest.mark.skipif("llvm" not in TARGETS, reason="the llvm target is not built in this install")
@pytest.mark.parametrize("opt_level", [0, 1, 3])
def test_llvm_every_opt_level(case, opt_level):
    graph, x, ref = case
    assert rel_err(gc.compile(graph, target="llvm", opt_level=opt_level)(x), ref) <= 1e-4
