"""gc.ConvTranspose2d and gc.Upsample against torch.nn on random weights and inputs, on the
reference and llvm targets; bad arguments as typed errors."""
from __future__ import annotations

import numpy as np
import pytest

import graphcnn as gc

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(3)


def _run(layer, x):
    graph = gc.Sequential(layer).build(x.shape)
    return {t: gc.compile(graph, target=t)(x) for t in ("reference", "llvm")}


@pytest.mark.parametrize("kw", [
    {"in_channels": 4, "out_channels": 6, "kernel_size": 2, "stride": 2},
    {"in_channels": 3, "out_channels": 5, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1},
    {"in_channels": 4, "out_channels": 6, "kernel_size": (3, 2), "stride": (1, 3), "padding": (1, 0),
         "groups": 2, "dilation": (2, 1)},
    {"in_channels": 2, "out_channels": 3, "kernel_size": 4, "stride": 3, "padding": 2, "bias": False,
         "output_padding": (2, 1)},
], ids=["unet", "stride2-outpad", "groups-dilation", "no-bias"])
def test_conv_transpose2d_matches_torch(kw):
    t = torch.nn.ConvTranspose2d(**kw)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(RNG.standard_normal(t.weight.shape).astype(np.float32)))
    bias = t.bias.detach().numpy() if t.bias is not None else False
    layer = gc.ConvTranspose2d(**{**kw, "bias": bias}, weight=t.weight.detach().numpy())
    x = RNG.standard_normal((2, kw["in_channels"], 5, 6)).astype(np.float32)
    want = t(torch.from_numpy(x)).detach().numpy()
    for target, got in _run(layer, x).items():
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=target)


@pytest.mark.parametrize("kw", [
    {"scale_factor": 2, "mode": "nearest"},
    {"scale_factor": (1.5, 3), "mode": "nearest"},
    {"size": (9, 7), "mode": "nearest"},
    {"scale_factor": 2, "mode": "bilinear"},
    {"scale_factor": 2, "mode": "bilinear", "align_corners": True},
    {"size": (11, 5), "mode": "bilinear"},
    {"size": (11, 5), "mode": "bilinear", "align_corners": True},
], ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_upsample_matches_torch(kw):
    x = RNG.standard_normal((2, 3, 6, 4)).astype(np.float32)
    want = torch.nn.Upsample(**kw)(torch.from_numpy(x)).numpy()
    for target, got in _run(gc.Upsample(**kw), x).items():
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=target)


def test_conv_transpose2d_bad_arguments_are_typed():
    with pytest.raises(gc.ShapeError, match="groups"):
        gc.ConvTranspose2d(4, 6, 3, groups=4)
    with pytest.raises(gc.ShapeError, match="output_padding"):
        gc.Sequential(gc.ConvTranspose2d(4, 6, 3, stride=2, output_padding=2)).build(
            (1, 4, 5, 5))
    with pytest.raises(gc.ShapeError, match="expects"):
        gc.Sequential(gc.ConvTranspose2d(4, 6, 3)).build((1, 3, 5, 5))


def test_upsample_bad_arguments_are_typed():
    with pytest.raises(gc.ShapeError, match="exactly one"):
        gc.Upsample()
    with pytest.raises(gc.ShapeError, match="mode"):
        gc.Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(gc.ShapeError, match="> 0"):
        gc.Upsample(scale_factor=0)
    with pytest.raises(gc.ShapeError, match="align_corners"):
        gc.Upsample(scale_factor=2, align_corners=True)
