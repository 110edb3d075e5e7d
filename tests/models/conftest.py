"""Put tests/ on sys.path (tests/ is not a package) for torch_zoo.py and torch_corpus.py."""
from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
