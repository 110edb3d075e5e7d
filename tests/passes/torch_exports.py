"""Tiny torch modules through both torch exporters, imported: what the fusion passes must match."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np

import graphcnn as gc

EXPORTERS = ("dynamo", "torchscript")


def conv_then(act, channels: int = 6, size: int = 7):
    """conv (3 -> channels) followed by the torch module `act`."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3, padding=1), act).eval(), \
        (1, 3, size, size)


def export(module, shape, exporter: str, path) -> tuple[gc.Graph, np.ndarray, np.ndarray]:
    """The imported graph, an input and torch's output for it."""
    import torch

    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(module, (x,), str(path), dynamo=True)
        else:
            torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17)
    with torch.no_grad():
        want = module(x).numpy()
    import onnx
    return gc.from_onnx(onnx.load(str(path))), x.numpy(), want
