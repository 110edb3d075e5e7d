"""Fixtures of the serving tests: LeNet-5 (graphcnn.models, seeded weights) as a DSL model
file, served at batch sizes 1, 2 and 4, and the reference interpreter as the oracle."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import graphcnn as gc
from graphcnn.models import lenet5

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # serve_helpers.py, beside this file
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="session")
def lenet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "lenet.py"
    path.write_text("from graphcnn.models import lenet5\ngraph = lenet5(batch=1)\n")
    return str(path)


@pytest.fixture(scope="session")
def reference():
    """Per-sample answers of the reference interpreter, stacked: the oracle for every batch."""
    ref = gc.compile(lenet5(batch=1), target="reference")

    def run(x: np.ndarray) -> np.ndarray:
        return np.concatenate([ref(x[i:i + 1]) for i in range(len(x))])

    return run


@pytest.fixture(scope="session")
def lenet(lenet_file):
    from graphcnn.serve import ServedModel

    return ServedModel.from_path(lenet_file, name="lenet", max_batch=4)
