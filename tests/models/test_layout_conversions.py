"""Layout conversions per corpus model: to_blocked / from_blocked nodes left by
`gc.optimize(g, opt_level=2, target="llvm")` on the torch-exported corpus (tests/torch_corpus.py,
both exporters), against a per-model budget with one line of reason per conversion, so a
change that breaks a blocked region up fails here. The default suite runs the reduced widths,
the slow suite the published ones.

Every corpus model imports natively; a model added to the zoo fails here until its budget is
written down.
"""
from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[models]')")

from torch_corpus import EXPORTERS, export
from torch_zoo import ARCHITECTURES

import graphcnn as gc

IMAGE = "the image enters blocked"

ONE = ("alexnet", "vgg16", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
       "densenet121", "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_large",
       "mobilenet_v3_small", "mnasnet1_0", "convnext_tiny", "efficientnet_b0",
       "regnet_y_400mf", "shufflenet_v2_x1_0")
SQUEEZENET = {IMAGE: 1, "the pooled 1000 logits leave for the flatten output": 1}
TEXT_CNN = {"the embedded tokens enter blocked (the convs lifted to 2-D)": 1}
SEGMENTATION = {IMAGE: 1, "the upsampled class map leaves for the NCHW output": 1}
UNET = {IMAGE: 1, "the output map leaves for the NCHW output": 1,
        "the up-convolutions' sub-pixel interleave (reshape + transpose) runs NCHW": 4,
        "the skip concats after it, out and back in": 8}

# name -> {reason: conversions}; a (name, exporter) key overrides it for that exporter
SMALL: dict[str | tuple[str, str], dict[str, int]] = {
    **{name: {IMAGE: 1} for name in ONE},
    "squeezenet1_1": SQUEEZENET,
    "text_cnn": TEXT_CNN,
    "fcn_resnet50": SEGMENTATION,
    "lraspp_mobilenet_v3_large": SEGMENTATION,
    "unet": UNET,
}

FULL: dict[str | tuple[str, str], dict[str, int]] = {
    **{name: {IMAGE: 1} for name in ONE},
    "squeezenet1_1": SQUEEZENET,
    "text_cnn": TEXT_CNN,
    "fcn_resnet50": SEGMENTATION,
    "lraspp_mobilenet_v3_large": SEGMENTATION,
    "unet": UNET,
}

CASES = [(name, exporter) for name in ARCHITECTURES for exporter in EXPORTERS]


def _budget(table: dict, name: str, exporter: str) -> dict[str, int] | None:
    return table.get((name, exporter), table.get(name))


def _check(table: dict, name: str, exporter: str, **size) -> None:
    e = export(name, exporter, **size)
    budget = _budget(table, name, exporter)
    graph = gc.from_onnx(str(e.path))
    assert budget is not None, f"{name} ({exporter}) imports: write down its budget"
    ops = Counter(n.op for n in gc.optimize(graph, opt_level=2, target="llvm").nodes)
    got = ops["to_blocked"] + ops["from_blocked"]
    assert got == sum(budget.values()), (
        f"{name} ({exporter}): {ops['to_blocked']} to_blocked + {ops['from_blocked']} "
        f"from_blocked, budget {sum(budget.values())}: {budget}")


@pytest.mark.parametrize("name,exporter", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_conversions_reduced_width(name, exporter):
    _check(SMALL, name, exporter)


@pytest.mark.slow
@pytest.mark.parametrize("name,exporter", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_conversions_full_width(name, exporter):
    _check(FULL, name, exporter, width=1.0, size=ARCHITECTURES[name].full_size)


def test_budgets_name_corpus_models():
    for table in (SMALL, FULL):
        for key in table:
            name = key[0] if isinstance(key, tuple) else key
            assert name in ARCHITECTURES


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_mobilenet_v2_depthwise_convs_carry_bias_and_activation(exporter):
    """Batch norm folded into every conv, relu6 fused as its epilogue: the depthwise convs
    too (nothing but convs between the image and the pool)."""
    graph = gc.from_onnx(str(export("mobilenet_v2", exporter).path))
    opt = gc.optimize(graph, opt_level=2, target="llvm")
    assert {n.op for n in opt.nodes} == {"to_blocked", "conv", "global_avg_pool", "reshape",
                                         "gemm"}
    depthwise = [n for n in opt.nodes if n.op == "conv" and n.attrs["groups"] > 1]
    assert len(depthwise) == 17
    for n in depthwise:
        assert n.attrs["groups"] == n.inputs[1].shape[0] and n.inputs[1].shape[1] == 1
        assert len(n.inputs) == 3 and n.inputs[2].is_constant
        assert n.attrs["activation"] == "clip" and tuple(n.attrs["activation_params"]) == (0, 6)
