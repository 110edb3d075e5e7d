"""ONNX's own conformance cases through from_onnx + gc.compile, on every target.

Selected: the node cases (`collect_testcases()`), the pytorch-* model folders of the onnx
wheel and its "light" real models (model-zoo networks, 224x224, marked slow) whose ops are all in the import table and whose inputs/outputs are float32
(tests/onnx_conformance.py: in_op_set). Every selected case passes at its own tolerance,
except the ones in EXCLUDED, each with its reason; an excluded case must still fail with a typed
UnsupportedOpError (so the list cannot go stale silently).
"""
from __future__ import annotations

import pytest
from onnx_conformance import run_case, selected_cases

from graphcnn.errors import UnsupportedOpError
from graphcnn.frontends.onnx import from_onnx

_RUNTIME_FOLD = "uses a helper op graphcnn only constant-folds ({}) on a runtime input"
_RUNTIME_CLIP = "Clip min/max given as runtime inputs; graphcnn's clip bounds are static"
_TRAINING = "BatchNormalization in training mode (batch statistics); graphcnn is inference only"

# case name -> why it is excluded (all raise UnsupportedOpError at import)
EXCLUDED: dict[str, str] = {
    "test_batchnorm_example_training_mode": _TRAINING,
    "test_batchnorm_epsilon_training_mode": _TRAINING,
    "test_causal_conv_with_state_with_past_state_expanded": _RUNTIME_FOLD.format("Slice"),
    "test_causal_conv_with_state_decode_step_expanded": _RUNTIME_FOLD.format("Slice"),
    "test_causal_conv_with_state_with_bias_and_past_state_expanded": _RUNTIME_FOLD.format("Slice"),
    "test_ceil_example": _RUNTIME_FOLD.format("Ceil"),
    "test_ceil": _RUNTIME_FOLD.format("Ceil"),
    "test_floor_example": _RUNTIME_FOLD.format("Floor"),
    "test_floor": _RUNTIME_FOLD.format("Floor"),
    "test_neg_example": _RUNTIME_FOLD.format("Neg"),
    "test_neg": _RUNTIME_FOLD.format("Neg"),
    "test_sub_example": _RUNTIME_FOLD.format("Sub"),
    "test_sub": _RUNTIME_FOLD.format("Sub"),
    "test_sub_bcast": _RUNTIME_FOLD.format("Sub"),
    "test_div_example": _RUNTIME_FOLD.format("Div"),
    "test_div": _RUNTIME_FOLD.format("Div"),
    "test_div_bcast": _RUNTIME_FOLD.format("Div"),
    "test_range_float_type_positive_delta": _RUNTIME_FOLD.format("Range"),
    "test_clip_example": _RUNTIME_CLIP,
    "test_clip": _RUNTIME_CLIP,
    "test_clip_inbounds": _RUNTIME_CLIP,
    "test_clip_outbounds": _RUNTIME_CLIP,
    "test_clip_splitbounds": _RUNTIME_CLIP,
    "test_clip_min_greater_than_max": _RUNTIME_CLIP,
    "test_clip_default_min": _RUNTIME_CLIP,
    "test_clip_default_max": _RUNTIME_CLIP,
    # model folders
    "test_ReflectionPad2d": "Pad mode 'reflect'; graphcnn's pad is constant mode only",
    "test_operator_pad": "Pad mode 'reflect'; graphcnn's pad is constant mode only",
    "test_ReplicationPad2d": "Pad mode 'edge'; graphcnn's pad is constant mode only",
    "test_Softmin": _RUNTIME_FOLD.format("Neg"),
    "test_operator_symbolic_override_nested": _RUNTIME_FOLD.format("Neg"),
    "test_operator_index": _RUNTIME_FOLD.format("Slice"),
}

TARGETS = ["reference", "llvm"]
SELECTED = selected_cases()
RUN = [c for c in SELECTED if c.name not in EXCLUDED]
SKIPPED = [c for c in SELECTED if c.name in EXCLUDED]


def test_counts(capsys):
    """The figures docs/onnx-support.md reports; also guards against a silently empty suite."""
    by_source: dict[str, int] = {}
    for c in SELECTED:
        by_source[c.source] = by_source.get(c.source, 0) + 1
    with capsys.disabled():
        print(f"\nONNX conformance: {len(SELECTED)} selected ({by_source}), {len(RUN)} run, "
              f"{len(SKIPPED)} excluded")
    assert len(RUN) >= 150 and set(EXCLUDED) == {c.name for c in SKIPPED}


def _param(case):
    # the real 224x224 models take seconds each: slow suite
    marks = [pytest.mark.slow] if case.source == "light" else []
    return pytest.param(case, id=f"{case.source}:{case.name}", marks=marks)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", [_param(c) for c in RUN])
def test_conformance(case, target):
    run_case(case, target)


@pytest.mark.parametrize("case", SKIPPED, ids=lambda c: c.name)
def test_excluded_cases_fail_typed(case):
    with pytest.raises(UnsupportedOpError):
        from_onnx(case.model_path or case.model)
