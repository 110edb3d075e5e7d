"""The torch-exported corpus (tests/torch_corpus.py): every architecture of tests/torch_zoo.py,
exported by both of PyTorch's ONNX exporters, imported, compiled natively and compared with
onnxruntime running the same file.

Every model imports natively (no op left to the onnxruntime fallback), compiles on llvm and
matches onnxruntime at rel L2 <= 1e-4 (the reference interpreter too). The default suite runs the narrow, small versions at the default opt level;
the slow suite every opt level, and the published widths at full resolution.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[models]')")

import onnxruntime as ort
from torch_corpus import EXPORTERS, export
from torch_zoo import ARCHITECTURES

import graphcnn as gc

RTOL_L2 = 1e-4

CASES = [(name, exporter) for name in ARCHITECTURES for exporter in EXPORTERS]


def _rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got.astype(np.float64) - want) / max(np.linalg.norm(want), 1e-30))


def _onnxruntime(path, inputs) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs)})


def _check(name: str, exporter: str, opt_levels: tuple[int | None, ...],
           width: float | None = None, size: int | None = None) -> None:
    e = export(name, exporter, width=width, size=size)
    want = _onnxruntime(e.path, e.inputs)
    # the file itself is right: onnxruntime agrees with torch
    assert _rel_l2(want[0], e.expected[0]) <= RTOL_L2
    graph = gc.from_onnx(str(e.path))
    targets = [("reference", None)] + [("llvm", level) for level in opt_levels]
    for target, level in targets:
        options = {} if level is None else {"opt_level": level}
        got = gc.compile(graph, target=target, **options)(*e.inputs)
        got = list(got) if isinstance(got, tuple) else [got]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            err = _rel_l2(g, w)
            assert err <= RTOL_L2, f"{name} ({exporter}) on {target} O{level}: rel L2 {err:.2e}"


@pytest.mark.parametrize("name,exporter", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_corpus_model(name, exporter):
    _check(name, exporter, opt_levels=(None,))


@pytest.mark.slow
@pytest.mark.parametrize("name,exporter", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_corpus_model_rebound_batch(name, exporter):
    """Exported at batch 1, imported at batch 3 (from_onnx(..., batch=3)): each sample as
    onnxruntime computes it with the file as it is."""
    e = export(name, exporter)
    rng = np.random.default_rng(5)
    x = np.concatenate([e.inputs[0]] * 3)
    if x.dtype == np.float32:
        x = x + rng.standard_normal(x.shape).astype(np.float32)
    session = ort.InferenceSession(str(e.path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    want = np.concatenate([session.run(None, {feed: x[i:i + 1]})[0] for i in range(3)])
    got = gc.compile(gc.from_onnx(str(e.path), batch=3), target="llvm")(x)
    assert _rel_l2(got, want) <= RTOL_L2


@pytest.mark.slow
@pytest.mark.parametrize("name,exporter", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_corpus_model_every_opt_level(name, exporter):
    _check(name, exporter, opt_levels=(0, 1, 3))


@pytest.mark.slow
@pytest.mark.parametrize("name,exporter", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_corpus_model_full_size(name, exporter):
    arch = ARCHITECTURES[name]
    _check(name, exporter, opt_levels=(None,), width=1.0, size=arch.full_size)
