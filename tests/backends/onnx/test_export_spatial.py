"""Export of conv_transpose, resize, depth_to_space, space_to_depth and the pad modes: the file
passes the full checker at the fixed opset, onnxruntime runs it like the reference, and it
imports back to the same op."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphcnn as gc
from graphcnn.ir import Graph

RNG = np.random.default_rng(21)


def rnd(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _single(op, x_shape, attrs, consts=()):
    def build():
        g = Graph(op)
        ins = [g.add_input("x", x_shape)] + [g.add_constant(c, f"c{i}")
                                             for i, c in enumerate(consts)]
        g.set_outputs([g.apply(op, ins, attrs)])
        return g
    return build


CASES = {
    "ct-stride2": _single("conv_transpose", (1, 3, 5, 6), {
        "strides": (2, 2), "pads": (1, 0, 0, 1), "output_padding": (1, 0)},
        (rnd(3, 4, 3, 3), rnd(4))),
    "ct-extended-bias": _single("conv_transpose", (1, 2, 4, 4), {
        "strides": (3, 2), "pads": (0, 0, -1, -1)}, (rnd(2, 3, 3, 3), rnd(3))),
    "ct-extended": _single("conv_transpose", (1, 2, 4, 4), {
        "strides": (3, 2), "pads": (-1, 0, 0, -1)}, (rnd(2, 3, 3, 3),)),
    "ct-groups-1d": _single("conv_transpose", (2, 4, 7), {"groups": 2, "dilations": (2,)},
                            (rnd(4, 3, 3),)),
    "resize-nearest": _single("resize", (1, 2, 4, 5), {
        "sizes": (1, 2, 8, 15), "mode": "nearest",
        "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    "resize-linear-scales": _single("resize", (1, 2, 5, 7), {
        "sizes": (1, 2, 8, 4), "scales": (1, 1, 1.7, 0.6), "mode": "linear"}),
    "resize-cubic-crop": _single("resize", (1, 2, 6, 7), {
        "sizes": (1, 2, 8, 9), "mode": "cubic",
        "coordinate_transformation_mode": "tf_crop_and_resize",
        "roi": (0, 0, -0.2, 0.3, 1, 1, 0.8, 1.4), "extrapolation_value": 1.5}),
    "d2s-crd": _single("depth_to_space", (1, 8, 3, 4), {"blocksize": 2, "mode": "CRD"}),
    "d2s-dcr": _single("depth_to_space", (1, 8, 3, 4), {"blocksize": 2}),
    "s2d-dcr": _single("space_to_depth", (1, 2, 6, 4), {"blocksize": 2}),
    "s2d-crd": _single("space_to_depth", (1, 2, 6, 4), {"blocksize": 2, "mode": "CRD"}),
    **{f"pad-{m}": _single("pad", (1, 2, 5, 6), {"pads": (0, 0, 2, -1, 0, 0, 1, 3), "mode": m})
       for m in ("reflect", "edge", "wrap")},
}
OPS = {"ct": "conv_transpose", "resize": "resize", "d2s": "depth_to_space",
       "s2d": "space_to_depth", "pad": "pad"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_runs_on_onnxruntime_and_imports_back(name):
    graph = CASES[name]()
    proto = gc.to_onnx(graph)
    onnx.checker.check_model(proto, full_check=True)
    x = rnd(*graph.inputs[0].shape)
    want = gc.compile(graph, target="reference")(x)
    got = gc.compile(graph, target="onnxruntime")(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    back = gc.from_onnx(proto)
    # SpaceToDepth-19 has no mode: CRD comes back as the reshape / transpose it exported as
    want_op = "transpose" if name == "s2d-crd" else OPS[name.split("-")[0]]
    assert want_op in {n.op for n in back.nodes}
    np.testing.assert_allclose(gc.compile(back, target="reference")(x), want, rtol=1e-6,
                               atol=1e-6)
