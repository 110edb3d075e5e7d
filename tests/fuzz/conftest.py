"""Put tests/fuzz on sys.path for the shared generators; keep the compile cache in a temp dir."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(autouse=True)
def _temp_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gc-cache"))
