"""Differential cases for every op of the op table: (case id, graph builder, tolerance).

Random shapes with tails (sizes not multiples of the vector width), drawn attributes; the
graphs take random inputs. Each builder returns a Graph.
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph
from graphcnn.ops import ACTIVATIONS, REDUCTIONS

RNG = np.random.default_rng(1234)
EXACT, SUMMED = 1e-5, 1e-4


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    denom = np.linalg.norm(want)
    return float(np.linalg.norm(got - want) / (denom if denom > 0 else 1.0))


def record_plans(monkeypatch, plan_class) -> list:
    """The plans `plan_class.create` makes from now on (the test's monkeypatch undoes it)."""
    plans = []
    create = plan_class.create.__func__

    def spy(cls, **kwargs):
        plans.append(create(cls, **kwargs))
        return plans[-1]
    monkeypatch.setattr(plan_class, "create", classmethod(spy))
    return plans


def rnd(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def single(op: str, in_shapes, attrs=None, consts=(), name=None, pre=None, post=None) -> Graph:
    """x0..xn inputs (+ constant arrays) -> op -> output; `pre`/`post` wrap layout changes."""
    g = Graph(name or op)
    xs = [g.add_input(f"x{i}", s) for i, s in enumerate(in_shapes)]
    if pre:
        xs = [pre(g, x) for x in xs]
    xs += [g.add_constant(c, f"c{i}") for i, c in enumerate(consts)]
    y = g.apply(op, xs, attrs or {})
    if post:
        y = post(g, y)
    g.set_outputs([y])
    return g


def blocked(block: int):
    return lambda g, x: g.apply("to_blocked", [x], {"block": block})


def unblocked(channels: int):
    return lambda g, y: g.apply("from_blocked", [y], {"channels": channels})


def conv(x, w, b=None, post_res=False, **attrs):
    consts = [rnd(*w)] + ([rnd(b)] if b else [])
    def build():
        g = Graph("conv")
        xv = g.add_input("x", x)
        ins = [xv] + [g.add_constant(c, f"c{i}") for i, c in enumerate(consts)]
        if attrs.get("residual"):
            probe = g.apply("conv", ins, {**attrs, "residual": False})
            r = g.add_input("r", probe.type.shape)
            g.remove(probe.producer)
            ins.append(r)
        g.set_outputs([g.apply("conv", ins, attrs)])
        return g
    return build


def conv_blocked(x, w, ib, ob, b=True, residual=False, **attrs):
    wt, bias = rnd(*w), rnd(w[0])
    def build():
        g = Graph("convc")
        xv = g.apply("to_blocked", [g.add_input("x", x)], {"block": ib})
        ins = [xv, g.add_constant(wt, "w")] + ([g.add_constant(bias, "b")] if b else [])
        a = {**attrs, "layout": "NCHWc", "out_block": ob}
        if residual:
            probe = g.apply("conv", ins, a)
            oshape = (probe.type.shape[0], w[0]) + probe.type.shape[2:-1]
            g.remove(probe.producer)
            ins.append(g.apply("to_blocked", [g.add_input("r", oshape)], {"block": ob}))
            a["residual"] = True
        y = g.apply("conv", ins, a)
        g.set_outputs([g.apply("from_blocked", [y], {"channels": w[0]})])
        return g
    return build


def pool_blocked(op, x, block, **attrs):
    return lambda: single(op, [x], {**attrs, "layout": "NCHWc"}, pre=blocked(block),
                          post=unblocked(x[1]))


CASES: dict[str, list] = {
    "conv": [
        ("2d", conv((2, 3, 11, 13), (5, 3, 3, 3), 5, pads=(1, 1, 1, 1)), SUMMED),
        ("2d-stride-dil", conv((1, 4, 17, 19), (6, 4, 3, 2), 6, strides=(2, 3),
                               dilations=(2, 1), pads=(2, 0, 1, 1)), SUMMED),
        ("2d-groups", conv((1, 6, 9, 21), (4, 3, 3, 3), None, groups=2, pads=(1, 1, 1, 1)),
         SUMMED),
        ("depthwise", conv((1, 8, 10, 10), (8, 1, 3, 3), 8, groups=8, pads=(1, 1, 1, 1),
                           activation="relu"), SUMMED),
        ("1d", conv((2, 3, 37), (4, 3, 5), 4, pads=(2, 1), strides=(2,)), SUMMED),
        ("3d", conv((1, 2, 5, 6, 7), (3, 2, 2, 3, 3), 3, pads=(1, 0, 1, 0, 1, 1)), SUMMED),
        ("residual-leaky", conv((1, 3, 8, 9), (4, 3, 3, 3), 4, pads=(1, 1, 1, 1),
                                residual=True, activation="leaky_relu",
                                activation_params=(0.1,)), SUMMED),
        ("clip-sigmoid", conv((1, 3, 8, 9), (4, 3, 1, 1), 4, activation="sigmoid"), SUMMED),
        ("clip", conv((1, 3, 8, 9), (4, 3, 3, 3), 4, activation="clip",
                      activation_params=(-0.5, 0.5)), SUMMED),
        ("nchwc-fast", conv_blocked((1, 5, 12, 13), (20, 5, 3, 3), 16, 16, pads=(1, 1, 1, 1)),
         SUMMED),
        ("nchwc-fast-residual", conv_blocked((2, 16, 7, 7), (16, 16, 3, 3), 8, 8, residual=True,
                                             pads=(1, 1, 1, 1), strides=(1, 1),
                                             activation="relu"), SUMMED),
        ("nchwc-depthwise", conv_blocked((1, 16, 9, 9), (16, 1, 3, 3), 16, 16, groups=16,
                                         pads=(1, 1, 1, 1)), SUMMED),
        ("nchwc-grouped", conv_blocked((1, 24, 9, 9), (36, 8, 1, 1), 8, 16, groups=3,
                                       activation="relu"), SUMMED),
        ("nchwc-grouped-3x3", conv_blocked((1, 30, 7, 8), (12, 10, 3, 3), 16, 8, groups=3,
                                           pads=(1, 1, 1, 1), residual=True), SUMMED),
        ("nchwc-generic", conv_blocked((1, 6, 9, 9), (6, 3, 3, 3), 4, 5, groups=2,
                                       pads=(1, 1, 1, 1)), SUMMED),
    ],
    "max_pool": [
        ("2d", lambda: single("max_pool", [(2, 3, 9, 11)], {"kernel_shape": (2, 2),
                                                           "strides": (2, 2)}), EXACT),
        ("ceil-pad-dil", lambda: single("max_pool", [(1, 3, 10, 13)], {
            "kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1), "ceil_mode": True,
            "dilations": (1, 2)}), EXACT),
        ("1d", lambda: single("max_pool", [(2, 3, 23)], {"kernel_shape": (3,)}), EXACT),
        ("3d", lambda: single("max_pool", [(1, 2, 5, 6, 7)], {"kernel_shape": (2, 2, 2),
                                                             "strides": (2, 2, 2)}), EXACT),
        ("nchwc", pool_blocked("max_pool", (1, 20, 9, 9), 16, kernel_shape=(3, 3),
                               strides=(2, 2), pads=(1, 1, 1, 1)), EXACT),
        ("nchwc-dilated-ceil", pool_blocked("max_pool", (2, 6, 11, 10), 8, kernel_shape=(3, 2),
                                            strides=(2, 3), dilations=(2, 1), ceil_mode=True,
                                            pads=(1, 0, 2, 1)), EXACT),
        ("nchwc-3d", pool_blocked("max_pool", (1, 5, 5, 6, 7), 4, kernel_shape=(2, 3, 2),
                                  strides=(2, 1, 2), pads=(1, 1, 0, 0, 1, 1)), EXACT),
        ("nchwc-1d", pool_blocked("max_pool", (2, 9, 17), 16, kernel_shape=(4,), strides=(3,),
                                  pads=(2, 1)), EXACT),
    ],
    "avg_pool": [
        ("2d", lambda: single("avg_pool", [(2, 3, 8, 10)], {"kernel_shape": (2, 2),
                                                           "strides": (2, 2)}), EXACT),
        ("pads-exclude", lambda: single("avg_pool", [(1, 3, 9, 11)], {
            "kernel_shape": (3, 3), "pads": (1, 1, 1, 1), "ceil_mode": True,
            "strides": (2, 2)}), EXACT),
        ("pads-include", lambda: single("avg_pool", [(1, 3, 9, 11)], {
            "kernel_shape": (3, 3), "pads": (1, 1, 1, 1), "count_include_pad": True,
            "ceil_mode": True, "strides": (2, 2)}), EXACT),
        ("1d-stride1", lambda: single("avg_pool", [(2, 2, 40)], {"kernel_shape": (4,),
                                                                "pads": (1, 2)}), EXACT),
        ("3d", lambda: single("avg_pool", [(1, 2, 5, 6, 7)], {"kernel_shape": (2, 3, 2)}),
         EXACT),
        ("nchwc", pool_blocked("avg_pool", (1, 9, 8, 8), 8, kernel_shape=(2, 2),
                               strides=(2, 2)), EXACT),
        ("nchwc-pads-exclude", pool_blocked("avg_pool", (1, 20, 9, 11), 16, kernel_shape=(3, 3),
                                            pads=(1, 1, 1, 1), ceil_mode=True, strides=(2, 2)),
         EXACT),
        ("nchwc-pads-include", pool_blocked("avg_pool", (2, 7, 9, 11), 4, kernel_shape=(3, 3),
                                            pads=(1, 1, 1, 1), count_include_pad=True,
                                            strides=(2, 2)), EXACT),
    ],
    "sum_pool": [
        ("2d", lambda: single("sum_pool", [(1, 3, 9, 9)], {"kernel_shape": (3, 3),
                                                          "strides": (2, 2)}), EXACT),
        ("pads", lambda: single("sum_pool", [(2, 1, 7, 18)], {"kernel_shape": (2, 3),
                                                             "pads": (1, 1, 0, 1)}), EXACT),
        ("nchwc", pool_blocked("sum_pool", (1, 5, 7, 7), 4, kernel_shape=(3, 3)), EXACT),
    ],
    "global_avg_pool": [
        ("2d", lambda: single("global_avg_pool", [(2, 5, 7, 9)]), SUMMED),
        ("nchwc", pool_blocked("global_avg_pool", (1, 20, 7, 7), 16), SUMMED),
    ],
    "lp_pool": [
        ("2d-p2", lambda: single("lp_pool", [(2, 3, 9, 19)], {"kernel_shape": (3, 3),
                                                              "strides": (2, 1)}), EXACT),
        ("pads-p3", lambda: single("lp_pool", [(1, 3, 9, 11)], {
            "kernel_shape": (3, 2), "pads": (1, 1, 1, 0), "ceil_mode": True, "p": 3,
            "strides": (2, 2), "dilations": (1, 2)}), EXACT),
        ("1d-p1", lambda: single("lp_pool", [(2, 2, 40)], {"kernel_shape": (4,), "p": 1}),
         EXACT),
        ("nchwc", pool_blocked("lp_pool", (1, 20, 9, 11), 16, kernel_shape=(3, 3),
                               pads=(1, 1, 1, 1), strides=(2, 2)), EXACT),
    ],
    "adaptive_avg_pool": [
        ("2d", lambda: single("adaptive_avg_pool", [(2, 3, 11, 13)], {"output_size": (3, 5)}),
         EXACT),
        ("1d-grow", lambda: single("adaptive_avg_pool", [(1, 2, 5)], {"output_size": (7,)}),
         EXACT),
        ("nchwc", pool_blocked("adaptive_avg_pool", (1, 20, 9, 7), 16, output_size=(4, 3)),
         EXACT),
    ],
    "global_lp_pool": [
        ("2d", lambda: single("global_lp_pool", [(2, 5, 7, 9)]), SUMMED),
        ("p1", lambda: single("global_lp_pool", [(1, 3, 50)], {"p": 1}), SUMMED),
        ("nchwc-p3", pool_blocked("global_lp_pool", (1, 9, 5, 5), 8, p=3), SUMMED),
    ],
    "global_max_pool": [
        ("2d", lambda: single("global_max_pool", [(2, 5, 7, 9)]), EXACT),
        ("1d", lambda: single("global_max_pool", [(1, 3, 50)]), EXACT),
        ("nchwc", pool_blocked("global_max_pool", (1, 9, 5, 5), 8), EXACT),
    ],
    "gemm": [
        ("dense", lambda: single("gemm", [(3, 37)], {"transB": 1}, [rnd(21, 37), rnd(21)]),
         SUMMED),
        ("const-b-act", lambda: single("gemm", [(5, 20)], {"alpha": 0.5, "beta": 2.0,
                                                           "activation": "relu"},
                                       [rnd(20, 19), rnd(5, 19)]), SUMMED),
        ("transA-var-b", lambda: single("gemm", [(17, 4), (17, 23)], {"transA": 1}), SUMMED),
        ("transB-var-b-colC", lambda: single("gemm", [(4, 9), (6, 9)], {"transB": 1,
                                                                      "beta": 0.5},
                                             [rnd(4, 1)]), SUMMED),
        ("scalarC-sigmoid", lambda: single("gemm", [(2, 33), (33, 18)], {
            "activation": "sigmoid"}, [rnd(1)]), SUMMED),
    ],
    "matmul": [
        ("2d", lambda: single("matmul", [(7, 19), (19, 23)]), SUMMED),
        ("batched-broadcast", lambda: single("matmul", [(2, 1, 5, 6), (3, 6, 17)]), SUMMED),
        ("1d-1d", lambda: single("matmul", [(9,), (9,)]), SUMMED),
        ("1d-2d", lambda: single("matmul", [(9,), (9, 4)]), SUMMED),
        ("2d-1d", lambda: single("matmul", [(3, 9), (9,)]), SUMMED),
        ("const-b", lambda: single("matmul", [(2, 3, 20)], consts=[rnd(20, 18)]), SUMMED),
    ],
    "softmax": [
        ("last", lambda: single("softmax", [(3, 37)]), EXACT),
        ("middle", lambda: single("softmax", [(2, 5, 3, 4)], {"axis": 1}), EXACT),
        ("first", lambda: single("softmax", [(6, 7)], {"axis": 0}), EXACT),
    ],
    "log_softmax": [
        ("last", lambda: single("log_softmax", [(3, 37)]), EXACT),
        ("middle", lambda: single("log_softmax", [(2, 5, 3, 4)], {"axis": 1}), EXACT),
    ],
    "relu": [("odd", lambda: single("relu", [(3, 5, 7)]), EXACT)],
    "leaky_relu": [("odd", lambda: single("leaky_relu", [(2, 33)], {"alpha": 0.2}), EXACT)],
    "clip": [("odd", lambda: single("clip", [(4, 17)], {"min": -0.3, "max": 0.7}), EXACT),
             ("relu6", lambda: single("clip", [(35,)], {"min": 0.0, "max": 6.0}), EXACT)],
    "sigmoid": [("odd", lambda: single("sigmoid", [(5, 41)]), EXACT)],
    "add": [
        ("same", lambda: single("add", [(3, 17), (3, 17)]), EXACT),
        ("bcast-row", lambda: single("add", [(2, 3, 19)], consts=[rnd(19)]), EXACT),
        ("bcast-chan", lambda: single("add", [(2, 5, 4, 3), (5, 1, 1)]), EXACT),
        ("bcast-both", lambda: single("add", [(4, 1, 7), (1, 6, 1)]), EXACT),
        ("scalar", lambda: single("add", [(5, 5)], consts=[rnd()]), EXACT),
    ],
    "mul": [
        ("bcast-chan", lambda: single("mul", [(2, 5, 4, 3), (1, 5, 1, 1)]), EXACT),
        ("same", lambda: single("mul", [(33,), (33,)]), EXACT),
    ],
    "sum": [
        ("three", lambda: single("sum", [(2, 19), (2, 19), (19,)]), EXACT),
        ("one", lambda: single("sum", [(3, 3)]), EXACT),
    ],
    "batch_norm": [
        ("4d", lambda: single("batch_norm", [(2, 5, 6, 7)], {"epsilon": 1e-3},
                              [rnd(5), rnd(5), rnd(5), np.abs(rnd(5)) + 0.1]), EXACT),
        ("2d", lambda: single("batch_norm", [(3, 4)], {},
                              [rnd(4), rnd(4), rnd(4), np.abs(rnd(4)) + 0.1]), EXACT),
    ],
    "lrn": [
        ("5", lambda: single("lrn", [(1, 7, 5, 6)], {"size": 5, "alpha": 1e-2, "beta": 0.75,
                                                     "bias": 2.0}), EXACT),
        ("2", lambda: single("lrn", [(2, 4, 3, 19)], {"size": 2}), EXACT),
        # the betas computed by square roots (0.75 above), and one through pow
        ("beta.5", lambda: single("lrn", [(1, 6, 4, 9)], {"size": 3, "alpha": 0.3,
                                                          "beta": 0.5}), EXACT),
        ("beta1", lambda: single("lrn", [(1, 6, 4, 9)], {"size": 3, "alpha": 0.3,
                                                         "beta": 1.0, "bias": 0.5}), EXACT),
        ("beta.6", lambda: single("lrn", [(1, 6, 4, 9)], {"size": 4, "alpha": 0.3,
                                                          "beta": 0.6}), EXACT),
    ],
    "pad": [
        ("4d", lambda: single("pad", [(1, 2, 5, 6)], {"pads": (0, 0, 1, 2, 0, 1, 2, 3),
                                                      "value": 0.5}), EXACT),
        ("crop", lambda: single("pad", [(3, 20)], {"pads": (1, -2, 0, 3)}), EXACT),
    ],
    "concat": [
        ("axis1", lambda: single("concat", [(2, 3, 4), (2, 5, 4), (2, 1, 4)], {"axis": 1}),
         EXACT),
        ("axis0", lambda: single("concat", [(1, 7), (2, 7)], {"axis": 0}), EXACT),
        ("last", lambda: single("concat", [(2, 3), (2, 17)], {"axis": -1}), EXACT),
    ],
    "transpose": [
        ("perm", lambda: single("transpose", [(2, 3, 4, 5)], {"perm": (0, 2, 3, 1)}), EXACT),
        ("reverse", lambda: single("transpose", [(3, 17)]), EXACT),
        ("inner-kept", lambda: single("transpose", [(3, 4, 21)], {"perm": (1, 0, 2)}), EXACT),
    ],
    "reshape": [("flat", lambda: single("reshape", [(2, 3, 4)], {"shape": (4, -1)},
                                        post=lambda g, y: g.apply("relu", [y])), EXACT),
                ("out", lambda: single("reshape", [(2, 3, 4)], {"shape": (6, 4)}), EXACT)],
    "flatten": [("axis2", lambda: single("flatten", [(2, 3, 4, 5)], {"axis": 2}), EXACT)],
    "squeeze": [("axes", lambda: single("squeeze", [(2, 1, 4, 1)], {"axes": (1,)},
                                        pre=lambda g, x: g.apply("sigmoid", [x])), EXACT)],
    "unsqueeze": [("axes", lambda: single("unsqueeze", [(2, 4)], {"axes": (0, 3)}), EXACT)],
    "identity": [("in-out", lambda: single("identity", [(3, 5)]), EXACT)],
    "dropout": [("chain", lambda: single("dropout", [(3, 5)],
                                         post=lambda g, y: g.apply("relu", [y])), EXACT)],
    "channel_shuffle": [
        ("plain", lambda: single("channel_shuffle", [(2, 12, 5, 7)], {"groups": 3}), EXACT),
        ("1d", lambda: single("channel_shuffle", [(1, 8, 9)], {"groups": 2}), EXACT),
        ("blocked-pad-lanes", lambda: single("channel_shuffle", [(1, 60, 6, 5)],
                                             {"groups": 3, "channels": 60, "layout": "NCHWc"},
                                             pre=blocked(16), post=unblocked(60)), EXACT),
        ("blocked-8", lambda: single("channel_shuffle", [(2, 24, 3, 4)],
                                     {"groups": 4, "channels": 24, "layout": "NCHWc"},
                                     pre=blocked(8), post=unblocked(24)), EXACT),
    ],
    "to_blocked": [("pad-lanes", lambda: single("to_blocked", [(2, 5, 3, 4)], {"block": 4}),
                    EXACT),
                   ("3d", lambda: single("to_blocked", [(1, 17, 3)], {"block": 16}), EXACT)],
    "from_blocked": [("drop-lanes", lambda: single("from_blocked", [(2, 2, 3, 4, 4)],
                                                   {"channels": 7}), EXACT)],
}


def _as_float(g, y):
    return g.apply("cast", [y], {"to": "float32"})


CASES.update({  # the indexing ops (graphcnn/ops/indexing.py); integer results cast back
    "gather": [("axis1-wrap", lambda: single("gather", [(3, 7, 5)], {"axis": 1}, consts=[
        np.array([[0, -1, 6], [3, -7, 2]], np.int64)]), EXACT),
               ("embedding", lambda: single("gather", [(9, 33)], {"axis": 0}, consts=[
                   np.array([4, 0, -2, 8], np.int32)]), EXACT)],
    "slice": [("neg-step", lambda: single("slice", [(4, 9, 37)], {
        "starts": (-1, 1), "ends": (-100, 50), "axes": (0, 2), "steps": (-2, 3)}), EXACT),
              ("rows", lambda: single("slice", [(6, 35)], {"starts": (1,), "ends": (5,)}),
               EXACT)],
    "split": [("uneven", lambda: single("split", [(2, 7, 19)], {"axis": 1, "num_outputs": 3}),
               EXACT),
              ("inner", lambda: single("split", [(3, 41)], {"axis": -1, "split": (20, 21)}),
               EXACT)],
    "expand": [("bcast", lambda: single("expand", [(3, 1, 5)], {"shape": (2, 1, 4, 1)}), EXACT)],
    "tile": [("2d", lambda: single("tile", [(3, 17)], {"repeats": (2, 3)}), EXACT)],
    "cast": [("int-trunc", lambda: single("cast", [(5, 41)], {"to": "int32"},
                                          post=_as_float), EXACT),
             ("bool", lambda: single("cast", [(5, 41)], {"to": "bool"}, post=_as_float), EXACT)],
    "where": [("bcast", lambda: _where(), EXACT)],
    "argmax": [("axis1", lambda: single("argmax", [(3, 11, 20)], {"axis": 1},
                                        post=_as_float), EXACT),
               ("last-flat", lambda: single("argmax", [(6, 21)], {
                   "axis": -1, "keepdims": 0, "select_last_index": 1}, post=_as_float), EXACT)],
    "argmin": [("axis0", lambda: single("argmin", [(7, 19)], {"axis": 0}, post=_as_float),
                EXACT)],
})


def _where() -> Graph:
    g = Graph("where")
    x, y = g.add_input("x", (4, 1, 37)), g.add_input("y", (37,))
    cond = g.add_constant(RNG.standard_normal((3, 1)) > 0, "cond")
    g.set_outputs([g.apply("where", [cond, x, y])])
    return g


for _name in ACTIVATIONS:  # a new activation gets a case with its default attributes
    CASES.setdefault(_name, [("odd", lambda n=_name: single(n, [(5, 41)]), EXACT)])


def _positive(g, x):
    return g.apply("sigmoid", [x])  # reduce_log_sum: a sum of positive values


# every reduction: the innermost run reduced (H*W, everything) or kept (channels, outer axes)
REDUCE_CASES = [
    ("hw", (2, 5, 6, 7), {"axes": (2, 3)}), ("inner", (3, 37), {"axes": (-1,), "keepdims": 0}),
    ("all", (4, 3, 33), {}), ("outer", (3, 7, 19), {"axes": (1,), "keepdims": 0}),
    ("mixed", (2, 3, 4, 21), {"axes": (0, 2)}), ("split", (2, 3, 4, 5), {"axes": (1, 3)}),
]
for _name in REDUCTIONS:
    CASES[_name] = [(cid, lambda n=_name, s=shape, a=attrs: single(
        n, [s], a, pre=_positive if n == "reduce_log_sum" else None), SUMMED)
        for cid, shape, attrs in REDUCE_CASES]


def _affine(*shape):
    return [rnd(*shape), rnd(*shape)]


CASES["layer_norm"] = [
    ("last", lambda: single("layer_norm", [(3, 37)], {}, _affine(37)), EXACT),
    ("chw-no-bias", lambda: single("layer_norm", [(2, 5, 6, 7)], {"axis": 1},
                                   [rnd(5, 6, 7)]), EXACT),
    ("stats", lambda: _multi("layer_norm", (4, 3, 19), {"axis": 1, "stats": True},
                             _affine(3, 19)), EXACT),
]
CASES["channel_norm"] = [
    ("nchw", lambda: single("channel_norm", [(2, 7, 5, 19)], {}, _affine(7)), EXACT),
    ("nchw-1d", lambda: single("channel_norm", [(1, 40, 3)], {"epsilon": 1e-3}, _affine(40)),
     EXACT),
    ("nchwc-pad-lanes", lambda: single("channel_norm", [(2, 20, 5, 7)],
                                       {"layout": "NCHWc", "channels": 20},
                                       [np.pad(p, (0, 12)) for p in _affine(20)],
                                       pre=blocked(16), post=unblocked(20)), EXACT),
    ("nchwc-full", lambda: single("channel_norm", [(1, 16, 9, 70)],
                                  {"layout": "NCHWc", "channels": 16}, _affine(16),
                                  pre=blocked(8), post=unblocked(16)), EXACT),
]
CASES["group_norm"] = [
    ("groups", lambda: single("group_norm", [(2, 6, 5, 7)], {"num_groups": 3}, _affine(6)),
     EXACT),
    ("instance", lambda: single("group_norm", [(2, 5, 9, 11)], {"num_groups": 5}, _affine(5)),
     EXACT),
    ("2d", lambda: single("group_norm", [(3, 4)], {"num_groups": 2}, _affine(4)), EXACT),
    ("nchwc-instance", lambda: single("group_norm", [(2, 20, 5, 7)],
                                      {"num_groups": 32, "layout": "NCHWc"},
                                      [np.pad(p, (0, 12)) for p in _affine(20)],
                                      pre=blocked(16), post=unblocked(20)), EXACT),
]
CASES["lp_norm"] = [
    ("l2-last", lambda: single("lp_norm", [(3, 37)], {"p": 2}), EXACT),
    ("l1-middle", lambda: single("lp_norm", [(2, 5, 4)], {"axis": 1, "p": 1}), EXACT),
]
CASES["mean_variance_norm"] = [
    ("default", lambda: single("mean_variance_norm", [(2, 5, 6, 7)]), EXACT),
    ("inner-kept", lambda: single("mean_variance_norm", [(2, 3, 17)], {"axes": (1,)}), EXACT),
]


def _multi(op: str, shape, attrs, consts) -> Graph:
    """op over x0 and constants, every output a graph output."""
    g = Graph(op)
    node = g.add_node(op, [g.add_input("x0", shape)] + [g.add_constant(c, f"c{i}")
                                                       for i, c in enumerate(consts)], attrs)
    g.set_outputs(list(node.outputs))
    return g


def _blocked_concat(shapes_blocks, block):
    """inputs of (shape, block) blocked, concatenated and repacked into `block` lanes."""
    def build():
        g = Graph("blocked_concat")
        xs = [g.apply("to_blocked", [g.add_input(f"x{i}", s)], {"block": b})
              for i, (s, b) in enumerate(shapes_blocks)]
        y = g.apply("blocked_concat", xs, {"channels": [s[1] for s, _ in shapes_blocks],
                                           "block": block})
        g.set_outputs([g.apply("from_blocked", [y], {"channels": sum(
            s[1] for s, _ in shapes_blocks)})])
        return g
    return build


CASES["blocked_concat"] = [
    ("densenet-growth8", _blocked_concat([((1, 24, 5, 6), 16), ((1, 8, 5, 6), 8)], 16), EXACT),
    ("three-misaligned", _blocked_concat([((2, 5, 3, 4), 8), ((2, 7, 3, 4), 8),
                                          ((2, 9, 3, 4), 16)], 16), EXACT),
    ("aligned-first", _blocked_concat([((1, 16, 4, 4), 16), ((1, 20, 4, 4), 16)], 16), EXACT),
]


# ----- the pointwise ops: math functions, activations, broadcasting binaries ----------------
def _abs_pre(g, x):
    return g.apply("abs", [x])  # a domain of x >= 0 (sqrt, log, ...)


def _after_conv(op: str, attrs=None, n_in: int = 1, consts=()):
    """conv -> add(y, y) -> op: under the level-2 pipeline the conv runs blocked and so does
    the op when it keeps zero padding (the add keeps it from fusing into the conv)."""
    w, b = rnd(12, 5, 3, 3) * 0.3, rnd(12)

    def build():
        g = Graph(f"{op}_after_conv")
        y = g.apply("conv", [g.add_input("x", (1, 5, 7, 9)), g.add_constant(w, "w"),
                             g.add_constant(b, "b")], {"pads": [1, 1, 1, 1]})
        y = g.apply("add", [y, y])
        if op in ("sqrt", "log", "reciprocal"):
            # |y| + 0.5: inside the domain and away from the pole and the steep part near 0,
            # where the conv's summation order would decide the digits
            y = g.apply("add", [g.apply("abs", [y]), g.add_constant(
                np.full((1,), 0.5, np.float32), "half")])
        ins = [y] * n_in + [g.add_constant(c, f"c{i}") for i, c in enumerate(consts)]
        g.set_outputs([g.apply(op, ins, attrs or {})])
        return g
    return build


# ----- spatial resampling (graphcnn/ops/spatial.py, pad modes) --------------------------------
def _resize(shape, sizes, **attrs):
    return lambda: single("resize", [shape], {"sizes": sizes, **attrs})


def _conv_transpose(x, w, b=None, **attrs):
    consts = [rnd(*w)] + ([rnd(b)] if b else [])
    return lambda: single("conv_transpose", [x], attrs, consts)


def _between_convs(op, attrs, c=8, hw=(6, 7), consts=()):
    """conv -> op -> conv: the op between two (blocked, after the llvm passes) convs."""
    w1 = rnd(c, 3, 3, 3)
    def build():
        g = Graph(op)
        x = g.add_input("x", (1, 3) + hw)
        h = g.apply("conv", [x, g.add_constant(w1, "w1")], {"pads": (1, 1, 1, 1)})
        h = g.apply("relu", [h])
        h = g.apply(op, [h] + [g.add_constant(k, f"k{i}") for i, k in enumerate(consts)],
                    attrs(h) if callable(attrs) else attrs)
        w = g.add_constant(rnd(8, h.shape[1], 3, 3), "w2")
        g.set_outputs([g.apply("conv", [h, w], {"pads": (1, 1, 1, 1)})])
        return g
    return build


# the lane-group kernel (kernels/depthwise.py with group_size > 1): groups of a few lanes
CASES["conv"] += [
    ("nchwc-lane-groups-4", conv_blocked((1, 40, 9, 11), (40, 4, 3, 3), 16, 16, groups=10,
                                         pads=(1, 1, 1, 1), activation="relu"), SUMMED),
    ("nchwc-lane-groups-8-strided", conv_blocked((2, 24, 11, 10), (24, 8, 3, 3), 16, 16,
                                                 groups=3, pads=(1, 1, 1, 1), strides=(2, 2),
                                                 residual=True), SUMMED),
    ("nchwc-lane-groups-2-dilated", conv_blocked((1, 12, 9, 9), (12, 2, 3, 3), 4, 4,
                                                 groups=6, pads=(2, 1, 2, 1),
                                                 dilations=(2, 1), activation="sigmoid"),
     SUMMED),
]


def _blocked_split(shape, in_block, channels, block):
    """x blocked with in_block, split on the channels into `channels`, repacked into block."""
    def build():
        g = Graph("blocked_split")
        x = g.apply("to_blocked", [g.add_input("x", shape)], {"block": in_block})
        parts = g.add_node("blocked_split", [x], {"channels": channels, "block": block}).outputs
        g.set_outputs([g.apply("from_blocked", [y], {"channels": c})
                       for y, c in zip(parts, channels)])
        return g
    return build


def _pow(base_shape, exp_shape, negative_base=False):
    def build():
        g = Graph("pow")
        x = g.add_input("x", base_shape)
        x = x if negative_base else g.apply("abs", [x])
        if negative_base:  # integer exponents: the sign of x for the odd ones
            e = g.add_constant(RNG.integers(-3, 4, exp_shape).astype(np.float32), "e")
        else:
            e = g.add_input("e", exp_shape)
        g.set_outputs([g.apply("pow", [x, e])])
        return g
    return build


_DOMAIN = {"sqrt": _abs_pre, "log": _abs_pre}
for _name in ("silu", "tanh", "erf", "gelu", "gelu_tanh", "mish", "softplus", "softsign", "elu",
              "selu", "celu", "thresholded_relu", "sqrt", "exp", "log", "abs", "neg",
              "reciprocal", "floor", "ceil", "round", "sign"):
    CASES[_name] = [
        ("odd", lambda n=_name: single(n, [(5, 41)], pre=_DOMAIN.get(n)), EXACT),
        ("after-conv", _after_conv(_name), EXACT),
    ]
CASES["celu"].append(("alpha", lambda: single("celu", [(3, 37)], {"alpha": 0.4}), EXACT))
CASES["elu"].append(("alpha", lambda: single("elu", [(3, 37)], {"alpha": 0.3}), EXACT))
CASES["thresholded_relu"].append(
    ("alpha", lambda: single("thresholded_relu", [(3, 37)], {"alpha": -0.2}), EXACT))
for _name in ("sub", "div", "max", "min"):
    CASES[_name] = [
        ("same", lambda n=_name: single(n, [(3, 17), (3, 17)]), EXACT),
        ("bcast-chan", lambda n=_name: single(n, [(2, 5, 4, 3), (5, 1, 1)]), EXACT),
        ("bcast-both", lambda n=_name: single(n, [(4, 1, 7), (1, 6, 1)]), EXACT),
        ("scalar", lambda n=_name: single(n, [(5, 5)], consts=[rnd()]), EXACT),
        ("after-conv", _after_conv(_name, n_in=2), EXACT),
    ]
for _name in ("max", "min", "mean"):
    CASES.setdefault(_name, []).extend([
        ("three", lambda n=_name: single(n, [(2, 19), (2, 19), (19,)]), EXACT),
        ("one", lambda n=_name: single(n, [(3, 3)]), EXACT),
    ])
CASES["mean"].append(("after-conv", _after_conv("mean", n_in=3), EXACT))
CASES["pow"] = [
    ("same", _pow((3, 17), (3, 17)), EXACT),
    ("bcast-row", _pow((2, 3, 19), (19,)), EXACT),
    ("negative-base", _pow((4, 21), (4, 21), negative_base=True), EXACT),
]
CASES["prelu"] = [
    ("per-channel", lambda: single("prelu", [(2, 6, 5, 7)], consts=[rnd(6, 1, 1)]), EXACT),
    ("runtime-slope", lambda: single("prelu", [(2, 6, 5, 7), (1, 6, 1, 1)]), EXACT),
    ("bcast-last", lambda: single("prelu", [(3, 4, 19)], consts=[rnd(19)]), EXACT),
    ("after-conv", _after_conv("prelu", consts=[rnd(12, 1, 1)]), EXACT),
]


CASES["conv_transpose"] = [
    ("2d-stride2-pads", _conv_transpose((1, 3, 5, 6), (3, 4, 3, 3), 4, strides=(2, 2),
                                        pads=(1, 0, 0, 1), output_padding=(1, 0)), SUMMED),
    ("2d-subpixel", _conv_transpose((2, 8, 4, 5), (8, 6, 2, 2), 6, strides=(2, 2)), SUMMED),
    ("2d-groups-dilations", _conv_transpose((1, 4, 5, 4), (4, 3, 2, 3), groups=2,
                                            dilations=(2, 1), strides=(1, 3)), SUMMED),
    ("2d-extended", _conv_transpose((1, 2, 4, 4), (2, 3, 3, 3), strides=(3, 2),
                                    pads=(0, 0, -1, -2)), SUMMED),
    ("1d", _conv_transpose((2, 3, 9), (3, 5, 4), 5, strides=(3,), pads=(1, 2)), SUMMED),
    ("3d", _conv_transpose((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), strides=(2, 1, 2),
                           pads=(0, 1, 0, 1, 0, 0)), SUMMED),
    ("unet-between-convs", _between_convs("conv_transpose", {"strides": (2, 2)}, c=16,
                                          consts=(rnd(16, 8, 2, 2), rnd(8))), SUMMED),
    ("strided-between-convs", _between_convs("conv_transpose", {
        "strides": (2, 2), "pads": (1, 1, 1, 1), "output_padding": (1, 1)}, c=16,
        consts=(rnd(16, 12, 3, 3),)), SUMMED),
]
CASES["resize"] = [
    ("nearest-2x", _resize((1, 3, 5, 7), (1, 3, 10, 14), mode="nearest",
                           coordinate_transformation_mode="asymmetric",
                           nearest_mode="floor"), EXACT),
    ("nearest-half-pixel", _resize((2, 2, 6, 5), (2, 2, 9, 3), mode="nearest",
                                   nearest_mode="round_prefer_ceil"), EXACT),
    ("bilinear-align", _resize((1, 3, 5, 7), (1, 3, 11, 9), mode="linear",
                               coordinate_transformation_mode="align_corners"), EXACT),
    ("bilinear-pytorch", _resize((2, 5, 6, 4), (2, 5, 3, 10), mode="linear",
                                 coordinate_transformation_mode="pytorch_half_pixel"), EXACT),
    ("cubic-exclude", _resize((1, 2, 6, 7), (1, 2, 9, 5), mode="cubic", cubic_coeff_a=-0.5,
                              exclude_outside=1), EXACT),
    ("trilinear", _resize((1, 2, 3, 4, 5), (1, 2, 6, 6, 4), mode="linear"), EXACT),
    ("crop-extrapolate", _resize((1, 2, 6, 7), (1, 2, 8, 9), mode="linear",
                                 coordinate_transformation_mode="tf_crop_and_resize",
                                 roi=(0, 0, -0.2, 0.3, 1, 1, 0.8, 1.4),
                                 extrapolation_value=1.5), EXACT),
    ("channels-axis", _resize((2, 6, 5), (2, 4, 5), mode="linear"), EXACT),
    ("fcn-between-convs", _between_convs("resize", lambda h: {
        "sizes": h.shape[:2] + (12, 14), "mode": "linear"}, c=20), SUMMED),
    ("nearest-between-convs", _between_convs("resize", lambda h: {
        "sizes": h.shape[:2] + (12, 21), "mode": "nearest",
        "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}), SUMMED),
]
CASES["depth_to_space"] = [
    ("dcr", lambda: single("depth_to_space", [(2, 12, 3, 5)], {"blocksize": 2}), EXACT),
    ("crd", lambda: single("depth_to_space", [(1, 18, 4, 3)], {"blocksize": 3, "mode": "CRD"}),
     EXACT),
    ("between-convs", _between_convs("depth_to_space", {"blocksize": 2}, c=16), SUMMED),
]
CASES["space_to_depth"] = [
    ("dcr", lambda: single("space_to_depth", [(2, 3, 6, 4)], {"blocksize": 2}), EXACT),
    ("crd", lambda: single("space_to_depth", [(1, 2, 6, 9)], {"blocksize": 3, "mode": "CRD"}),
     EXACT),
]
CASES["pad"] += [
    (f"{mode}-{cid}", lambda mode=mode, shape=shape, pads=pads: single(
        "pad", [shape], {"pads": pads, "mode": mode}), EXACT)
    for mode in ("reflect", "edge", "wrap")
    for cid, shape, pads in (("4d", (2, 3, 5, 6), (0, 0, 2, 1, 0, 0, 1, 3)),
                             ("negative", (2, 3, 5, 21), (0, 1, -1, 4, 0, -1, 2, -2)),
                             ("long-row", (1, 2, 3, 40), (0, 0, 1, 5, 0, 0, 2, 3)))
] + [("reflect-between-convs", _between_convs("pad", {
    "pads": (0, 0, 1, 2, 0, 0, 2, 1), "mode": "reflect"}), SUMMED)]


CASES["blocked_split"] = [
    ("shufflenet-halves", _blocked_split((1, 56, 4, 5), 16, [28, 28], 16), EXACT),
    ("three-misaligned", _blocked_split((2, 21, 3, 3), 8, [5, 7, 9], 4), EXACT),
    ("wider-out", _blocked_split((1, 20, 2, 7), 4, [3, 17], 16), EXACT),
]
