"""Random cases for the indexing and dtype ops (graphcnn/ops/indexing.py): op -> (rng -> (graph,
inputs), draws). Shapes, ranks, axes, steps, broadcast patterns and dtypes are drawn; inputs are
random, integer data spans negative and positive values, indices include negative ones. No
output is bool (test_against_onnxruntime compares by relative L2); bool results are cast."""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from graphcnn.ir import Graph

DATA_DTYPES = ("float32", "int64", "int32")
Case = tuple[Graph, list[np.ndarray]]


def data(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    if dtype == "float32":
        return rng.standard_normal(shape).astype(np.float32)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(-1000, 1000, shape).astype(dtype)


def shape_of(rng, rank: int | None = None, lo: int = 1, hi: int = 7) -> tuple[int, ...]:
    rank = int(rng.integers(1, 5)) if rank is None else rank
    return tuple(int(d) for d in rng.integers(lo, hi, rank))


def one(op: str, rng, inputs: list[np.ndarray], attrs: dict, consts=(), wrap_bool=True,
        first_const: bool = False) -> Case:
    """One node over graph inputs (and constants after them, or a constant first input)."""
    g = Graph(f"one_{op}")
    xs = [g.add_input(f"x{i}", a.shape, a.dtype.name) for i, a in enumerate(inputs)]
    cs = [g.add_constant(c, f"c{i}") for i, c in enumerate(consts)]
    args = cs + xs if first_const else xs + cs
    node = g.add_node(op, args, attrs)
    outs = list(node.outputs)
    if wrap_bool:
        outs = [g.apply("cast", [v], {"to": "int32"}) if v.type.dtype == "bool" else v
                for v in outs]
    if len(outs) > 1:  # several outputs: one concat of them (reversed) as the graph output
        outs = [g.apply("concat", outs[::-1], {"axis": node.attrs["axis"]})]
    g.set_outputs(outs)
    return g, inputs


def gather_case(rng) -> Case:
    shape = shape_of(rng)
    axis = int(rng.integers(-len(shape), len(shape)))
    n = shape[axis]
    idx = rng.integers(-n, n, shape_of(rng, int(rng.integers(1, 3)))).astype(
        rng.choice(["int64", "int32"]))
    x = data(rng, shape, str(rng.choice(DATA_DTYPES)))
    if rng.random() < 0.5:  # runtime indices
        return one("gather", rng, [x, idx], {"axis": axis})
    return one("gather", rng, [x], {"axis": axis}, consts=[idx])


def embedding_case(rng) -> Case:
    v, d = int(rng.integers(2, 40)), int(rng.integers(1, 70))
    table = data(rng, (v, d), "float32")
    ids = rng.integers(-v, v, shape_of(rng, 2)).astype(rng.choice(["int64", "int32"]))
    return one("gather", rng, [ids], {"axis": 0}, consts=[table], first_const=True)


def slice_case(rng) -> Case:
    shape = shape_of(rng, hi=12)
    x = data(rng, shape, str(rng.choice(DATA_DTYPES)))
    axes = [int(a) for a in rng.permutation(len(shape))[:int(rng.integers(1, len(shape) + 1))]]
    starts, ends, steps = [], [], []
    for ax in axes:
        dim = shape[ax]
        while True:
            step = int(rng.choice([-3, -2, -1, 1, 2, 3]))
            start = int(rng.integers(-dim - 3, dim + 3))
            end = int(rng.integers(-dim - 3, dim + 3)) if rng.random() < 0.8 else \
                int(rng.choice([2**62, -2**62]))
            if len(range(dim)[slice(start, end, step)]) > 0:
                break
        starts.append(start)
        ends.append(end)
        steps.append(step)
    axes = [a - len(shape) if rng.random() < 0.3 else a for a in axes]
    return one("slice", rng, [x], {"starts": starts, "ends": ends, "axes": axes, "steps": steps})


def split_case(rng) -> Case:
    shape = shape_of(rng, hi=10)
    axis = int(rng.integers(-len(shape), len(shape)))
    dim = shape[axis]
    x = data(rng, shape, str(rng.choice(DATA_DTYPES)))
    if rng.random() < 0.5:
        cuts = sorted(rng.choice(np.arange(1, dim), int(rng.integers(0, dim)), replace=False)) \
            if dim > 1 else []
        bounds = [0, *[int(c) for c in cuts], dim]
        return one("split", rng, [x], {"axis": axis,
                                       "split": [b - a for a, b in itertools.pairwise(bounds)]})
    n = int(rng.integers(1, dim + 1))
    if -(-dim // n) * (n - 1) >= dim:  # an empty last chunk: not a valid num_outputs
        n = 1
    return one("split", rng, [x], {"axis": axis, "num_outputs": n})


def expand_case(rng) -> Case:
    out = shape_of(rng)
    shape = tuple(d if rng.random() < 0.5 else 1 for d in out)[int(rng.integers(0, len(out))):]
    target = [d if rng.random() < 0.7 else 1 for d in out]
    x = data(rng, shape or (1,), str(rng.choice(DATA_DTYPES)))
    return one("expand", rng, [x], {"shape": target})


def tile_case(rng) -> Case:
    shape = shape_of(rng, hi=5)
    x = data(rng, shape, str(rng.choice(DATA_DTYPES)))
    return one("tile", rng, [x], {"repeats": [int(r) for r in rng.integers(1, 4, len(shape))]})


def cast_case(rng) -> Case:
    src, to = (str(rng.choice(["float32", "int64", "int32", "bool"])) for _ in range(2))
    shape = shape_of(rng, hi=20)
    if src == "float32":
        x = (rng.standard_normal(shape) * 100).astype(np.float32)
        x.reshape(-1)[:3] = [0.0, -0.0, 2.5][:x.size]
    else:
        x = data(rng, shape, src)
    return one("cast", rng, [x], {"to": to})


def where_case(rng) -> Case:
    out = shape_of(rng)
    def part():
        return tuple(d if rng.random() < 0.6 else 1 for d in out)[int(rng.integers(0, len(out))):]
    dtype = str(rng.choice(DATA_DTYPES))
    cond = rng.random(part() or (1,)) < 0.5
    x, y = data(rng, part() or (1,), dtype), data(rng, part() or (1,), dtype)
    if rng.random() < 0.3:
        return one("where", rng, [x, y], {}, consts=[cond], first_const=True)
    return one("where", rng, [cond, x, y], {})


def arg_case(op: str) -> Callable[[np.random.Generator], Case]:
    def make(rng) -> Case:
        shape = shape_of(rng, hi=30 if rng.random() < 0.3 else 8)
        dtype = str(rng.choice(DATA_DTYPES))
        x = rng.integers(0, 4, shape).astype(dtype) if rng.random() < 0.5 else \
            data(rng, shape, dtype)  # small integers: ties, where select_last_index matters
        return one(op, rng, [x], {"axis": int(rng.integers(-len(shape), len(shape))),
                                  "keepdims": int(rng.integers(0, 2)),
                                  "select_last_index": int(rng.integers(0, 2))})
    return make


GENERATORS: dict[str, tuple[Callable[[np.random.Generator], Case], int]] = {
    "gather": (gather_case, 10),
    "slice": (slice_case, 12),
    "split": (split_case, 10),
    "expand": (expand_case, 8),
    "tile": (tile_case, 6),
    "cast": (cast_case, 16),
    "where": (where_case, 10),
    "argmax": (arg_case("argmax"), 8),
    "argmin": (arg_case("argmin"), 8),
}
EMBEDDING = (embedding_case, 6)
