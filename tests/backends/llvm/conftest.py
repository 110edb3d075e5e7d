from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _temp_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's compile cache from tests."""
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gc-cache"))
