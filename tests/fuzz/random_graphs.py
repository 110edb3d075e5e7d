"""Random CNN-shaped graphs for differential fuzzing, built with the DSL's functional builder:
convs (strided, dilated, grouped, depthwise), batch and layer norms, the activation table,
elementwise ops on two branches and on broadcast constants, concats, pools, pads of every mode,
squeeze-excitation, softmax, resizes and layout views, with a flattened dense head sometimes.
A layer choice the shapes at that point cannot take is skipped (the op's own shape rule says
so), so every drawn graph is valid."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import graphcnn as gc
from graphcnn.errors import GraphcnnError

ACTIVATIONS = [("relu", {}), ("sigmoid", {}), ("tanh", {}), ("leaky_relu", {"alpha": 0.1}),
               ("clip", {"min": -0.5, "max": 0.5}), ("clip", {"min": 0.0, "max": 6.0}),
               ("elu", {"alpha": 0.7}), ("selu", {}), ("celu", {"alpha": 1.3}),
               ("hard_sigmoid", {"alpha": 0.2, "beta": 0.5}), ("hard_swish", {}), ("gelu", {}),
               ("gelu_tanh", {}), ("mish", {}), ("softplus", {}), ("softsign", {}), ("silu", {}),
               ("abs", {}), ("neg", {}), ("erf", {})]
BINARY = ["add", "sub", "mul", "max", "min"]
LAYERS = ["conv", "conv", "conv", "bn", "act", "act", "binary", "bias", "concat", "pool",
          "global", "pad", "se", "softmax", "norm", "resize", "views"]


class _Draw:
    """The builder and a seeded source of constants for one drawn graph."""

    def __init__(self, draw, seed: int):
        self.draw, self.b = draw, gc.GraphBuilder("fuzz")
        self.rng = np.random.default_rng(seed)

    def const(self, shape, low=-1.0, high=1.0) -> np.ndarray:
        return self.rng.uniform(low, high, shape).astype(np.float32)

    def pick(self, options):
        return self.draw(st.sampled_from(options))


def _layer(d: _Draw, kind: str, x: gc.Tensor, values: list[gc.Tensor]) -> gc.Tensor:
    b, pick = d.b, d.pick
    n, c, h, w = x.shape
    if kind == "conv":
        k = pick([1, 3, 3, 5])
        dil = pick([1, 1, 2]) if k > 1 and h >= 5 and w >= 5 else 1
        groups = pick([1, 1, c] + ([2] if c % 2 == 0 else []))
        out = c if groups == c else pick([4, 8, 12, 16]) * (groups if groups == 2 else 1)
        stride = pick([1, 1, 2]) if min(h, w) >= 4 else 1
        pad = pick([dil * (k // 2), 0]) if min(h, w) > dil * (k - 1) else dil * (k // 2)
        params = {"weight": d.const((out, c // groups, k, k), -0.5, 0.5)}
        if d.draw(st.booleans()):
            params["bias"] = d.const((out,))
        return b.op("conv", [x], params=params, strides=(stride,) * 2, pads=(pad,) * 4,
                    dilations=(dil,) * 2, groups=groups)
    if kind == "bn":
        return b.op("batch_norm", [x], params={
            "scale": d.const((c,)), "bias": d.const((c,)), "mean": d.const((c,)),
            "var": d.const((c,), 0.5, 1.5)})
    if kind == "act":
        op, attrs = pick(ACTIVATIONS)
        return b.op(op, [x], **attrs)
    if kind == "binary":
        same = [v for v in values if v.shape == x.shape]
        return b.op(pick(BINARY), [x, pick(same)])
    if kind == "bias":
        shape = pick([(c, 1, 1), (1, c, 1, 1), (w,), (1, 1, h, w)])
        return b.op(pick(["add", "mul", "sub"]), [x], params={"c": d.const(shape)})
    if kind == "concat":
        same = [v for v in values if v.shape[2:] == x.shape[2:]]
        return gc.concat([x, pick(same)], axis=1)
    if kind == "pool":
        op = pick(["max_pool", "avg_pool"])
        k, s = pick([2, 3]), pick([1, 2])
        p = pick([0, 1]) if k == 3 else 0
        extra = {"count_include_pad": d.draw(st.booleans())} if op == "avg_pool" else {}
        return b.op(op, [x], kernel_shape=(k, k), strides=(s, s), pads=(p,) * 4,
                    ceil_mode=d.draw(st.booleans()), **extra)
    if kind == "global":
        y = b.op(pick(["global_avg_pool", "global_max_pool"]), [x])
        return b.op("mul", [x, y]) if d.draw(st.booleans()) else y
    if kind == "pad":
        mode = pick(["constant", "reflect", "edge"])
        p = (0, 0, pick([0, 1]), 1, 0, 0, 1, pick([0, 1]))
        return b.op("pad", [x], pads=p, mode=mode, value=0.25 if mode == "constant" else 0.0)
    if kind == "se":  # squeeze-excitation as exporters write it
        r = max(1, c // 2)
        s = b.op("reduce_mean", [x], axes=(2, 3), keepdims=1)
        s = b.op("conv", [s], params={"weight": d.const((r, c, 1, 1)), "bias": d.const((r,))})
        s = b.op(pick(["relu", "silu"]), [s])
        s = b.op("conv", [s], params={"weight": d.const((c, r, 1, 1)), "bias": d.const((c,))})
        s = b.op(pick(["sigmoid", "hard_sigmoid"]), [s])
        return b.op("mul", [x, s])
    if kind == "softmax":
        return b.op(pick(["softmax", "log_softmax"]), [x], axis=pick([1, -1]))
    if kind == "norm":
        if d.draw(st.booleans()):
            return b.op("layer_norm", [x], params={"scale": d.const((w,)), "bias": d.const((w,))},
                        axis=-1)
        groups = pick([g for g in (1, 2, 4) if c % g == 0])
        return b.op("group_norm", [x], params={"scale": d.const((c,)), "bias": d.const((c,))},
                    num_groups=groups)
    if kind == "resize":
        if h * w > 64:
            raise GraphcnnError("large enough")
        return b.op("resize", [x], sizes=(n, c, 2 * h, 2 * w),
                    mode=pick(["nearest", "linear"]),
                    coordinate_transformation_mode=pick(["half_pixel", "asymmetric"]))
    t = gc.transpose(x, (0, 2, 3, 1))  # views: NHWC and back, through reshapes
    t = gc.transpose(t, (0, 3, 1, 2))
    return gc.reshape(gc.reshape(t, (n, c * h, w)), (n, c, h, w))


@st.composite
def random_graphs(draw, max_layers: int = 9) -> gc.Graph:
    d = _Draw(draw, draw(st.integers(0, 2**31)))
    shape = (draw(st.sampled_from([1, 1, 2])), draw(st.sampled_from([1, 3, 4, 8])),
             draw(st.integers(3, 12)), draw(st.integers(3, 12)))
    values = [d.b.input("x", shape)]
    for _ in range(draw(st.integers(1, max_layers))):
        x = d.pick(values[-3:])
        try:
            values.append(_layer(d, d.pick(LAYERS), x, values))
        except GraphcnnError:  # these shapes cannot take that layer here: draw the next
            continue
    outs = [values[-1]]
    if draw(st.booleans()):  # a classifier head
        y = values[-1]
        flat = d.b.op("flatten", [y], axis=1)
        k = flat.shape[1]
        dense = d.b.op("gemm", [flat], params={"w": d.const((k, 10), -0.3, 0.3),
                                               "b": d.const((10,))})
        outs = [d.b.op("softmax", [dense], axis=1)]
    if len(values) > 2 and draw(st.booleans()):
        outs.append(values[-2])
    return d.b.build(*outs)
