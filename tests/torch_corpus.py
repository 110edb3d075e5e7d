"""The torch-exported corpus: every architecture of torch_zoo.py through both of PyTorch's ONNX
exporters, as files on disk, the way users hand them to graphcnn.

- "dynamo": `torch.onnx.export(..., dynamo=True)`, torch's default exporter (opset 18 and up,
  ReduceMean for adaptive pooling, Split for chunk, LayerNormalization, Gelu);
- "torchscript": `torch.onnx.export(..., dynamo=False, opset_version=17)`, the exporter most
  deployed files come from.

Files are cached under $GRAPHCNN_CORPUS_DIR (default ~/.cache/graphcnn/corpus), keyed by the
torch version, the exporter, the model's size and a digest of torch_zoo.py, so a changed
architecture is exported again. Export runs in this process (torch is imported on first use).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXPORTERS = ("dynamo", "torchscript")
TORCHSCRIPT_OPSET = 17


@dataclass(frozen=True)
class Export:
    arch: str
    exporter: str
    path: Path
    inputs: tuple[np.ndarray, ...]   # the example the file was exported with
    expected: tuple[np.ndarray, ...]  # torch's own output for it


def corpus_dir() -> Path:
    root = os.environ.get("GRAPHCNN_CORPUS_DIR")
    return Path(root) if root else Path.home() / ".cache" / "graphcnn" / "corpus"


def _zoo_digest() -> str:
    return hashlib.sha256(Path(__file__).with_name("torch_zoo.py").read_bytes()).hexdigest()[:12]


def export(arch: str, exporter: str, width: float | None = None, size: int | None = None,
           batch: int = 1) -> Export:
    """The exported file of `arch` (cached) with its example input and torch's output."""
    import torch
    from torch_zoo import ARCHITECTURES

    spec = ARCHITECTURES[arch]
    model, example = spec.build(width=width, size=size, batch=batch)
    width = spec.small_width if width is None else width
    size = spec.small_size if size is None else size
    tag = f"{arch}-{exporter}-w{width:g}-s{size}-b{batch}-torch{torch.__version__}-{_zoo_digest()}"
    path = corpus_dir() / f"{tag}.onnx"
    with torch.no_grad():
        expected = model(example).numpy()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        # the exporters print progress and warn about their own internals: keep test output clean
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                torch.onnx.export(model, (example,), str(partial), dynamo=True,
                                  input_names=["input"], output_names=["output"])
            elif exporter == "torchscript":
                torch.onnx.export(model, (example,), str(partial), dynamo=False,
                                  opset_version=TORCHSCRIPT_OPSET, input_names=["input"],
                                  output_names=["output"])
            else:
                raise ValueError(f"unknown exporter {exporter!r}; known: {EXPORTERS}")
        # the dynamo exporter may write weights beside the file; keep one self-contained file
        import onnx

        onnx.save(onnx.load(str(partial)), str(partial))
        for extra in partial.parent.glob(partial.name + ".data"):
            extra.unlink()
        partial.replace(path)
    return Export(arch, exporter, path, (example.numpy(),), (expected,))
