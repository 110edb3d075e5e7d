"""Graph passes (installed as graphcnn.passes): the pipelines per opt level and target.

    optimize(graph, opt_level=2, target=None, block=16, print_before=None, print_after=None,
             dump_dir=None, timings=False, verify=True, stream=None, precision="fp32") -> Graph

mutates and returns `graph` (gc.optimize hands it a copy). `pipeline(opt_level, target)` gives
the passes that will run; `last_report(graph)` the PassReport of the last run (also stored as
`graph.pass_report`). Graph output names are kept across the pipeline.

Levels:
  0  nothing (the graph as given, verified)
  1  cleanups that never change what runs: identity/dropout removal, constant folding,
     view cancellation, CSE, dead code
  2  level 1 + two-input sums as adds, x * sigmoid(x) / x * hard_sigmoid(x) / spelled-out
     GELUs as one activation, spelled-out layer norms as one op, channels-last regions
     (ConvNeXt's MLP) as channels-first convs, spatial reductions as global pools, per-channel
     mul/add after a batch norm folded into it, batch-norm folding, pad folding, epilogue
     fusion (bias, residual, activation), concat prefix reuse, in-place concat marks; for
     target "llvm" also spatial ops lowered to convs and views, 1-D convs lifted to 2-D,
     the strided-1x1 split,
     the channel-shuffle op, the blocked layout (dense heads reading it directly)
  3  level 2, with the cleanup + fusion passes run a second time after the layout choice
Target "llvm" ends every level, 0 included, with the rewrites its kernels need (`_lowering`):
max pools fused into the row kernel, blocked convs no blocked kernel takes back to NCHW, and
the kernel family of every conv, gemm and matmul, which the backend's plan stage builds, and
with `precision="bf16"` the bf16 retyping of the convs its kernels take (precision.py). Other
targets ("reference", "onnxruntime", None) never get llvm-specific passes, so exported ONNX
stays standard. `block` is the llvm target's vector width, the layout's block.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import IO

from graphcnn.ir import Graph
from graphcnn.opt_levels import DEFAULT_OPT_LEVEL, OPT_LEVELS, check_opt_level
from graphcnn.precisions import check_precision
from graphcnn.verify import verify as verify_graph

from .cancel_views import cancel_views
from .channel_shuffle import fuse_channel_shuffle
from .channels_first import channels_first
from .concat_inplace import mark_concat_inplace
from .concat_prefix import reuse_concat_prefixes
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .dense_blocked import read_blocked_features
from .fault_injection import with_fault
from .fold_batch_norm import fold_batch_norm
from .fold_constants import fold_constants
from .fold_pad import fold_pad
from .fuse_activation import fuse_conv_activation
from .fuse_batch_norm_affine import fuse_batch_norm_affine
from .fuse_conv_pool import fuse_conv_pool
from .fuse_gelu import fuse_gelu
from .fuse_layer_norm import fuse_layer_norm
from .fuse_residual import fuse_residual_add
from .fuse_self_gating import fuse_hard_swish, fuse_silu
from .kernel_family import choose_kernel_family
from .layout import DEFAULT_BLOCK, choose_layout
from .legalize_convs import legalize_convs
from .lift_conv1d import lift_conv1d
from .lower_spatial import lower_spatial
from .manager import Pass, PassError, PassManager, PassReport, restore_output_names
from .precision import to_bf16
from .reduce_to_pool import reduce_to_global_pool
from .remove_identity import remove_identity
from .split_strided_1x1 import split_strided_1x1
from .sum_to_add import sum_to_add

LLVM_TARGETS = frozenset({"llvm"})


def _cleanup() -> list[Pass]:
    return [
        Pass("remove-identity", remove_identity),  # no-ops would hide patterns from fusion
        Pass("fold-constants", fold_constants),  # weight-only subgraphs become data
        Pass("cancel-views", cancel_views),  # transpose/reshape chains collapse
        Pass("cse", eliminate_common_subexpressions),  # after folding: equal constants merge
        Pass("dce", eliminate_dead_code),  # what the rewrites above left unused
    ]


def _fusion() -> list[Pass]:
    return [
        Pass("sum-to-add", sum_to_add),  # a two-input Sum residual: the add rules see it
        Pass("fuse-silu", fuse_silu),  # x * sigmoid(x): one activation, fusible below
        Pass("fuse-hard-swish", fuse_hard_swish),  # x * hard_sigmoid(x, 1/6, 1/2)
        Pass("fuse-gelu", fuse_gelu),  # TorchScript's spelled-out erf / tanh GELU
        Pass("fuse-layer-norm", fuse_layer_norm),  # TorchScript's spelled-out LayerNorm
        Pass("channels-first", channels_first),  # ConvNeXt's channels-last MLP: 1x1 convs
        Pass("reduce-to-global-pool", reduce_to_global_pool),  # ReduceMean over H, W: a pool
        Pass("fuse-batch-norm-affine", fuse_batch_norm_affine),  # bn -> mul -> add: one bn
        Pass("fold-batch-norm", fold_batch_norm),  # bn sits between conv and activation
        Pass("fold-pad", fold_pad),  # explicit pads into conv / pool windows
        Pass("fuse-residual-add", fuse_residual_add),  # before activations: act(conv + b + r)
        Pass("fuse-conv-activation", fuse_conv_activation),  # bias add, relu, clip, ... epilogues
        # the residual adds that bias / scale folds exposed (ConvNeXt's layer-scaled residual),
        # and the activations after them
        Pass("fuse-residual-add", fuse_residual_add),
        Pass("fuse-conv-activation", fuse_conv_activation),
        Pass("reuse-concat-prefixes", reuse_concat_prefixes),  # DenseNet: concat chains
        Pass("dce", eliminate_dead_code),
    ]


def _llvm(block: int) -> list[Pass]:
    return [
        Pass("lower-spatial", lower_spatial),  # before layout: its convs and copies block too
        Pass("lift-conv1d", lift_conv1d),  # before layout: convs over time run blocked, 2-D
        Pass("split-strided-1x1", split_strided_1x1),  # before layout: the subsample blocks too
        Pass("fuse-channel-shuffle", fuse_channel_shuffle),  # before layout: it runs blocked
        Pass("choose-layout", functools.partial(choose_layout, block=block)),  # after fusion
        Pass("dense-reads-blocked", read_blocked_features),  # after layout: from_blocked exist
    ]


def _lowering(block: int, precision: str = "fp32") -> list[Pass]:
    """What the llvm backend needs of every graph, after all other rewrites."""
    bf16 = [Pass("precision-bf16", to_bf16)] if precision == "bf16" else []
    return [
        Pass("lower-spatial", lower_spatial),  # levels 0-1: the ops no llvm kernel runs
        Pass("fuse-conv-pool", functools.partial(fuse_conv_pool, vector_width=block)),
        Pass("legalize-convs", functools.partial(legalize_convs, vector_width=block)),
        # last: the families of the final nodes, which the backend's plan stage builds
        Pass("choose-kernel-family", functools.partial(choose_kernel_family,
                                                       vector_width=block)),
        *bf16,  # after the families: it retypes the convs of the families it takes
    ]


def pipeline(opt_level: int = 2, target: str | None = None, block: int = DEFAULT_BLOCK,
             precision: str = "fp32") -> list[Pass]:
    """The passes `optimize` runs for a level and target, in order."""
    check_opt_level(opt_level)
    check_precision(precision)
    llvm = target in LLVM_TARGETS
    lowering = _lowering(block, precision) if llvm else []
    if opt_level == 0:
        return with_fault(lowering)
    if opt_level == 1:
        return with_fault(_cleanup() + lowering)
    passes = _cleanup() + _fusion()
    if llvm:
        passes += _llvm(block)
    if opt_level == 3:
        passes += _cleanup() + _fusion()
    passes += lowering
    passes.append(Pass("mark-concat-inplace", mark_concat_inplace))  # last: needs final producers
    return with_fault(passes)  # tests only: GRAPHCNN_TEST_FAULT (fault_injection.py)


def pass_names(opt_level: int = 2, target: str | None = None) -> list[str]:
    return [p.name for p in pipeline(opt_level, target)]


PASSES_PER_LEVEL = {level: pass_names(level) for level in OPT_LEVELS}
LLVM_PASSES_PER_LEVEL = {level: pass_names(level, "llvm") for level in OPT_LEVELS}


def optimize(graph: Graph, opt_level: int = DEFAULT_OPT_LEVEL, target: str | None = None, *,
             block: int = DEFAULT_BLOCK, print_before: str | Iterable[str] | None = None,
             print_after: str | Iterable[str] | None = None,
             dump_dir: str | os.PathLike | None = None, timings: bool = False,
             verify: bool = True, stream: IO[str] | None = None, precision: str = "fp32"
             ) -> Graph:
    """Run the pipeline for `opt_level` and `target` on `graph` in place and return it."""
    verify_graph(graph)
    names = [v.name for v in graph.outputs]
    manager = PassManager(pipeline(opt_level, target, block, precision), verify=verify,
                          print_before=print_before, print_after=print_after,
                          dump_dir=dump_dir, timings=timings, stream=stream)
    report = manager.run(graph)
    restore_output_names(graph, names)
    if verify:
        verify_graph(graph)
    graph.pass_report = report  # type: ignore[attr-defined]
    return graph


def last_report(graph: Graph) -> PassReport | None:
    return getattr(graph, "pass_report", None)


__all__ = ["LLVM_PASSES_PER_LEVEL", "OPT_LEVELS", "PASSES_PER_LEVEL", "Pass", "PassError",
           "PassManager", "PassReport", "last_report", "optimize", "pass_names", "pipeline"]
