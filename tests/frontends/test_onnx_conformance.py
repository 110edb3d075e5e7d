"""ONNX's own conformance cases through from_onnx + gc.compile, on every target.

Selected: the node cases (`collect_testcases()`), the pytorch-* model folders of the onnx
wheel and its "light" real models (model-zoo networks, 224x224, marked slow) whose ops are all in the import table and whose inputs/outputs are float32
(tests/onnx_conformance.py: in_op_set). Every selected case passes at its own tolerance,
except the ones in EXCLUDED, each with its reason; an excluded case must still fail with a typed
UnsupportedOpError, or ShapeError for a zero-size tensor (so the list cannot go stale silently).
"""
from __future__ import annotations

import pytest
from onnx_conformance import run_case, selected_cases

from graphcnn.errors import ShapeError, UnsupportedOpError
from graphcnn.frontends.onnx import from_onnx

_RUNTIME_FOLD = "uses a helper op graphcnn only constant-folds ({}) on a runtime input"
_RUNTIME_SHAPE = ("its {} given as a runtime graph input: the output shape would depend on "
                  "its values, graphcnn's shapes are static (tests/frontends/test_onnx_tensor.py "
                  "runs the case with them as initializers)")
_EMPTY = "a zero-size tensor ({}); graphcnn has no empty tensors"
_TRAINING = "BatchNormalization in training mode (batch statistics); graphcnn is inference only"

# case name -> why it is excluded (all raise UnsupportedOpError at import, or ShapeError for
# a zero-size tensor)
EXCLUDED: dict[str, str] = {
    "test_batchnorm_example_training_mode": _TRAINING,
    "test_batchnorm_epsilon_training_mode": _TRAINING,
    "test_range_float_type_positive_delta": _RUNTIME_SHAPE.format("Range start/limit/delta are"),
    "test_expand_dim_changed": _RUNTIME_SHAPE.format("Expand shape is"),
    "test_expand_dim_unchanged": _RUNTIME_SHAPE.format("Expand shape is"),
    **{f"test_slice{s}": _RUNTIME_SHAPE.format("Slice starts/ends/axes/steps are") for s in (
        "", "_neg", "_start_out_of_bounds", "_end_out_of_bounds", "_default_axes",
        "_default_steps", "_neg_steps", "_negative_axes")},
    **{f"test_split_variable_parts_{s}_opset{v}": _RUNTIME_SHAPE.format("Split sizes are")
       for s in ("1d", "2d", "default_axis") for v in (13, 18)},
    "test_split_zero_size_splits_opset13": _EMPTY.format("a Split output and the input"),
    "test_split_zero_size_splits_opset18": _EMPTY.format("a Split output and the input"),
    **{f"test_rotary_embedding_no_position_ids{s}_expanded": _EMPTY.format("a Split output")
       for s in ("", "_interleaved")},
    **{f"test_layer_normalization_{c}_expanded{v}": _EMPTY.format("a Slice of the shape")
       for c in ("2d_axis0", "2d_axis_negative_2", "3d_axis0_epsilon",
                 "3d_axis_negative_3_epsilon", "4d_axis0", "4d_axis_negative_4")
       for v in ("", "_ver18")},
    "test_tile": _RUNTIME_SHAPE.format("Tile repeats are"),
    "test_tile_precomputed": _RUNTIME_SHAPE.format("Tile repeats are"),
    # model folders
    # spatial resampling: Resize's / Upsample's scales as runtime graph inputs (run with them
    # as initializers in tests/frontends/test_onnx_spatial.py); antialias is refused
    **{f"test_resize_{s}": _RUNTIME_SHAPE.format("Resize scales are") for s in (
        "upsample_scales_nearest", "downsample_scales_nearest", "upsample_scales_linear",
        "upsample_scales_linear_align_corners", "downsample_scales_linear",
        "downsample_scales_linear_align_corners", "upsample_scales_cubic",
        "upsample_scales_cubic_align_corners", "downsample_scales_cubic",
        "downsample_scales_cubic_align_corners", "upsample_scales_cubic_A_n0p5_exclude_outside",
        "downsample_scales_cubic_A_n0p5_exclude_outside", "upsample_scales_cubic_asymmetric",
        "upsample_scales_nearest_axes_2_3", "upsample_scales_nearest_axes_3_2",
        "downsample_scales_linear_half_pixel_symmetric",
        "upsample_scales_linear_half_pixel_symmetric")},
    **{f"test_resize_downsample_scales_{m}_antialias": "Resize antialias=1 is unsupported "
       "(and its scales are a runtime input)" for m in ("linear", "cubic")},
    "test_upsample_nearest": _RUNTIME_SHAPE.format("Upsample scales are"),
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
    empty = "zero-size" in EXCLUDED[case.name]  # may meet an unsupported op before that
    with pytest.raises((UnsupportedOpError, ShapeError) if empty else UnsupportedOpError):
        from_onnx(case.model_path or case.model)
