"""Make tests/zoo_onnx.py importable from the frontend tests (tests/ is not a package), and the
`records` fixture the import-record tests share."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from graphcnn.frontends import onnx_digests

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture
def records(tmp_path, monkeypatch):
    """Record every file at once (no size floor, no racy margin), in a temporary cache."""
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_digests, "MIN_RECORD_BYTES", 0)
    monkeypatch.setattr(onnx_digests, "RACY_SECONDS", 0.0)
    monkeypatch.setattr(onnx_digests, "COARSE_RACY_SECONDS", 0.0)
    return tmp_path
