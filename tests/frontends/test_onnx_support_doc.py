"""docs/onnx-support.md is what tools/gen_onnx_support.py generates (re-measured with the
targets the committed doc lists; llvm measurements take minutes, so then the test is slow)."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gen_onnx_support",
                                               ROOT / "tools" / "gen_onnx_support.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)  # type: ignore[union-attr]

COMMITTED = gen.DOC.read_text() if gen.DOC.exists() else ""
TARGETS = gen.measured_targets(COMMITTED)


@pytest.mark.skipif(not COMMITTED, reason="docs/onnx-support.md is missing")
@pytest.mark.parametrize("targets", [pytest.param(
    TARGETS, marks=[pytest.mark.slow] if "llvm" in TARGETS else [], id="+".join(TARGETS))])
def test_doc_matches_generator(targets):
    assert gen.render(targets) + gen.corpus_section(COMMITTED) == COMMITTED, \
        "docs/onnx-support.md is stale: run python tools/gen_onnx_support.py"


def test_doc_lists_every_importer_and_the_reference_target():
    """A fast staleness check of the static part (the full comparison may be slow)."""
    from graphcnn.frontends.onnx import IMPORTERS

    assert "reference" in TARGETS
    rows = {line.split("|")[1].strip().split(" ")[0] for line in COMMITTED.splitlines()
            if line.startswith("| ") and not line.startswith("| ONNX op")}
    assert set(IMPORTERS) <= rows
