"""Export a DSL model to ONNX, import it back, and run the file on onnxruntime and llvm.

    python examples/onnx_roundtrip.py
"""
import os
import tempfile

import numpy as np

import graphcnn as gc
from graphcnn import models

graph = models.squeezenet(width=0.25, size=64)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "squeezenet.onnx")
    gc.export_onnx(graph, path)
    back = gc.from_onnx(path)
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    ref = gc.compile(graph, target="reference")(x)
    for target in ("onnxruntime", "llvm"):
        y = gc.compile(back, target=target)(x)
        print(f"{target:12s} rel err vs reference {np.linalg.norm(y - ref) / np.linalg.norm(ref):.1e}")
