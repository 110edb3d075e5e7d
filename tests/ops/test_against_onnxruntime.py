"""Every op of the op table: the reference interpreter against onnxruntime (via ONNX export),
on random inputs and randomly drawn attributes. Seeded, so a failing draw reproduces by its id."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest
from indexing_cases import GENERATORS as INDEXING_GENERATORS
from onnx.reference import ReferenceEvaluator

import graphcnn as gc
from graphcnn.ir import Graph
from graphcnn.ops import ACTIVATIONS, OPS, REDUCTIONS

Case = tuple[Graph, list[np.ndarray]]


def randn(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def single_op(op: str, rng, input_shapes, consts=(), attrs=None, blocked: int = 0) -> Case:
    """One node over graph inputs (random data) and constants; optionally wrapped in the
    blocked layout (to_blocked before, from_blocked after)."""
    g = Graph(f"one_{op}")
    xs = [g.add_input(f"x{i}", s) for i, s in enumerate(input_shapes)]
    args = list(xs)
    if blocked:
        args[0] = g.apply("to_blocked", [xs[0]], {"block": blocked})
    args += [g.add_constant(c, f"c{i}") for i, c in enumerate(consts)]
    y = g.apply(op, args, attrs or {})
    if blocked:
        channels = args[1].shape[0] if op == "conv" else input_shapes[0][1]
        y = g.apply("from_blocked", [y], {"channels": channels})
    g.set_outputs([y])
    return g, [randn(rng, s) for s in input_shapes]


# ----- generators: op -> rng -> Case ----------------------------------------------------------
def channel_shuffle_case(r: np.random.Generator) -> Case:
    """Plain, or blocked with padding lanes in the last block (channels not a multiple of it)."""
    groups = int(r.choice([2, 3, 4]))
    shape = (int(r.integers(1, 3)), groups * int(r.integers(1, 7)), 3, int(r.integers(1, 6)))
    block = int(r.choice([0, 4, 8, 16]))
    attrs = {"groups": groups, "layout": "NCHWc" if block else "NCHW",
             "channels": shape[1] if block else 0}
    return single_op("channel_shuffle", r, [shape], (), attrs, blocked=block)



# every fused activation of the table: explicit params where it takes some, else its defaults
EPILOGUE_PARAMS = {"leaky_relu": (0.1,), "clip": (-0.5, 0.7), "hard_sigmoid": (0.3, 0.4)}
# functions of a half line (or with poles) draw positive inputs of their own (POSITIVE_INPUT)
POSITIVE_INPUT = {"sqrt", "log", "reciprocal"}
EPILOGUES = [("none", ())] + [(name, EPILOGUE_PARAMS.get(name, tuple(d for _, d in a.attrs)))
                              for name, a in ACTIVATIONS.items()
                              if a.fusible and name not in POSITIVE_INPUT]


def conv_case(rng) -> Case:
    nd = int(rng.choice([1, 2, 3], p=[0.25, 0.55, 0.2]))
    kind = rng.choice(["dense", "depthwise", "grouped"], p=[0.6, 0.2, 0.2])
    g = {"dense": 1, "depthwise": int(rng.integers(2, 6)), "grouped": int(rng.integers(2, 4))}[kind]
    cin = g if kind == "depthwise" else g * int(rng.integers(1, 4))
    cout = g * int(rng.integers(1, 4))
    kmax = 3 if nd == 3 else 5
    kernel = [int(rng.integers(1, kmax + 1)) for _ in range(nd)]
    dil = [int(rng.integers(1, 3)) for _ in range(nd)]
    strides = [int(rng.integers(1, 4)) for _ in range(nd)]
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    pads = [int(rng.integers(0, s)) for s in span] + [int(rng.integers(0, s)) for s in span]
    size = [int(rng.integers(max(1, s - pads[i] - pads[i + nd]), s + (4 if nd == 3 else 9)))
            for i, s in enumerate(span)]
    n = int(rng.integers(1, 3))
    w = randn(rng, (cout, cin // g, *kernel))
    consts = [w]
    attrs = {"strides": strides, "pads": pads, "dilations": dil, "groups": g}
    if rng.random() < 0.7:
        consts.append(randn(rng, (cout,)))
        act, params = EPILOGUES[int(rng.integers(len(EPILOGUES)))]
        attrs.update(activation=act, activation_params=params)
    shapes = [(n, cin, *size)]
    blocked = int(rng.choice([4, 8])) if nd == 2 and rng.random() < 0.25 else 0
    if blocked:
        attrs.update(layout="NCHWc", out_block=blocked)
    graph, inputs = single_op("conv", rng, shapes, consts, attrs, blocked)
    return graph, inputs


def residual_conv_case(rng) -> Case:
    """conv + bias + residual + activation, the fused form passes produce."""
    c, k = int(rng.integers(1, 6)), int(rng.choice([1, 3]))
    g = Graph("residual_conv")
    x = g.add_input("x", (1, c, 7, 6))
    r = g.add_input("r", (1, c, 7, 6))
    w, b = g.add_constant(randn(rng, (c, c, k, k))), g.add_constant(randn(rng, (c,)))
    act, params = EPILOGUES[int(rng.integers(len(EPILOGUES)))]
    y = g.apply("conv", [x, w, b, r], {"pads": [k // 2] * 4, "residual": True,
                                       "activation": act, "activation_params": params})
    g.set_outputs([y])
    return g, [randn(rng, (1, c, 7, 6)), randn(rng, (1, c, 7, 6))]


def pool_case(op: str) -> Callable:
    def make(rng) -> Case:
        nd = int(rng.choice([1, 2, 3], p=[0.25, 0.55, 0.2]))
        kernel = [int(rng.integers(1, 4 if nd == 3 else 5)) for _ in range(nd)]
        dil = [int(rng.integers(1, 3)) if op != "avg_pool" else 1 for _ in range(nd)]
        span = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
        strides = [int(rng.integers(1, 4)) for _ in range(nd)]
        # onnxruntime wants each pad smaller than the kernel (not just its dilated extent)
        pads = [int(rng.integers(0, k)) for k in kernel] + [int(rng.integers(0, k)) for k in kernel]
        if rng.random() < 0.3:
            pads = [0] * (2 * nd)
        size = [int(rng.integers(s, s + (5 if nd == 3 else 10))) for s in span]
        attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads, "dilations": dil,
                 "ceil_mode": bool(rng.random() < 0.4)}
        if op == "avg_pool":
            attrs["count_include_pad"] = bool(rng.random() < 0.5)
        if op == "lp_pool":
            attrs["p"] = int(rng.choice([1, 2, 3]))
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 5)), *size)
        blocked = 4 if nd == 2 and rng.random() < 0.2 else 0
        if blocked:
            attrs["layout"] = "NCHWc"
        return single_op(op, rng, [shape], (), attrs, blocked)
    return make


def global_pool_case(op: str) -> Callable:
    def make(rng) -> Case:
        shape = (2, int(rng.integers(1, 6)), *rng.integers(1, 7, int(rng.integers(1, 4))))
        attrs = {"p": int(rng.choice([1, 2, 3]))} if op == "global_lp_pool" else {}
        return single_op(op, rng, [shape], (), attrs)
    return make


def unary_case(op: str, attrs: Callable = lambda rng: {}) -> Callable:
    def make(rng) -> Case:
        shape = tuple(int(d) for d in rng.integers(1, 6, int(rng.integers(1, 5))))
        return single_op(op, rng, [shape], (), attrs(rng))
    return make


def gemm_case(rng) -> Case:
    m, k, n = (int(v) for v in rng.integers(1, 17, 3))
    ta, tb = int(rng.integers(2)), int(rng.integers(2))
    a_shape = (k, m) if ta else (m, k)
    b = randn(rng, (n, k) if tb else (k, n))
    c_shape = [(), (n,), (1, n), (m, n), (m, 1)][int(rng.integers(5))]
    consts = [b] + ([randn(rng, c_shape)] if rng.random() < 0.8 else [])
    act, params = EPILOGUES[int(rng.integers(len(EPILOGUES)))]
    attrs = {"transA": ta, "transB": tb, "alpha": float(rng.uniform(-2, 2)),
             "beta": float(rng.uniform(-2, 2)), "activation": act, "activation_params": params}
    return single_op("gemm", rng, [a_shape], consts, attrs)


def matmul_case(rng) -> Case:
    k = int(rng.integers(1, 9))
    kind = int(rng.integers(4))
    if kind == 0:
        shapes = [(k,), (k, 5)]
    elif kind == 1:
        shapes = [(3, k), (k,)]
    elif kind == 2:
        shapes = [(2, 1, 4, k), (3, k, 6)]
    else:
        shapes = [(int(rng.integers(1, 6)), k), (k, int(rng.integers(1, 6)))]
    return single_op("matmul", rng, shapes)


def broadcast_shapes(rng, count: int) -> list[tuple[int, ...]]:
    full = [int(d) for d in rng.integers(1, 5, int(rng.integers(1, 5)))]
    shapes = []
    for _ in range(count):
        s = [1 if rng.random() < 0.3 else d for d in full]
        shapes.append(tuple(s[int(rng.integers(0, len(s))):]) or (1,))
    shapes[int(rng.integers(count))] = tuple(full)
    return shapes


def binary_case(op: str) -> Callable:
    return lambda rng: single_op(op, rng, broadcast_shapes(rng, 2))


def variadic_case(op: str) -> Callable:
    return lambda rng: single_op(op, rng, broadcast_shapes(rng, int(rng.integers(1, 4))))


sum_case = variadic_case("sum")


def positive_case(op: str, count: int = 1) -> Callable:
    """Inputs in [0.1, 3] (sqrt, log, 1/x, the base of pow), broadcasting."""
    def make(rng) -> Case:
        graph, inputs = single_op(op, rng, broadcast_shapes(rng, count))
        inputs[0] = np.abs(inputs[0]) + np.float32(0.1)
        return graph, inputs
    return make


def prelu_case(rng) -> Case:
    """A slope of x's shape with dims dropped or set to 1 (per channel, shared, per element)."""
    x = tuple(int(d) for d in rng.integers(1, 5, int(rng.integers(2, 5))))
    slope = tuple(1 if rng.random() < 0.5 else d for d in x)[int(rng.integers(0, len(x))):]
    return single_op("prelu", rng, [x, slope or (1,)])


def reshape_case(rng) -> Case:
    shape = (2, 3, 4, int(rng.integers(1, 4)))
    target = list(rng.permutation(shape))
    target[int(rng.integers(len(target)))] = -1
    if rng.random() < 0.5:
        target = [int(np.prod(shape))]
    return single_op("reshape", rng, [shape], (), {"shape": target})


def concat_case(rng) -> Case:
    base = [int(d) for d in rng.integers(1, 5, int(rng.integers(1, 5)))]
    axis = int(rng.integers(-len(base), len(base)))
    shapes = []
    for _ in range(int(rng.integers(1, 4))):
        s = list(base)
        s[axis] = int(rng.integers(1, 4))
        shapes.append(tuple(s))
    return single_op("concat", rng, shapes, (), {"axis": axis})


def pad_case(rng) -> Case:
    shape = tuple(int(d) for d in rng.integers(2, 6, int(rng.integers(1, 5))))
    pads = [int(p) for p in rng.integers(-1, 3, 2 * len(shape))]
    return single_op("pad", rng, [shape], (), {"pads": pads, "value": float(rng.normal())})


def batch_norm_case(rng) -> Case:
    c = int(rng.integers(1, 6))
    shape = (2, c, *rng.integers(1, 5, int(rng.integers(0, 3))))
    consts = [randn(rng, (c,)), randn(rng, (c,)), randn(rng, (c,)),
              rng.uniform(0.2, 2, c).astype(np.float32)]
    return single_op("batch_norm", rng, [shape], consts, {"epsilon": float(rng.uniform(1e-5, 1e-2))})


def squeeze_case(rng) -> Case:
    shape = (1, 3, 1, 2, 1)
    axes = [a for a in (0, 2, -1) if rng.random() < 0.7] or [2]
    return single_op("squeeze", rng, [shape], (), {"axes": axes})


GENERATORS: dict[str, tuple[Callable, int]] = {
    "conv": (conv_case, 120),
    "max_pool": (pool_case("max_pool"), 25),
    "avg_pool": (pool_case("avg_pool"), 25),
    "sum_pool": (pool_case("sum_pool"), 20),
    "global_avg_pool": (global_pool_case("global_avg_pool"), 4),
    "global_max_pool": (global_pool_case("global_max_pool"), 4),
    "lp_pool": (pool_case("lp_pool"), 15),
    "global_lp_pool": (global_pool_case("global_lp_pool"), 6),
    "adaptive_avg_pool": (lambda r: single_op(
        "adaptive_avg_pool", r, [(2, 3, int(r.integers(1, 12)), int(r.integers(1, 12)))], (),
        {"output_size": [int(r.integers(1, 8)), int(r.integers(1, 8))]}), 8),
    "relu": (unary_case("relu"), 3),
    "sigmoid": (unary_case("sigmoid"), 3),
    "leaky_relu": (unary_case("leaky_relu", lambda r: {"alpha": float(r.uniform(0, 1))}), 3),
    "clip": (unary_case("clip", lambda r: {"min": float(r.uniform(-1, 0)),
                                           "max": float(r.uniform(0, 1))}), 3),
    "softmax": (unary_case("softmax", lambda r: {"axis": int(r.integers(-1, 1))}), 5),
    "flatten": (lambda r: single_op("flatten", r, [(2, 3, 4, 5)], (),
                                    {"axis": int(r.integers(-4, 5))}), 5),
    "identity": (unary_case("identity"), 2),
    "dropout": (unary_case("dropout", lambda r: {"ratio": float(r.uniform(0, 0.9))}), 2),
    "gemm": (gemm_case, 15),
    "matmul": (matmul_case, 8),
    "add": (binary_case("add"), 6),
    "mul": (binary_case("mul"), 6),
    "sum": (sum_case, 6),
    "reshape": (reshape_case, 5),
    "transpose": (lambda r: single_op("transpose", r, [(2, 3, 4, 5)], (),
                                      {"perm": list(r.permutation(4))}), 5),
    "concat": (concat_case, 6),
    "pad": (pad_case, 6),
    "batch_norm": (batch_norm_case, 4),
    "lrn": (lambda r: single_op("lrn", r, [(2, int(r.integers(1, 9)), 3, 4)], (),
                                # onnxruntime takes odd sizes only; even ones are checked below
                                {"size": int(r.choice([1, 3, 5])), "alpha": float(r.uniform(1e-4, 1)),
                                 "beta": float(r.uniform(0.5, 1)),
                                 "bias": float(r.uniform(1, 2))}), 6),
    "squeeze": (squeeze_case, 3),
    "unsqueeze": (lambda r: single_op("unsqueeze", r, [(3, 2)], (),
                                      {"axes": [int(r.choice([0, 1, 2, -1]))]}), 4),
    "channel_shuffle": (channel_shuffle_case, 6),
    "to_blocked": (lambda r: single_op("to_blocked", r, [(2, int(r.integers(1, 10)), 3, 4)], (),
                                       {"block": int(r.choice([4, 8]))}), 3),
    "from_blocked": (lambda r: single_op("from_blocked", r, [(1, 2, 3, 3, 4)], (),
                                         {"channels": int(r.integers(5, 9))}), 3),
}
GENERATORS.update({  # the pointwise math and broadcasting arithmetic
    **{op: (binary_case(op), 6) for op in ("sub", "div")},
    **{op: (variadic_case(op), 6) for op in ("max", "min", "mean")},
    **{op: (positive_case(op), 3) for op in POSITIVE_INPUT},
    "pow": (positive_case("pow", 2), 6),
    "prelu": (prelu_case, 6),
})
GENERATORS.update(INDEXING_GENERATORS)  # any-dtype ops: their own inputs (indexing_cases.py)
for _name in ACTIVATIONS:  # a new activation gets draws with its default attributes
    GENERATORS.setdefault(_name, (unary_case(_name), 3))


def reduce_case(op: str) -> Callable:
    """A random rank 1-4 shape, a random subset of axes (negative ones too; none = all),
    keepdims 0 or 1; reduce_log_sum reduces sigmoid(x) (a positive sum)."""
    def make(r: np.random.Generator) -> Case:
        shape = tuple(int(d) for d in r.integers(1, 7, int(r.integers(1, 5))))
        axes = [int(a) - len(shape) * int(r.random() < 0.3)
                for a in range(len(shape)) if r.random() < 0.5]
        attrs = {"axes": axes, "keepdims": int(r.integers(0, 2))}
        g = Graph(f"one_{op}")
        x = g.add_input("x0", shape)
        if op == "reduce_log_sum":
            x = g.apply("sigmoid", [x])
        g.set_outputs([g.apply(op, [x], attrs)])
        return g, [randn(r, shape)]
    return make


for _name in REDUCTIONS:
    GENERATORS[_name] = (reduce_case(_name), 6)


def norm_case(op: str) -> Callable:
    """layer_norm at a random axis (bias or not), group_norm with a random divisor of C as
    the groups (one per channel: InstanceNormalization), lp_norm p 1/2 at a random axis,
    mean_variance_norm over (0, 2, 3) or a random subset of axes."""
    def make(r: np.random.Generator) -> Case:
        shape = tuple(int(d) for d in r.integers(1, 7, 4))
        if op == "layer_norm":
            axis = int(r.integers(-4, 4))
            norm = shape[axis % 4:]
            consts = [randn(r, norm)] + ([randn(r, norm)] if r.random() < 0.7 else [])
            return single_op(op, r, [shape], consts,
                             {"axis": axis, "epsilon": float(r.uniform(1e-6, 1e-2))})
        if op == "group_norm":
            c = int(r.integers(1, 5)) * 2
            shape = (shape[0], c) + shape[2:]
            if r.random() < 0.3:  # the blocked instance norm, padding lanes in its last block
                block = int(r.choice([4, 8]))
                width = -(-c // block) * block
                consts = [np.pad(randn(r, c), (0, width - c)) for _ in range(2)]
                return single_op(op, r, [shape], consts, {
                    "num_groups": width, "epsilon": float(r.uniform(1e-6, 1e-2)),
                    "layout": "NCHWc"}, blocked=block)
            groups = int(r.choice([g for g in range(1, c + 1) if c % g == 0]))
            return single_op(op, r, [shape], [randn(r, c), randn(r, c)],
                             {"num_groups": groups, "epsilon": float(r.uniform(1e-6, 1e-2))})
        if op == "lp_norm":
            return single_op(op, r, [shape], (), {"axis": int(r.integers(-4, 4)),
                                                  "p": int(r.choice([1, 2]))})
        axes = (0, 2, 3) if r.random() < 0.5 else tuple(
            a for a in range(4) if r.random() < 0.5) or (1,)
        # onnxruntime's E[x^2] - E[x]^2 goes negative (NaN) over a single element: 2+ each
        shape = tuple(max(d, 2) for d in shape)
        return single_op(op, r, [shape], (), {"axes": axes})
    return make


def channel_norm_case(r: np.random.Generator) -> Case:
    """Plain, or blocked with padding lanes in the last block."""
    c = int(r.integers(1, 21))
    shape = (int(r.integers(1, 3)), c, int(r.integers(1, 6)), int(r.integers(1, 9)))
    block = int(r.choice([0, 4, 8, 16]))
    width = -(-c // block) * block if block else c
    consts = [np.pad(randn(r, c), (0, width - c)) for _ in range(2)]
    attrs = {"epsilon": float(r.uniform(1e-6, 1e-2)), "layout": "NCHWc" if block else "NCHW",
             "channels": c if block else 0}
    return single_op("channel_norm", r, [shape], consts, attrs, blocked=block)


GENERATORS["channel_norm"] = (channel_norm_case, 8)


def blocked_concat_case(r: np.random.Generator) -> Case:
    """2-3 blocked inputs of random channel counts and blocks, repacked into 4, 8 or 16."""
    spatial = (int(r.integers(1, 5)), int(r.integers(1, 6)))
    shapes = [(1, int(r.integers(1, 20))) + spatial for _ in range(int(r.integers(2, 4)))]
    blocks = [int(r.choice([4, 8, 16])) for _ in shapes]
    g = Graph("one_blocked_concat")
    xs = [g.add_input(f"x{i}", s) for i, s in enumerate(shapes)]
    ys = [g.apply("to_blocked", [x], {"block": b}) for x, b in zip(xs, blocks)]
    y = g.apply("blocked_concat", ys, {"channels": [s[1] for s in shapes],
                                       "block": int(r.choice([4, 8, 16]))})
    g.set_outputs([g.apply("from_blocked", [y], {"channels": sum(s[1] for s in shapes)})])
    return g, [randn(r, s) for s in shapes]


GENERATORS["blocked_concat"] = (blocked_concat_case, 6)


def blocked_split_case(r: np.random.Generator) -> Case:
    """One blocked input of a random block split into 1-3 parts, each repacked into 4, 8 or 16
    (concatenated back in reverse order: one output)."""
    parts = [int(r.integers(1, 12)) for _ in range(int(r.integers(1, 4)))]
    shape = (int(r.integers(1, 3)), sum(parts), int(r.integers(1, 5)), int(r.integers(1, 6)))
    g = Graph("one_blocked_split")
    x = g.add_input("x0", shape)
    y = g.apply("to_blocked", [x], {"block": int(r.choice([4, 8, 16]))})
    outs = g.add_node("blocked_split", [y], {"channels": parts,
                                             "block": int(r.choice([4, 8, 16]))}).outputs
    plain = [g.apply("from_blocked", [o], {"channels": c}) for o, c in zip(outs, parts)]
    g.set_outputs([g.apply("concat", plain[::-1], {"axis": 1})])  # one output, parts reversed
    return g, [randn(r, shape)]


GENERATORS["blocked_split"] = (blocked_split_case, 6)
for _name in ("layer_norm", "group_norm", "lp_norm", "mean_variance_norm"):
    GENERATORS[_name] = (norm_case(_name), 8)
GENERATORS["log_softmax"] = (unary_case("log_softmax", lambda r: {"axis": int(r.integers(-1, 1))}),
                             5)
def conv_transpose_case(r: np.random.Generator) -> Case:
    """1-3 spatial dims, groups, strides, dilations, pads and output_padding below the stride
    (onnxruntime's bound; the spec's wider one is test_output_padding_below_the_dilation's);
    a bias in most draws."""
    nd = int(r.choice([1, 2, 3], p=[0.25, 0.55, 0.2]))
    groups = int(r.integers(1, 4))
    cin, cout_g = groups * int(r.integers(1, 3)), int(r.integers(1, 4))
    kernel = [int(r.integers(1, 4)) for _ in range(nd)]
    strides = [int(r.integers(1, 4)) for _ in range(nd)]
    dil = [int(r.integers(1, 3)) for _ in range(nd)]
    pads = [int(r.integers(0, k)) for k in kernel] * 2
    out_pad = [int(r.integers(0, s)) for s in strides]
    shape = (int(r.integers(1, 3)), cin, *(int(r.integers(1, 6)) for _ in range(nd)))
    consts = [randn(r, (cin, cout_g, *kernel))]
    if r.random() < 0.7:
        consts.append(randn(r, (cout_g * groups,)))
    return single_op("conv_transpose", r, [shape], consts, {
        "strides": strides, "dilations": dil, "pads": pads, "output_padding": out_pad,
        "groups": groups})


def resize_case(r: np.random.Generator) -> Case:
    """nearest (every nearest_mode), linear or cubic over H, W with every coordinate mode;
    sizes up or down from the input (tf_crop_and_resize with a random roi)."""
    from graphcnn.ops.spatial import COORDINATE_MODES, NEAREST_MODES
    shape = (int(r.integers(1, 3)), int(r.integers(1, 4)), int(r.integers(1, 7)),
             int(r.integers(1, 7)))
    sizes = shape[:2] + tuple(int(r.integers(1, 13)) for _ in range(2))
    mode = str(r.choice(["nearest", "linear", "cubic"]))
    coords = str(r.choice(COORDINATE_MODES))
    attrs = {"sizes": list(sizes), "mode": mode, "coordinate_transformation_mode": coords,
             "nearest_mode": str(r.choice(NEAREST_MODES)),
             "exclude_outside": int(mode == "cubic" and r.random() < 0.5)}
    if coords == "tf_crop_and_resize":
        lo, hi = r.uniform(0, 0.4, 4), r.uniform(0.6, 1, 4)
        attrs["roi"] = [0, 0, *lo[2:], 1, 1, *hi[2:]]
        attrs["extrapolation_value"] = float(r.uniform(-1, 1))
    return single_op("resize", r, [shape], (), attrs)


def blocks_case(op: str) -> Callable:
    """depth_to_space / space_to_depth, DCR or CRD, blocksize 1-3."""
    def make(r: np.random.Generator) -> Case:
        b = int(r.integers(1, 4))
        n, c, h, w = int(r.integers(1, 3)), int(r.integers(1, 4)), int(r.integers(1, 4)), \
            int(r.integers(1, 4))
        mode = str(r.choice(["DCR", "CRD"])) if op == "depth_to_space" else "DCR"
        shape = (n, c * b * b, h, w) if op == "depth_to_space" else (n, c, h * b, w * b)
        return single_op(op, r, [shape], (), {"blocksize": b, "mode": mode})
    return make


GENERATORS["conv_transpose"] = (conv_transpose_case, 20)
GENERATORS["resize"] = (resize_case, 30)
for _name in ("depth_to_space", "space_to_depth"):
    GENERATORS[_name] = (blocks_case(_name), 6)
CASES = [(op, i) for op, (_, count) in GENERATORS.items() for i in range(count)]


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def dropped_ceil_window(graph) -> bool:
    """A max/avg pool whose last ceil_mode window would start in the end padding (dropped)."""
    for node in graph.nodes:
        a = node.attrs
        if node.op not in ("max_pool", "avg_pool") or not a["ceil_mode"]:
            continue
        nd = len(a["kernel_shape"])
        for i, size in enumerate(node.inputs[0].type.shape[2:2 + nd]):
            span = a["dilations"][i] * (a["kernel_shape"][i] - 1) + 1
            total = size + a["pads"][i] + a["pads"][i + nd] - span
            out = -(-total // a["strides"][i]) + 1
            if (out - 1) * a["strides"][i] >= size + a["pads"][i]:
                return True
    return False


def test_dropped_ceil_windows_are_drawn():
    """The exporter writes ceil_mode=0 where the spec drops the last ceil window (onnx's shape
    inference keeps it); make sure the draws reach that case."""
    hits = [(op, i) for op, i in CASES if op in ("max_pool", "avg_pool") and dropped_ceil_window(
        GENERATORS[op][0](np.random.default_rng(1000 * list(GENERATORS).index(op) + i))[0])]
    assert hits


def test_every_op_has_a_generator():
    # onnx_node is onnxruntime's own computation (tests/backends/test_fallback.py checks it)
    ops = set(OPS) - {"onnx_node"}
    assert ops <= set(GENERATORS), f"no random cases for {sorted(ops - set(GENERATORS))}"


def test_draw_counts():
    assert GENERATORS["conv"][1] >= 100
    assert sum(GENERATORS[p][1] for p in ("max_pool", "avg_pool", "sum_pool")) >= 50


@pytest.mark.parametrize("op,draw", CASES, ids=[f"{op}-{i}" for op, i in CASES])
def test_reference_matches_onnxruntime(op, draw):
    rng = np.random.default_rng(1000 * list(GENERATORS).index(op) + draw)
    graph, inputs = GENERATORS[op][0](rng)
    onnx.checker.check_model(gc.to_onnx(graph), full_check=True)
    ref = gc.compile(graph, target="reference")(*inputs)
    if spec_is_the_oracle(graph):
        model = gc.to_onnx(graph)
        ort = ReferenceEvaluator(model).run(None, {
            i.name: x for i, x in zip(model.graph.input, inputs)})[0]
    else:
        ort = gc.compile(graph, target="onnxruntime", opt_level=0)(*inputs)
    assert ref.shape == ort.shape
    assert rel_l2(ref, ort) <= 1e-5, f"{op} draw {draw}: rel L2 {rel_l2(ref, ort):.2e}\n{graph}"


def spec_is_the_oracle(graph: Graph) -> bool:
    """Cubic resize is checked against ONNX's own reference implementation: onnxruntime's
    cubic departs from the spec under tf_crop_and_resize and where an axis shrinks to one
    pixel (pytorch_half_pixel samples x=0 there; onnxruntime blends its neighbours)."""
    return any(n.op == "resize" and n.attrs["mode"] == "cubic" for n in graph.nodes)


@pytest.mark.parametrize("draw", range(6))
def test_output_padding_below_the_dilation(draw):
    """The spec bounds output_padding by the stride or the dilation; onnxruntime (and ONNX's
    reference) refuse the wider bound. output_padding grows the end of each axis and an end
    pad crops it, so padding p with end pad q >= p is padding 0 with end pad q - p."""
    r = np.random.default_rng(draw)
    dil, k = int(r.integers(2, 4)), int(r.integers(2, 4))
    p = int(r.integers(1, dil))
    q = p + int(r.integers(0, 2))
    x, w, b = randn(r, (1, 2, 4, 5)), randn(r, (2, 3, k, k)), randn(r, (3,))

    def run(out_pad, end_pad, target):
        g = Graph("ct")
        y = g.apply("conv_transpose", [g.add_input("x", x.shape), g.add_constant(w),
                                       g.add_constant(b)],
                    {"dilations": [dil, dil], "output_padding": [out_pad, out_pad],
                     "pads": [0, 0, end_pad, end_pad]})
        g.set_outputs([y])
        return gc.compile(g, target=target, opt_level=0)(x)
    ref = run(p, q, "reference")
    ort = run(0, q - p, "onnxruntime")
    assert ref.shape == ort.shape and rel_l2(ref, ort) <= 1e-5


@pytest.mark.parametrize("draw", range(8))
def test_residual_conv_matches_onnxruntime(draw):
    graph, inputs = residual_conv_case(np.random.default_rng(draw))
    ref = gc.compile(graph, target="reference")(*inputs)
    ort = gc.compile(graph, target="onnxruntime", opt_level=0)(*inputs)
    assert rel_l2(ref, ort) <= 1e-5


@pytest.mark.parametrize("size", [2, 4, 6])
def test_lrn_even_sizes_match_the_spec_formula(size):
    """onnxruntime rejects even LRN sizes, which the ONNX spec allows (and onnx.reference's LRN
    loops over the batch instead of the channels), so check the spec's formula directly:
    channels max(0, c - floor((size-1)/2)) .. min(C-1, c + ceil((size-1)/2))."""
    rng = np.random.default_rng(size)
    graph, inputs = single_op("lrn", rng, [(2, 7, 3, 4)], (),
                              {"size": size, "alpha": 0.3, "beta": 0.75, "bias": 1.5})
    x = inputs[0].astype(np.float64)
    expected = np.empty_like(x)
    for c in range(x.shape[1]):
        lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1] - 1, c + -(-(size - 1) // 2))
        square_sum = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        expected[:, c] = x[:, c] / (1.5 + 0.3 / size * square_sum) ** 0.75
    ref = gc.compile(graph, target="reference")(*inputs)
    assert rel_l2(ref, expected) <= 1e-5


@pytest.mark.parametrize("op", ["avg_pool", "sum_pool", "max_pool"])
@pytest.mark.parametrize("pads", [[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]])
def test_ceil_mode_windows_past_the_padding(op, pads):
    """The corner where ceil_mode adds a last window that starts inside the input but runs past
    the end padding: count_include_pad counts the explicit pads only, never the ceil overhang."""
    rng = np.random.default_rng(len(op) + sum(pads))
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": pads, "ceil_mode": True}
    for include in ([False, True] if op == "avg_pool" else [None]):
        if include is not None:
            attrs["count_include_pad"] = include
        graph, inputs = single_op(op, rng, [(1, 3, 6, 7)], (), dict(attrs))
        ref = gc.compile(graph, target="reference")(*inputs)
        ort = gc.compile(graph, target="onnxruntime", opt_level=0)(*inputs)
        assert ref.shape == ort.shape
        assert rel_l2(ref, ort) <= 1e-5, f"{op} {attrs}"


@pytest.mark.parametrize("count_include_pad", [False, True])
def test_ceil_window_dropped_on_one_axis_kept_on_another(count_include_pad):
    """Axis 0 drops its ceil window even without padding (start 3 >= size 2) while axis 1 keeps
    one: the export keeps ceil_mode=1 and slices axis 0's unread tail, so onnx's shape inference
    (which would keep axis 0's window) agrees with the spec and the full check passes."""
    rng = np.random.default_rng(175)
    graph, inputs = single_op("avg_pool", rng, [(1, 1, 2, 4, 3)], (),
                              {"kernel_shape": [1, 2, 1], "strides": [3, 3, 1], "pads": [0] * 6,
                               "ceil_mode": True, "count_include_pad": count_include_pad})
    assert graph.outputs[0].shape == (1, 1, 1, 2, 3)
    onnx.checker.check_model(gc.to_onnx(graph), full_check=True)
    ref = gc.compile(graph, target="reference")(*inputs)
    ort = gc.compile(graph, target="onnxruntime", opt_level=0)(*inputs)
    assert rel_l2(ref, ort) <= 1e-5
